fn main() -> std::process::ExitCode {
    common::main("cgroupns", cgroupns::run)
}
