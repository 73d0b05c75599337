//! The sygen host, shared by its two binaries: `sygen`, and `sygenw`, the same program built
//! for the Windows GUI subsystem so a scheduled task runs it without a console window.
//!
//! The host holds no service-manager code: service operations go to a backend library loaded
//! at run time, given a service description built here. Its layers, each using only those
//! below it:
//!
//! - `commands`: what users type, and the one dispatch;
//! - `runtime`: `sygen run`, the supervisor every service definition starts;
//! - `config`, `worker_env`: config.toml; the worker's environment (its env file);
//! - `backend`: everything about backend libraries;
//! - `description`, `progress`: the service description; progress and console output;
//! - `file`, `home`, `exit`: reading small files, the sygen home, typed failures;
//! - `platform`: the operating system, one file per platform.

mod backend;
mod commands;
mod config;
mod description;
mod exit;
mod file;
mod home;
mod platform;
mod progress;
mod runtime;
mod worker_env;

pub use commands::main;
