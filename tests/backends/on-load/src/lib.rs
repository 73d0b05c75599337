//! A backend whose library constructor, run by the dynamic loader before any symbol can be
//! looked at, does what `ON_LOAD` says: `sleep` (two minutes), or `mark:<file>` (appends the
//! pid of the process that loaded it). It shows which processes load a backend file, and that
//! a slow one cannot hold sygen up. It serves Linux and is always available, so it also stands
//! in for a second Linux backend whose service manager answers.

use sygen_backend_api::sdk::{Backend, Context, Info, Result};

extern "C" fn on_load() {
    match std::env::var("ON_LOAD").as_deref() {
        Ok("sleep") => std::thread::sleep(std::time::Duration::from_secs(120)),
        Ok(other) => {
            if let Some(file) = other.strip_prefix("mark:") {
                use std::io::Write as _;
                if let Ok(mut file) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                {
                    let _ = writeln!(file, "{}", std::process::id());
                }
            }
        }
        Err(_) => {}
    }
}

/// Run by the dynamic loader when the library is loaded.
#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

#[derive(Default)]
pub struct OnLoad;

impl Backend for OnLoad {
    const INFO: Info = Info {
        name: "on-load",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "Sleeps or leaves a mark when loaded, on demand",
    };

    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        Ok(true)
    }
}

sygen_backend_api::export_backend!(OnLoad);
