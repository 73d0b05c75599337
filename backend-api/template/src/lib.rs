//! An example sygen backend: the starting point for a backend of your own.
//!
//! sygen loads this library (`libsygen_example.so`, `.dylib`, `sygen_example.dll`) and calls
//! the operations of [`Backend`] with the service description it built. Each operation you
//! leave out answers "not implemented in this backend version"; implement the nine and run
//! `sygen service conformance --backend <this library>` to see whether it behaves.
//! `WRITING-A-BACKEND.md` next to `sygen-backend-api` says what each one must do.

use sygen_backend_api::sdk::{self, Backend, Context, Info, Result};

#[derive(Default)]
pub struct Example;

impl Backend for Example {
    const INFO: Info = Info {
        name: "example",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "An example sygen backend",
    };

    /// True only when the service manager this backend drives is there and answers.
    fn is_service_available(&self, cx: &Context) -> Result<bool> {
        sygen_backend_api::tracing::debug!("looking for example-ctl for {}", cx.service.name);
        Ok(sdk::find_executable("example-ctl").is_some())
    }
}

sygen_backend_api::export_backend!(Example);
