fn main() -> std::process::ExitCode {
    common::main("utsns", utsns::run)
}
