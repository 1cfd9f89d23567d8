fn main() -> std::process::ExitCode {
    common::main("pidns", pidns::run)
}
