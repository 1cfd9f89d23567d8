fn main() -> std::process::ExitCode {
    common::main("nsimage", nsimage::run)
}
