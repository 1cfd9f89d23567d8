fn main() -> std::process::ExitCode {
    common::main("nsps", nsps::run)
}
