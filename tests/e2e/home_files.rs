//! Files of the sygen home that are something else: a FIFO where sygen keeps its registry
//! cache, a trusted key, a backend's store state or the last update check, and a FIFO named as
//! the update channel or its certificate authorities. A blocking open of a FIFO waits for a
//! writer that never comes; every command must finish, and say which file it could not use.

use std::{fs, path::Path};

use crate::support::{finishes, library, mkfifo, Outcome, User};

#[test]
fn a_fifo_as_the_backend_cache_is_rebuilt_and_changes_no_answer() {
    let user = User::new();
    fs::create_dir_all(user.sygen_home()).unwrap();
    let cache = user.sygen_home().join("cache/backends.json");
    for args in [
        &["service", "backends"][..],
        &["service", "status"],
        &["service", "install", "--dry-run"],
        &["service", "backend", "list"],
        &["doctor"],
        &["stop"],
    ] {
        // What the run before left is replaced by the FIFO.
        let _ = fs::remove_file(&cache);
        mkfifo(&cache);
        let with_fifo = finishes(user.command(args));
        let _ = fs::remove_file(&cache);
        let without = finishes(user.command(args));
        assert_eq!(
            (
                with_fifo.code,
                free_space_masked(&with_fifo.stdout),
                &with_fifo.stderr
            ),
            (
                without.code,
                free_space_masked(&without.stdout),
                &without.stderr
            ),
            "sygen {}",
            args.join(" ")
        );
    }
}

/// `doctor`'s report with the free space left out: other tests write to the same disk
/// between two runs.
fn free_space_masked(report: &str) -> String {
    report
        .lines()
        .map(|line| match line.strip_prefix("[pass] disk-space: ") {
            Some(rest) => format!(
                "[pass] disk-space: N{}",
                rest.trim_start_matches(|c: char| c.is_ascii_digit())
            ),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_fifo_as_a_trusted_key_is_named_as_the_key_that_cannot_be_used() {
    let user = User::new();
    let key = user.sygen_home().join("trusted-keys/publisher.pub");
    mkfifo(&key);
    let backend = library("misbehaving_backend");
    let mut command = user.command(&["--backend", backend.to_str().unwrap(), "service", "status"]);
    command.env("MISBEHAVE", "ok");
    let out = finishes(command);
    assert_eq!(
        out.fails_with(4, "cannot be used"),
        format!(
            "error: backend {}: refusing to load it: the trusted key {} cannot be used (is not a \
             regular file (a FIFO)) (hint: fix or remove it: while trusted-keys exists, every \
             backend's signature is checked against the keys in it)",
            backend.display(),
            key.display()
        )
    );
}

#[test]
fn a_fifo_as_a_backends_store_state_is_named_and_nothing_is_lost() {
    let user = User::new();
    let add = |file: &Path| {
        finishes(user.command(&["service", "backend", "add", file.to_str().unwrap()]))
    };
    add(&library("versioned_1")).succeeds();
    let state = user.sygen_home().join("backends/versioned/state");
    let kept = fs::read_to_string(&state).unwrap();
    fs::remove_file(&state).unwrap();
    mkfifo(&state);

    // Listing skips what it cannot read; changing it refuses, naming the file.
    let list = finishes(user.command(&["service", "backend", "list"]));
    assert!(
        !list.succeeds().contains("versioned 1.0.0"),
        "{}",
        list.stdout
    );
    let out = add(&library("versioned_2"));
    assert_eq!(
        out.fails_with(1, "state"),
        format!(
            "error: cannot read the state of the versioned backend: {} is not a regular file \
             (a FIFO)",
            state.display()
        )
    );
    // The version installed is still there for when the state is back.
    fs::remove_file(&state).unwrap();
    fs::write(&state, kept).unwrap();
    let list = finishes(user.command(&["service", "backend", "list"]));
    assert!(
        list.succeeds().contains("versioned 1.0.0"),
        "{}",
        list.stdout
    );
}

#[test]
fn a_fifo_as_the_last_update_check_leaves_doctor_without_it() {
    let user = User::new();
    fs::create_dir_all(user.sygen_home()).unwrap();
    let without = finishes(user.command(&["doctor", "--json"]));
    mkfifo(&user.sygen_home().join("cache/updates.json"));
    let with_fifo = finishes(user.command(&["doctor", "--json"]));
    assert_eq!(with_fifo.code, without.code, "{}", with_fifo.stderr);
    assert!(
        !with_fifo.stdout.contains("backend-updates"),
        "{}",
        with_fifo.stdout
    );
    let checks = |out: &Outcome| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(checks(&with_fifo), checks(&without));
}

/// A user whose updates need a signature: a trusted key, any will do.
fn user_with_a_trusted_key() -> User {
    let user = User::new();
    let keys = user.sygen_home().join("trusted-keys");
    fs::create_dir_all(&keys).unwrap();
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    fs::write(
        keys.join("publisher.pub"),
        pair.pk.to_box().unwrap().to_string(),
    )
    .unwrap();
    user
}

#[test]
fn a_fifo_as_the_channel_or_its_authorities_is_one_line_naming_it() {
    let user = user_with_a_trusted_key();
    let channel = user.home.path().join("mirror/channel.json");
    mkfifo(&channel);
    let url = format!("file://{}", channel.display());
    let out = finishes(user.command(&["service", "backend", "update", "--channel", &url]));
    assert_eq!(
        out.fails_with(1, "FIFO"),
        format!(
            "error: cannot read {} (is not a regular file (a FIFO)) (hint: check the channel's \
             URL ([updates] channel in config.toml, or --channel))",
            channel.display()
        )
    );

    let authorities = user.home.path().join("authorities.pem");
    mkfifo(&authorities);
    fs::write(
        user.sygen_home().join("config.toml"),
        format!(
            "[updates]\nca_file = {:?}\n",
            authorities.display().to_string()
        ),
    )
    .unwrap();
    let out = finishes(user.command(&["service", "backend", "update", "--channel", &url]));
    assert_eq!(
        out.fails_with(1, "FIFO"),
        format!(
            "error: cannot read the CA file {} (is not a regular file (a FIFO)) (hint: fix \
             `ca_file` in [updates] of config.toml)",
            authorities.display()
        )
    );
}
