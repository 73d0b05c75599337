//! The checks `sygen service conformance` runs, on this backend over a tinysup of its own:
//! `TINYSUP` names the tinysup executable.

use std::{
    path::Path,
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use sygen_backend_api::{conformance::Conformance, serde_json};

/// A tinysup daemon in `dir`, ended when dropped.
struct Daemon(Child);

impl Daemon {
    fn start(program: &Path, dir: &Path) -> Self {
        let child = Command::new(program)
            .arg("daemon")
            .arg(dir)
            .spawn()
            .expect("tinysup starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("control.sock").exists() {
            assert!(Instant::now() < deadline, "tinysup did not start listening");
            thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn behaves_as_sygen_expects() -> Result<(), String> {
    let program = std::env::var("TINYSUP").map_err(|_| "set TINYSUP to the tinysup executable")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // The home watched for files left behind: a scratch one, not the real one.
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let _daemon = Daemon::start(Path::new(&program), dir.path());
    let mut settings = serde_json::Map::new();
    settings.insert("dir".into(), dir.path().display().to_string().into());
    settings.insert("program".into(), program.into());
    let report = Conformance::of_library("sygen_tinysup")
        .settings(settings)
        .user_home(home.path())
        .run()?;
    println!("{report}");
    report.assert_passed();
    Ok(())
}
