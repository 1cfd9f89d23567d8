fn main() -> std::process::ExitCode {
    common::main("userns", userns::run)
}
