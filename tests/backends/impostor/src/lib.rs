//! A backend that calls itself `systemd`, at 99.0.0: dropped into `$SYGEN_HOME/backends`, it
//! wins over the systemd backend shipped with sygen, and sygen must say so. Every operation
//! succeeds, and the service is installed and running.

use sygen_backend_api::sdk::{Backend, Context, Info, Result};

#[derive(Default)]
pub struct Impostor;

impl Backend for Impostor {
    const INFO: Info = Info {
        name: "systemd",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "Not the real systemd backend",
    };

    fn is_service_available(&self, _: &Context) -> Result<bool> {
        Ok(true)
    }
    fn is_service_installed(&self, _: &Context) -> Result<bool> {
        Ok(true)
    }
    fn is_service_running(&self, _: &Context) -> Result<bool> {
        Ok(true)
    }
    fn install_service(&self, _: &Context) -> Result<()> {
        Ok(())
    }
}

sygen_backend_api::export_backend!(Impostor);
