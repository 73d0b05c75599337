//! The same backend at two versions (its package version is its backend version), for the
//! tests of installing, upgrading and rolling back backends.

use sygen_backend_api::sdk::{Backend, Context, Info, Result};

#[derive(Default)]
pub struct Versioned;

impl Backend for Versioned {
    const INFO: Info = Info {
        name: "versioned",
        version: env!("CARGO_PKG_VERSION"),
        platform: "test",
        description: "The same backend at two versions",
    };

    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        Ok(true)
    }
}

sygen_backend_api::export_backend!(Versioned);
