//! The tasksched backend: runs sygen as a Windows Task Scheduler task.
//!
//! This version loads and answers `info()`; every service operation answers "not implemented
//! in this backend version", never a fake success.

use sygen_backend_api::sdk::{Backend, Info};

#[derive(Default)]
pub struct TaskScheduler;

impl Backend for TaskScheduler {
    const INFO: Info = Info {
        name: "tasksched",
        version: env!("CARGO_PKG_VERSION"),
        platform: "windows",
        description: "Runs sygen as a Windows Task Scheduler task",
    };
}

sygen_backend_api::export_backend!(TaskScheduler);
