//! What a backend can do to the host, through the real binary: exit, abort, crash or hang in
//! a call, run code in its library constructor. sygen never reports a success it did not see,
//! never dies without a line naming the backend and the call, and never waits without end.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use crate::support::{library, Outcome, User};

/// The one `error:` line of a failed run (a backend's own notes may come before it).
fn error_line(out: &Outcome) -> &str {
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    assert_eq!(out.stderr.lines().last(), Some(errors[0]), "{}", out.stderr);
    errors[0]
}

#[test]
fn a_backend_that_exits_in_a_call_is_a_failure_not_a_success() {
    let user = User::new();
    for command in [&["service", "stop"][..], &["stop"]] {
        let out = user.misbehaving("exit@stop_service", command);
        assert_eq!(out.code, Some(1), "{command:?}: {}", out.stderr);
        let line = error_line(&out);
        assert!(
            line.starts_with(
                "error: misbehaving backend 0.1.0 ended the process (it called exit) in stop_service (hint: "
            ),
            "{line}"
        );
        assert!(!out.stdout.contains("stop_service: ok"), "{}", out.stdout);
    }
}

#[test]
fn a_backend_that_aborts_or_crashes_is_named_with_the_call_and_the_signal() {
    let user = User::new();
    for (behaviour, command, expected) in [
        (
            "abort@install_service",
            &["service", "install", "--no-wait"][..],
            "crashed (SIGABRT) in install_service",
        ),
        (
            "segfault@print_service_status",
            &["service", "status"],
            "crashed (SIGSEGV) in print_service_status",
        ),
        (
            "overflow@is_service_running",
            &["service", "stop"],
            "crashed (SIGSEGV) in is_service_running",
        ),
        (
            "segfault@is_service_running",
            &["stop"],
            "crashed (SIGSEGV) in is_service_running",
        ),
    ] {
        let out = user.misbehaving(behaviour, command);
        assert_eq!(out.code, Some(1), "{behaviour} {command:?}: {}", out.stderr);
        let line = error_line(&out);
        assert!(
            line.starts_with(&format!(
                "error: misbehaving backend 0.1.0 {expected} (hint: "
            )),
            "{line}"
        );
    }
}

/// Truncating a library while its code runs makes its next page fault a SIGBUS: that is the
/// file's doing, not a bug of the backend's, and the line says so.
#[test]
fn a_backend_written_over_while_it_runs_is_said_to_have_changed_on_disk() {
    use std::io::BufRead as _;
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    let copy = crate::support::backend_copy(&dir.path().join("libsygen_nap.so"), 0o644);
    let mut command = user.command(&["--backend", copy.to_str().unwrap(), "service", "status"]);
    command
        .env("MISBEHAVE", "nap")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        if line.unwrap().ends_with(": napping") {
            break;
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_len(0)
        .unwrap();
    let out = Outcome::from(child.wait_with_output().unwrap());
    let line = out.fails_with(1, "crashed (SIGBUS)");
    assert!(
        line.starts_with("error: misbehaving backend 0.1.0 crashed (SIGBUS) in "),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            ": its file {} changed on disk while it was loaded (hint: something wrote over the \
             backend library while sygen ran it;",
            copy.display()
        )),
        "{line}"
    );
    assert!(!line.contains("bug in the backend"), "{line}");
}

#[test]
fn a_backend_that_crashes_or_hangs_while_loading_is_named() {
    let user = User::new();
    let crashing = library("crash_on_load");
    let out = user.run(&["--backend", crashing.to_str().unwrap(), "service", "status"]);
    let line = out.fails_with(
        1,
        &format!(
            "backend {} crashed (SIGABRT) in loading",
            crashing.display()
        ),
    );
    assert_eq!(
        line,
        format!(
            "error: backend {} crashed (SIGABRT) in loading (hint: this is a bug in the backend: \
             report it to its publisher; `sygen service status` shows the state it left the \
             service in)",
            crashing.display()
        )
    );
    let slow = library("on_load");
    let mut command = user.command(&["--backend", slow.to_str().unwrap(), "service", "status"]);
    command
        .env("ON_LOAD", "sleep")
        .env("SYGEN_BACKEND_TIMEOUT", "1");
    let out = User::run_command(command);
    let line = out.fails_with(
        4,
        &format!(
            "backend {}: did not answer loading within 1 s",
            slow.display()
        ),
    );
    assert_eq!(
        line,
        format!(
            "error: backend {}: did not answer loading within 1 s (hint: the backend or its \
             service manager is stuck; `sygen doctor` checks both \
             (SYGEN_BACKEND_TIMEOUT=<seconds> allows more time))",
            slow.display()
        )
    );
}

