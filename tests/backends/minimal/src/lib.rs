//! The smallest backend an author can write: it says who it is and nothing more, so every
//! operation answers the SDK's "not implemented in this backend version".

use sygen_backend_api::sdk::{Backend, Info};

#[derive(Default)]
pub struct Minimal;

impl Backend for Minimal {
    const INFO: Info = Info {
        name: "minimal",
        version: env!("CARGO_PKG_VERSION"),
        platform: "test",
        description: "Implements nothing",
    };
}

sygen_backend_api::export_backend!(Minimal);
