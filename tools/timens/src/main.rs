fn main() -> std::process::ExitCode {
    common::main("timens", timens::run)
}
