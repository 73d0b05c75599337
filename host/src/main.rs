//! `sygen`: see the library for what it does.

fn main() -> std::process::ExitCode {
    sygen::main()
}
