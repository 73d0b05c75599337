//! `sygen onboarding`, and bare `sygen` on a first run: the starting configuration, and the offer
//! to install the background service (asked on a terminal, never without one).

use std::process::Command;

use crate::support::{artifacts, library, User};

#[test]
fn onboarding_without_a_terminal_neither_hangs_nor_installs() {
    let user = User::new();
    let out = user.misbehaving("fresh", &["onboarding"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let config = user.sygen_home().join("config.toml");
    assert!(out.stdout.contains(&format!(
        "wrote a starting configuration to {}",
        config.display()
    )));
    assert_eq!(
        out.stdout.lines().last(),
        Some(
            "no terminal to ask on: not installing the background service; \
             `sygen onboarding --yes` or `sygen service install` does"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("install_service"), "{}", out.stdout);
    assert!(config.is_file());
}

#[test]
fn onboarding_yes_installs_and_no_does_not() {
    let user = User::new();
    let out = user.misbehaving("fresh", &["onboarding", "--no"]);
    assert_eq!(
        out.stdout.lines().last(),
        Some("not installing the background service; `sygen service install` does it later"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("install_service"), "{}", out.stdout);
    let out = user.misbehaving("fresh", &["onboarding", "--yes", "--no-wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("install_service: ok for sygen"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("sygen service installed (misbehaving backend, named with --backend)"));
    assert!(
        !out.stdout.contains("wrote a starting configuration"),
        "written once"
    );
    let out = user.misbehaving("ok", &["onboarding"]);
    assert_eq!(
        out.stdout.lines().last(),
        Some("the sygen background service is already installed (misbehaving backend)"),
        "{}",
        out.stdout
    );
    let both = user.misbehaving("ok", &["onboarding", "--yes", "--no"]);
    assert_eq!(both.code, Some(2));
    assert_eq!(
        both.stderr,
        "error: the argument '--yes' cannot be used with '--no'\n\n\
         Usage: sygen onboarding --yes\n\n\
         For more information, try '--help'.\n"
    );
}

#[test]
fn onboarding_skips_the_offer_when_the_service_manager_is_unavailable() {
    let out = User::new().misbehaving("error", &["onboarding", "--yes"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "not offering a background service: misbehaving backend 0.1.0: \
             is_service_available failed on purpose"
        ),
        "{}",
        out.stdout
    );
    let launchd = library("sygen_launchd");
    let out = User::new().run(&[
        "--backend",
        launchd.to_str().unwrap(),
        "onboarding",
        "--yes",
    ]);
    assert_eq!(
        out.stdout.lines().last(),
        Some(
            "not offering a background service: the launchd service manager is not available \
             here; `sygen run` runs the agent in the foreground"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn bare_sygen_onboards_on_a_first_run_and_shows_help_after() {
    let user = User::new();
    let first = user.misbehaving("fresh", &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(
        first.stdout.lines().next(),
        Some(
            format!(
                "wrote a starting configuration to {}",
                user.sygen_home().join("config.toml").display()
            )
            .as_str()
        ),
        "{}",
        first.stdout
    );
    let later = user.misbehaving("fresh", &[]);
    assert_eq!(later.code, Some(2));
    assert!(
        later.stdout.starts_with(
            "Runs the sygen agent as a per-user background service.\n\n\
             Usage: sygen [OPTIONS] [COMMAND]\n"
        ),
        "{}",
        later.stdout
    );
}

#[test]
fn onboarding_asks_on_a_terminal() {
    let user = User::new();
    let backend = library("misbehaving_backend");
    // `script` gives the command a terminal; the answer arrives on it. The test backend runs
    // nothing, so there is nothing to wait for.
    let line = format!(
        "'{}' --backend '{}' onboarding --no-wait",
        artifacts().join("sygen").display(),
        backend.display()
    );
    let mut script = Command::new("script");
    user.environment(&mut script);
    script
        .args(["-qec", &line, "/dev/null"])
        .env("MISBEHAVE", "fresh")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = script.spawn().expect("script (util-linux) runs");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "Install sygen as a background service (misbehaving: Misbehaves on demand)? [Y/n]"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("install_service: ok for sygen"), "{stdout}");
}
