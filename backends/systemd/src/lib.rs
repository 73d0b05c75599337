//! The systemd backend: runs sygen as a systemd user service.
//!
//! This version loads and answers `info()`; every service operation answers "not implemented
//! in this backend version", never a fake success.

use sygen_backend_api::sdk::{Backend, Info};

#[derive(Default)]
pub struct Systemd;

impl Backend for Systemd {
    const INFO: Info = Info {
        name: "systemd",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "Runs sygen as a systemd user service",
    };
}

sygen_backend_api::export_backend!(Systemd);
