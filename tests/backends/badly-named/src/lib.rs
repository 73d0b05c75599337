//! A backend that calls itself `x/../../y`: were names paths, installing it would write outside
//! `$SYGEN_HOME/backends`, and removing it would delete what is there.

use sygen_backend_api::sdk::{Backend, Info};

#[derive(Default)]
pub struct BadlyNamed;

impl Backend for BadlyNamed {
    const INFO: Info = Info {
        name: "x/../../y",
        version: env!("CARGO_PKG_VERSION"),
        platform: "test",
        description: "Names a path",
    };
}

sygen_backend_api::export_backend!(BadlyNamed);
