fn main() -> std::process::ExitCode {
    common::main("netns", netns::run)
}
