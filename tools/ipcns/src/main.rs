fn main() -> std::process::ExitCode {
    common::main("ipcns", ipcns::run)
}
