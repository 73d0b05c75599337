//! `sygen agent`: the built-in worker, run when `config.toml` names no other command, so a
//! fresh install runs something real. It logs a heartbeat at the configured interval, exits 0
//! on SIGTERM or SIGINT, and on SIGHUP exits with the restart code to ask for a fresh start.

use std::{
    process::ExitCode,
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};
use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};

use crate::{
    description,
    runtime::{config::Config, RESTART_CODE},
};

pub fn run(heartbeat_interval: Option<Duration>) -> Result<ExitCode> {
    let interval = match heartbeat_interval {
        Some(interval) => interval,
        None => {
            let home = description::sygen_home()?;
            Config::load(&home.join("config.toml"))?
                .agent
                .heartbeat_interval
        }
    };
    let mut signals =
        Signals::new([SIGTERM, SIGINT, SIGHUP]).context("cannot install signal handlers")?;
    let (sender, signal) = mpsc::channel();
    thread::spawn(move || {
        for received in signals.forever() {
            if sender.send(received).is_err() {
                break;
            }
        }
    });
    println!(
        "agent started (pid {}), heartbeat every {}",
        std::process::id(),
        humantime::format_duration(interval)
    );
    let mut beats: u64 = 0;
    loop {
        match signal.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {
                beats += 1;
                println!("heartbeat {beats}");
            }
            Ok(SIGHUP) => {
                println!("restart requested: exiting with code {RESTART_CODE}");
                return Ok(ExitCode::from(RESTART_CODE as u8));
            }
            Ok(_) => {
                println!("agent stopping");
                return Ok(ExitCode::SUCCESS);
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(ExitCode::FAILURE),
        }
    }
}
