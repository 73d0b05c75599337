//! The launchd backend: runs sygen as a launchd Launch Agent.
//!
//! This version loads and answers `info()`; every service operation answers "not implemented
//! in this backend version", never a fake success.

use sygen_backend_api::sdk::{Backend, Info};

#[derive(Default)]
pub struct Launchd;

impl Backend for Launchd {
    const INFO: Info = Info {
        name: "launchd",
        version: env!("CARGO_PKG_VERSION"),
        platform: "macos",
        description: "Runs sygen as a launchd Launch Agent",
    };
}

sygen_backend_api::export_backend!(Launchd);
