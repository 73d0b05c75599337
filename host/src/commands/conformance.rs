//! `sygen service conformance`: the SDK's conformance suite (the same one a backend's own
//! `cargo test` runs) on the backend sygen selects, called through sygen's own boundary.
//!
//! The sandboxed service runs `sygen run` with the harmless built-in agent. HOME stays what it
//! is (a service manager reads its user's configuration there): run it with a scratch HOME, as
//! the tests do, for the "no files left" check to mean something.

use std::path::Path;

use anyhow::{Context as _, Result};
use sygen_backend_api::{
    abi_stable::std_types::ROption,
    conformance::{self, Action, Question, Subject},
    BackendError, BackendInfo, ErrorKind, ServiceSpec,
};

use super::context::Context;
use crate::{
    backend::{console, Backend},
    description,
    exit::{Exit, Failure},
};

pub fn run(backend_file: Option<&Path>) -> Result<()> {
    let backend = Context::new(backend_file)?.backend()?;
    let sandbox = conformance::sandbox().context("cannot create the sandbox")?;
    std::fs::write(
        sandbox.path().join("config.toml"),
        "# The harmless worker conformance runs: the built-in agent.\n\
         [agent]\nheartbeat_interval = \"1s\"\n",
    )
    .context("cannot write the sandbox configuration")?;
    let service = conformance::sandboxed(description::build()?, sandbox.path());
    let report = conformance::run(&Loaded(&backend), &service);
    print!("{report}");
    if report.all_passed() {
        return Ok(());
    }
    Err(Failure::new(
        Exit::Failed,
        format!(
            "the {} backend failed {} of {} conformance checks",
            backend.name,
            report.rows.len() - report.passed(),
            report.rows.len()
        ),
    )
    .into())
}

/// The selected backend, each call made as every sygen command makes it, quietly.
struct Loaded<'a>(&'a Backend);

impl Loaded<'_> {
    /// A failure as the suite sees it: the backend's error kind (or FAILED, when sygen's
    /// boundary gave up on the call), and the message without the backend's name, which the
    /// table's heading says.
    fn reported<T>(
        &self,
        (result, text): (Result<T, Failure>, String),
    ) -> (Result<T, BackendError>, String) {
        let result = result.map_err(|failure| {
            let (kind, message) = match failure.backend {
                Some(said) => (said.kind, said.message),
                None => (ErrorKind::FAILED, failure.message),
            };
            BackendError {
                kind,
                message: message.into(),
                hint: ROption::RNone,
            }
        });
        (result, text)
    }
}

impl Subject for Loaded<'_> {
    fn info(&self) -> BackendInfo {
        let b = self.0;
        BackendInfo {
            name: b.name.as_str().into(),
            version: b.version.as_str().into(),
            platform: b.platform.as_str().into(),
            description: b.description.as_str().into(),
            api_version: b.api_version.as_str().into(),
        }
    }

    fn path(&self) -> &Path {
        &self.0.path
    }

    fn ask(&self, question: Question, spec: &ServiceSpec) -> (Result<bool, BackendError>, String) {
        let b = self.0;
        self.reported(console::capture(|| match question {
            Question::Available => b.is_service_available(spec),
            Question::Installed => b.is_service_installed(spec),
            Question::Running => b.is_service_running(spec),
        }))
    }

    fn act(&self, action: Action, spec: &ServiceSpec) -> (Result<(), BackendError>, String) {
        let b = self.0;
        self.reported(console::capture(|| match action {
            Action::Install => b.install_service(spec),
            Action::Start => b.start_service(spec),
            Action::Stop => b.stop_service(spec),
            Action::Uninstall => b.uninstall_service(spec),
            Action::Status => b.print_service_status(spec),
            Action::Logs { lines } => b.print_service_logs(spec, false, lines),
        }))
    }
}
