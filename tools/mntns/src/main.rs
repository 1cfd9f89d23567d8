fn main() -> std::process::ExitCode {
    common::main("mntns", mntns::run)
}
