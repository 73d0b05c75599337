//! `sygen agent`: the built-in worker, run when `config.toml` names no other command, so a
//! fresh install runs something real. It logs a heartbeat at the configured interval, exits 0
//! on a stop request (SIGTERM or SIGINT; on Windows its stop event, Ctrl+C or Ctrl+Break), and
//! on a restart request (SIGHUP; on Windows its restart event) exits with the restart code to
//! ask for a fresh start.

use std::{
    process::ExitCode,
    sync::mpsc::{self, RecvTimeoutError},
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::RESTART_CODE;
use crate::{
    config::Config,
    home,
    platform::{self, Listener, Request},
};

pub fn run(heartbeat_interval: Option<Duration>) -> Result<ExitCode> {
    let interval = match heartbeat_interval {
        Some(interval) => interval,
        None => {
            Config::of_home(&home::sygen_home()?)?
                .agent
                .heartbeat_interval
        }
    };
    let (sender, request) = mpsc::channel();
    platform::listen(Listener::Agent, move |heard| {
        let _ = sender.send(heard);
    })
    .context("cannot listen for stop and restart requests")?;
    println!(
        "agent started (pid {}), heartbeat every {}",
        std::process::id(),
        humantime::format_duration(interval)
    );
    let mut beats: u64 = 0;
    loop {
        match request.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {
                beats += 1;
                println!("heartbeat {beats}");
            }
            Ok(Request::Restart) => {
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
