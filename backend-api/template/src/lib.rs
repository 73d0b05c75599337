//! An example sygen backend: the starting point for a backend of your own.
//!
//! sygen loads this library (`libsygen_example.so`, `.dylib`, `sygen_example.dll`) and calls
//! the operations of [`Backend`] with the service description it built. Each operation you
//! leave out answers "not implemented in this backend version"; implement the nine and run
//! `sygen service conformance --backend <this library>` to see whether it behaves.
//! `WRITING-A-BACKEND.md` next to `sygen-backend-api` says what each one must do.

use std::path::PathBuf;

use sygen_backend_api::sdk::{self, Backend, Context, Info, Result};

#[derive(Default)]
pub struct Example;

/// What the service manager reads: a pure function of the description, easy to test.
fn definition(cx: &Context) -> String {
    let s = &cx.service;
    let mut text = format!("# {}\nprogram = {}\n", s.description, s.program.display());
    for (key, value) in &s.env {
        text.push_str(&format!("env {key} = {value}\n"));
    }
    text
}

/// Where the definition goes: under the user's home, which the description names.
fn definition_path(cx: &Context) -> PathBuf {
    let home = cx.service.env_var("HOME").unwrap_or("/");
    PathBuf::from(home).join(format!(".config/example/{}.conf", cx.service.name))
}

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

    /// Every change goes through `cx.changes`, so a dry run, and a unit test, records it.
    fn install_service(&self, cx: &Context) -> Result<()> {
        cx.changes
            .write(&definition_path(cx), definition(cx).as_bytes(), Some(0o644))
    }
}

sygen_backend_api::export_backend!(Example);

#[cfg(test)]
mod tests {
    use sygen_backend_api::{methods::Change, ServiceDescription};

    use super::*;

    #[test]
    fn install_writes_the_definition_and_nothing_else() {
        let home = std::path::Path::new("/home/someone");
        let (cx, _console) = Context::for_test(ServiceDescription::for_test(home));
        Example.install_service(&cx).unwrap();
        let changes = cx.changes.recorded_changes().changes;
        assert_eq!(changes.len(), 1, "{changes:?}");
        let Change::Write { path, content, .. } = &changes[0] else {
            panic!("not a write: {changes:?}");
        };
        assert_eq!(path, &home.join(".config/example/sygen.conf"));
        assert!(content.contains("program = /usr/local/bin/sygen\n"), "{content}");
    }
}
