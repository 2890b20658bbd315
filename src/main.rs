use std::process::ExitCode;

fn main() -> ExitCode {
    tora_studio::cli::main()
}