/// The time limit holds while the backend is still inside the dynamic loader, which keeps its
/// lock for as long as a constructor runs: waiting out the limit must need nothing of that
/// lock. On a busy machine the backend's thread often gets there before sygen starts to wait,
/// so the command is run a dozen times with every core kept busy.
#[test]
fn the_time_limit_holds_on_a_busy_machine_while_a_backend_is_still_loading() {
    let user = User::new();
    let slow = library("on_load");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let busy: Vec<_> = (0..2 * cores)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let mut stuck = Vec::new();
    for round in 0..12 {
        let mut command = user.command(&["--backend", slow.to_str().unwrap(), "service", "status"]);
        command
            .env("ON_LOAD", "sleep")
            .env("SYGEN_BACKEND_TIMEOUT", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("sygen runs");
        let started = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().expect("waiting for sygen") {
                break status.code();
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if code != Some(4) {
            stuck.push(format!(
                "round {round}: {code:?} after {:?}",
                started.elapsed()
            ));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for thread in busy {
        let _ = thread.join();
    }
    assert!(
        stuck.is_empty(),
        "not given up on at the 1 s limit: {stuck:?}"
    );
}

#[test]
fn a_backend_that_does_not_answer_is_given_up_on_at_the_time_limit() {
    let user = User::new();
    let started = Instant::now();
    let mut command = user.command(&[
        "--backend",
        library("misbehaving_backend").to_str().unwrap(),
        "service",
        "status",
    ]);
    command
        .env("MISBEHAVE", "hang@is_service_installed")
        .env("SYGEN_BACKEND_TIMEOUT", "2");
    let out = User::run_command(command);
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let line = error_line(&out);
    assert!(
        line.starts_with(
            "error: misbehaving backend 0.1.0 did not answer is_service_installed within 2 s (hint: "
        ),
        "{line}"
    );
    // The backend sleeps two minutes: sygen did not wait for it.
    assert!(took < Duration::from_secs(60), "took {took:?}");

    // A change the user waits for with --timeout may take that long in the backend too.
    let mut command = user.command(&[
        "--backend",
        library("misbehaving_backend").to_str().unwrap(),
        "service",
        "start",
        "--timeout",
        "3s",
    ]);
    command
        .env("MISBEHAVE", "hang@start_service")
        .env("SYGEN_BACKEND_TIMEOUT", "1");
    let out = User::run_command(command);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let line = error_line(&out);
    assert!(
        line.starts_with(
            "error: misbehaving backend 0.1.0 did not answer start_service within 3 s (hint: "
        ),
        "{line}"
    );

    // doctor says so as one failed check, and asks the stuck backend nothing more.
    let mut command = user.command(&[
        "--backend",
        library("misbehaving_backend").to_str().unwrap(),
        "doctor",
    ]);
    command
        .env("MISBEHAVE", "hang@is_service_available")
        .env("SYGEN_BACKEND_TIMEOUT", "2");
    let out = User::run_command(command);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "[FAIL] service-manager: misbehaving backend 0.1.0 did not answer is_service_available within 2 s"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("backend-checks"), "{}", out.stdout);
}

#[test]
fn a_bad_time_limit_is_one_clear_error() {
    let user = User::new();
    for bad in ["0", "soon", "99999999999999999999"] {
        let mut command = user.command(&[
            "--backend",
            library("misbehaving_backend").to_str().unwrap(),
            "service",
            "status",
        ]);
        command.env("SYGEN_BACKEND_TIMEOUT", bad);
        let out = User::run_command(command);
        let line = out.fails_with(
            1,
            &format!("SYGEN_BACKEND_TIMEOUT={bad} is not a number of seconds from 1 to 3600"),
        );
        assert_eq!(
            line,
            format!(
                "error: SYGEN_BACKEND_TIMEOUT={bad} is not a number of seconds from 1 to 3600 \
                 (hint: unset SYGEN_BACKEND_TIMEOUT for the defaults (10 s for questions, 60 s \
                 for changes))"
            )
        );
    }
}

/// Puts `library` into the user's `$SYGEN_HOME/backends` as `file_name` (a hard link where it
/// can be: fifty copies of a debug build would be more than a gigabyte).
fn drop_in(user: &User, library: &Path, file_name: &str) -> PathBuf {
    let dir = user.home.path().join(".sygen/backends");
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join(file_name);
    if std::fs::hard_link(library, &to).is_err() {
        std::fs::copy(library, &to).unwrap();
    }
    to
}

#[test]
fn finding_backends_runs_none_of_their_code_in_sygen() {
    let user = User::new();
    // A copy of its own: a link would share its change time with the other tests' links,
    // and a file whose change time moves is described again.
    let dir = user.sygen_home().join("backends");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(library("on_load"), dir.join("libsygen_on-load.so")).unwrap();
    let marks = user.home.path().join("loaded-by");
    let mut hosts = Vec::new();
    for args in [
        &["service", "status"][..],
        &["doctor"],
        &["stop"],
        &["service", "backend", "list"],
        &["service", "backends"],
        &["service", "status"],
    ] {
        let mut command = user.command(args);
        command.env("ON_LOAD", format!("mark:{}", marks.display()));
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        hosts.push(child.id());
        child.wait_with_output().unwrap();
    }
    let loaded_by: Vec<u32> = std::fs::read_to_string(&marks)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    // Described once by a child, then from the cache; `backends` asks a child again whether
    // its service manager answers.
    assert_eq!(loaded_by.len(), 2, "{loaded_by:?}");
    for pid in &loaded_by {
        assert!(!hosts.contains(pid), "sygen itself ({pid}) loaded it");
    }
}

#[test]
fn fifty_backends_one_slow_to_load_one_slow_to_answer_are_listed_within_the_limit() {
    let user = User::new();
    for i in 0..48 {
        drop_in(
            &user,
            &library("minimal_backend"),
            &format!("libsygen_copy{i:02}.so"),
        );
    }
    drop_in(&user, &library("on_load"), "libsygen_slow-to-load.so");
    drop_in(
        &user,
        &library("misbehaving_backend"),
        "libsygen_slow-to-answer.so",
    );
    let started = Instant::now();
    let mut command = user.command(&["service", "backends"]);
    command
        .env("ON_LOAD", "sleep")
        .env("MISBEHAVE", "hang@is_service_available")
        .env("SYGEN_BACKEND_TIMEOUT", "3");
    let out = User::run_command(command);
    let took = started.elapsed();
    // Loading (3 s) and asking (3 s), or at worst the 16 s after which a child is ended: far
    // from the two minutes each would take.
    assert!(took < Duration::from_secs(40), "took {took:?}");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows = out
        .stdout
        .lines()
        .filter(|l| l.contains("minimal") && l.contains("libsygen_copy"))
        .count();
    assert_eq!(rows, 48, "{}", out.stdout);
    // Its child says so itself, or, on a machine too busy for the child to answer in time,
    // is ended and named by sygen.
    assert!(
        out.stdout.lines().any(|l| l.starts_with("not loaded: ")
            && l.contains("libsygen_slow-to-load.so")
            && (l.contains("did not answer loading within 3 s")
                || l.contains("describing it did not finish in time"))),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().any(|l| l.starts_with(
            "misbehaving: availability unknown: misbehaving backend 0.1.0 did not answer is_service_available within 3 s"
        )),
        "{}",
        out.stdout
    );
}

#[test]
fn a_library_swapped_in_between_check_and_load_is_never_the_one_loaded() {
    let user = User::new();
    let sygen_home = user.home.path().join(".sygen");
    let keys = sygen_home.join("trusted-keys");
    std::fs::create_dir_all(&keys).unwrap();
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    std::fs::write(
        keys.join("publisher.pub"),
        pair.pk.to_box().unwrap().to_string(),
    )
    .unwrap();
    // The signed 1.0.0 and a never-signed 2.0.0, each ready to be renamed over `active`.
    let dir = user.home.path().join("store");
    std::fs::create_dir_all(&dir).unwrap();
    let active = dir.join("libsygen_versioned.so");
    let (signed, unsigned) = (dir.join("signed"), dir.join("unsigned"));
    std::fs::copy(library("versioned_1"), &active).unwrap();
    let data = std::fs::read(library("versioned_1")).unwrap();
    let signature = minisign::sign(Some(&pair.pk), &pair.sk, &data[..], None, None).unwrap();
    std::fs::write(
        dir.join("libsygen_versioned.so.minisig"),
        signature.to_string(),
    )
    .unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, active, signed, unsigned) = (
            stop.clone(),
            active.clone(),
            signed.clone(),
            unsigned.clone(),
        );
        let (v1, v2) = (library("versioned_1"), library("versioned_2"));
        std::thread::spawn(move || {
            // Links, not copies: each swap is two system calls, as fast as a race can be.
            let place = |from: &Path, to: &Path| {
                if std::fs::hard_link(from, to).is_err() {
                    std::fs::copy(from, to).unwrap();
                }
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                place(&v2, &unsigned);
                std::fs::rename(&unsigned, &active).unwrap();
                place(&v1, &signed);
                std::fs::rename(&signed, &active).unwrap();
            }
        })
    };
    let mut loaded = Vec::new();
    for _ in 0..8 {
        for args in [
            &["service", "status"][..],
            &["service", "backends", "--json"],
        ] {
            let mut full = vec!["--backend", active.to_str().unwrap()];
            full.extend_from_slice(args);
            let out = user.run(&full);
            loaded.push(format!("{}{}", out.stdout, out.stderr));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    for output in &loaded {
        assert!(
            !output.contains("2.0.0") || output.contains("refusing to load it"),
            "the never-signed library was loaded: {output}"
        );
    }
    // Both outcomes happened: the check is not simply refusing everything.
    assert!(
        loaded
            .iter()
            .any(|o| o.contains("versioned backend 1.0.0") || o.contains("\"version\": \"1.0.0\"")),
        "{loaded:#?}"
    );
}
