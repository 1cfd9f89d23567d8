fn main() -> std::process::ExitCode {
    common::main("nsoci", nsoci::run)
}
