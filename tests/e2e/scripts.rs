//! The developer scripts, where what they do to a machine matters: the demo installs only the
//! packages it uses.

use std::{path::Path, process::Command};

/// What `scripts/deps ARGS --print` would install on a machine that has none of the packages:
/// an empty root for the files it looks at, and a PATH with nothing but `ls`.
fn missing_on_a_bare_machine(args: &[&str]) -> Vec<String> {
    let bare = tempfile::tempdir().unwrap();
    let bin = bare.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/ls", bin.join("ls")).unwrap();
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/deps");
    let out = Command::new("/bin/bash")
        .arg(deps)
        .args(args)
        .arg("--print")
        .env_clear()
        .env("PATH", &bin)
        .env("SYGEN_DEPS_ROOT", bare.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_demo_installs_only_what_it_uses() {
    let harness = [
        "systemd",
        "dbus-user-session",
        "dbus-bin",
        "util-linux",
        "procps",
    ];
    assert_eq!(missing_on_a_bare_machine(&["demo"]), harness);
    let everything = missing_on_a_bare_machine(&[]);
    assert!(everything[..harness.len()] == harness, "{everything:?}");
    assert!(everything.contains(&"openrc".to_owned()), "{everything:?}");
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo"))
            .unwrap();
    assert!(
        demo.contains("scripts/deps demo\n"),
        "scripts/demo asks for the demo's packages only"
    );
}
