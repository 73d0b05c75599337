//! `sygenw`: sygen without a console window on Windows (the GUI subsystem), for the scheduled
//! task; elsewhere the same program as `sygen`.

#![windows_subsystem = "windows"]

fn main() -> std::process::ExitCode {
    sygen::main()
}
