//! `sygen service backend add|list|remove|rollback` through the real binary: updates never
//! break a working install, and no file that fails its checks gets installed.

use std::{
    fs::{self, File},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::support::{self, artifacts, library, Outcome};

struct User {
    home: tempfile::TempDir,
}

impl User {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(artifacts().join("sygen"));
        support::in_home(command.args(args), self.home.path());
        command
    }

    fn sygen(&self, args: &[&str]) -> Outcome {
        Outcome::from(self.command(args).output().unwrap())
    }

    fn add(&self, file: &Path) -> Outcome {
        self.sygen(&["service", "backend", "add", file.to_str().unwrap()])
    }

    fn backends(&self) -> PathBuf {
        self.home.path().join(".sygen/backends")
    }

    /// What `backends/versioned/state` names: the version directories in use and kept.
    fn state(&self) -> Option<(String, Option<String>)> {
        let text = fs::read_to_string(self.backends().join("versioned/state")).ok()?;
        let line = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::to_owned))
        };
        Some((line("current")?, line("previous")))
    }

    /// The library of the installed `versioned` backend's version in use.
    fn active(&self) -> PathBuf {
        let (current, _) = self.state().expect("the versioned backend is installed");
        self.backends()
            .join("versioned")
            .join(current)
            .join("libsygen_versioned.so")
    }

    /// The version of the installed `versioned` backend, as sygen loads it.
    fn active_version(&self) -> Option<String> {
        self.state()?;
        let out = self.sygen(&[
            "--backend",
            self.active().to_str().unwrap(),
            "service",
            "backends",
            "--json",
        ]);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        report["backends"][0]["version"].as_str().map(str::to_owned)
    }

    /// The versions of the backends sygen finds in the store on its own (no `--backend`), and
    /// why any file there did not load.
    fn found_in_store(&self) -> Vec<Result<String, String>> {
        let out = self.sygen(&["service", "backends", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let store = fs::canonicalize(self.backends()).unwrap();
        report["backends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| {
                row["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(store.to_str().unwrap()))
            })
            .map(|row| match row["version"].as_str() {
                Some(version) if row["loaded"] == true => Ok(version.to_owned()),
                _ => Err(format!("{}: {}", row["path"], row["error"])),
            })
            .collect()
    }

    /// Every file in the store (besides the lock), relative to it, with the unique part of
    /// version directories as `*`: `versioned/1.0.0-*/libsygen_versioned.so`.
    fn store_files(&self) -> Vec<String> {
        let mut names: Vec<String> = files_under(&self.backends())
            .iter()
            .filter_map(|f| f.strip_prefix(self.backends()).ok())
            .map(|f| {
                let mut parts: Vec<String> =
                    f.iter().map(|c| c.to_string_lossy().into_owned()).collect();
                if parts.len() == 3 && !parts[1].starts_with('.') {
                    if let Some((version, _)) = parts[1].rsplit_once('-') {
                        parts[1] = format!("{version}-*");
                    }
                }
                parts.join("/")
            })
            .filter(|f| f != ".lock")
            .collect();
        names.sort();
        names
    }

    /// What interrupted operations left anywhere in the store.
    fn leftovers(&self) -> Vec<String> {
        self.store_files()
            .into_iter()
            .filter(|f| f.split('/').any(|part| part.starts_with(".tmp")))
            .collect()
    }

    /// The store holding `versioned` at `versions` only (the one in use first), besides their
    /// signatures.
    fn holds_only(&self, versions: &[&str]) {
        let mut expected: Vec<String> = versions
            .iter()
            .map(|v| format!("versioned/{v}-*/libsygen_versioned.so"))
            .chain(["versioned/state".to_owned()])
            .collect();
        expected.sort();
        let held: Vec<String> = self
            .store_files()
            .into_iter()
            .filter(|f| f.starts_with("versioned/") && !f.ends_with(".minisig"))
            .collect();
        assert_eq!(held, expected);
        assert_eq!(self.active_version().as_deref(), Some(versions[0]));
    }
}

/// The files (not directories) under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path()),
            _ => vec![e.path()],
        })
        .collect()
}

#[test]
fn add_upgrades_keeps_the_old_version_and_rolls_back() {
    let user = User::new();
    let out = user.add(&library("versioned_1"));
    assert!(
        out.succeeds().starts_with(&format!(
            "installed the versioned backend 1.0.0 as {}\n",
            user.active().display()
        )),
        "{}",
        out.stdout
    );
    user.holds_only(&["1.0.0"]);
    let mode = fs::metadata(user.active()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);

    let out = user.add(&library("versioned_2"));
    assert!(out
        .succeeds()
        .contains("(kept 1.0.0 for `sygen service backend rollback versioned`)"));
    user.holds_only(&["2.0.0", "1.0.0"]);
    let list = user.sygen(&["service", "backend", "list"]);
    let listing = list.succeeds();
    assert!(
        listing.contains(&format!(
            "versioned 2.0.0: {} — the only copy found",
            user.active().display()
        )),
        "{listing}"
    );
    assert!(listing.contains("  kept for rollback: 1.0.0"), "{listing}");

    // The same version again changes nothing.
    let before = (user.state(), support::tree(&user.backends()));
    assert_eq!(
        user.add(&library("versioned_2")).succeeds(),
        format!(
            "the versioned backend 2.0.0 is already installed ({}); nothing to do\n",
            user.active().display()
        )
    );
    assert_eq!(user.state(), before.0);
    support::assert_unchanged(&user.backends(), &before.1);

    // An older one needs --force.
    let line = user
        .add(&library("versioned_1"))
        .fails_with(
            1,
            "would downgrade the versioned backend from 2.0.0 to 1.0.0",
        )
        .to_owned();
    assert!(line.contains("pass --force"), "{line}");
    assert_eq!(user.active_version().as_deref(), Some("2.0.0"));

    let out = user.sygen(&["service", "backend", "rollback", "versioned"]);
    assert!(out.succeeds().starts_with(&format!(
        "rolled the versioned backend back to 1.0.0 ({})",
        user.active().display()
    )));
    user.holds_only(&["1.0.0", "2.0.0"]);
    let out = user.sygen(&["service", "backend", "rollback", "versioned"]);
    assert!(
        out.succeeds()
            .starts_with("rolled the versioned backend back to 2.0.0"),
        "rollback swaps"
    );
    user.holds_only(&["2.0.0", "1.0.0"]);

    let active = user.active();
    let out = user.sygen(&["service", "backend", "remove", "versioned"]);
    assert_eq!(
        out.succeeds(),
        format!("removed the versioned backend ({})\n", active.display())
    );
    assert!(!user.backends().join("versioned").exists());
    user.sygen(&["service", "backend", "remove", "versioned"])
        .fails_with(4, "no versioned backend is installed");
    user.sygen(&["service", "backend", "rollback", "versioned"])
        .fails_with(1, "no earlier version of the versioned backend is kept");
    assert!(user.store_files().is_empty(), "{:?}", user.store_files());
}

#[test]
fn add_downgrades_with_force() {
    let user = User::new();
    user.add(&library("versioned_2")).succeeds();
    let file = library("versioned_1");
    let out = user.sygen(&[
        "service",
        "backend",
        "add",
        "--force",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.succeeds(),
        format!(
            "installed the versioned backend 1.0.0 as {} (kept 2.0.0 for \
             `sygen service backend rollback versioned`)\n",
            user.active().display()
        )
    );
    assert_eq!(user.active_version().as_deref(), Some("1.0.0"));
}

/// The hint for a file that is not a backend library at all.
const NOT_A_BACKEND: &str =
    "pass a sygen backend library (libsygen_<name>.so, .dylib or sygen_<name>.dll)";

/// The hint for a library that crashed while it was checked.
const NOT_WORKING: &str =
    "this file is not a working sygen backend; remove it or ask its publisher for a fixed build";

/// Asserts that adding `file` over an installed 1.0.0 is refused with the one line
/// `error: backend <file>: <why>; nothing was installed (hint: <hint>)`, and changes nothing.
fn refused(user: &User, file: &Path, why: &str, hint: &str) {
    user.add(&library("versioned_1")).succeeds();
    let line = user.add(file).fails_with(4, why).to_owned();
    assert_eq!(
        line,
        format!(
            "error: backend {}: {why}; nothing was installed (hint: {hint})",
            file.display()
        )
    );
    assert_eq!(
        user.active_version().as_deref(),
        Some("1.0.0"),
        "the working backend stays"
    );
    user.holds_only(&["1.0.0"]);
}

#[test]
fn a_backend_replacing_a_shipped_one_is_named_wherever_the_backend_in_use_is() {
    let user = User::new();
    let added = user.add(&library("impostor"));
    let shipped = artifacts().join("libsygen_systemd.so");
    let says = format!(
        "replaces the systemd backend shipped with sygen ({})",
        shipped.display()
    );
    assert!(
        added
            .succeeds()
            .contains(&format!("it {says} for every command")),
        "{}",
        added.stdout
    );

    let listed = user.sygen(&["service", "backends"]);
    let line = listed
        .succeeds()
        .lines()
        .find(|l| l.starts_with("note: "))
        .unwrap_or_default();
    assert!(
        line.starts_with("note: systemd 99.0.0 (") && line.ends_with(&says),
        "{}",
        listed.stdout
    );
    let json = user.sygen(&["service", "backends", "--json"]);
    let report: serde_json::Value = serde_json::from_str(json.succeeds()).unwrap();
    let in_use: Vec<&serde_json::Value> = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["selected"] == true)
        .collect();
    assert_eq!(in_use.len(), 1);
    assert_eq!(in_use[0]["version"], "99.0.0");
    assert_eq!(in_use[0]["replaces"], shipped.to_str().unwrap());

    let list = user.sygen(&["service", "backend", "list"]);
    assert!(
        list.succeeds().contains(&format!(
            "it replaces the one shipped with sygen ({})",
            shipped.display()
        )),
        "{}",
        list.stdout
    );
    let doctor = user.sygen(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains("[warn] backend-replaced: systemd 99.0.0 from ")
            && doctor.stdout.contains(&says),
        "{}",
        doctor.stdout
    );
    let installed = user.sygen(&["service", "install", "--no-wait"]);
    assert!(
        installed
            .succeeds()
            .contains("(systemd backend 99.0.0 from ")
            && installed
                .stdout
                .contains("which replaces the one shipped with sygen"),
        "{}",
        installed.stdout
    );
    // Named on purpose, a backend replaces nothing unseen.
    let named = user.sygen(&[
        "--backend",
        shipped.to_str().unwrap(),
        "service",
        "backends",
    ]);
    assert!(!named.succeeds().contains("note: "), "{}", named.stdout);
}

#[test]
fn a_name_is_never_a_path() {
    let user = User::new();
    let before = support::tree(user.home.path());
    // A backend calling itself `x/../../y` is refused before anything is written.
    let badly_named = library("badly_named");
    let calls_itself = "it calls itself \"x/../../y\", which has characters other than \
                        lowercase letters, digits, '-' and '_'";
    let line = user
        .add(&badly_named)
        .fails_with(
            4,
            "it calls itself \"x/../../y\", which has characters other than",
        )
        .to_owned();
    assert_eq!(
        line,
        format!(
            "error: backend {}: {calls_itself}; nothing was installed (hint: a backend's name \
             is lowercase letters, digits, '-' and '_' (ask its publisher))",
            badly_named.display()
        )
    );
    support::assert_unchanged(user.home.path(), &before);
    let listed = user.sygen(&[
        "--backend",
        badly_named.to_str().unwrap(),
        "service",
        "backends",
    ]);
    let not_loaded = format!("not loaded: {}: {calls_itself}", badly_named.display());
    assert!(
        listed.stdout.lines().any(|l| l == not_loaded),
        "{}",
        listed.stdout
    );
    // Names typed by the user: usage errors (clap's, with its pointer to --help), and nothing
    // is touched.
    let other_characters = "it has characters other than lowercase letters, digits, '-' and '_'";
    for (name, why) in [
        ("", "it is empty"),
        ("../x", other_characters),
        ("x/../../y", other_characters),
        ("Systemd", other_characters),
        ("a\nb", other_characters),
        ("_x", "it does not start with a letter or digit"),
    ] {
        for verb in ["remove", "rollback"] {
            let out = user.sygen(&["service", "backend", verb, "--", name]);
            assert_eq!(out.code, Some(2), "{}", out.stderr);
            assert_eq!(
                out.stderr,
                format!(
                    "error: invalid value '{name}' for '<NAME>': {name:?} is not a backend \
                     name: {why} (for example: systemd)\n\n\
                     For more information, try '--help'.\n"
                )
            );
        }
    }
    support::assert_unchanged(user.home.path(), &before);
}

#[test]
fn add_refuses_what_is_not_a_good_backend() {
    let scratch = tempfile::tempdir().unwrap();
    let junk = scratch.path().join("libsygen_junk.so");
    fs::write(&junk, vec![0x7f_u8; 4096]).unwrap();
    refused(
        &User::new(),
        &junk,
        "not a loadable library (invalid ELF header)",
        NOT_A_BACKEND,
    );

    refused(
        &User::new(),
        &library("interface_2"),
        "built against backend interface 2.0.0; this sygen loads 1.x",
        "install a version of this backend built for this sygen's interface",
    );

    // A download cut short inside the library's mapped segments: the dynamic loader dies of
    // SIGBUS mapping it, which only the child process of the check sees.
    let truncated = scratch.path().join("libsygen_truncated.so");
    let whole = fs::read(library("versioned_2")).unwrap();
    fs::write(&truncated, &whole[..64 * 1024]).unwrap();
    refused(
        &User::new(),
        &truncated,
        "crashed (SIGBUS) in loading",
        NOT_WORKING,
    );

    let writable = scratch.path().join("libsygen_writable.so");
    fs::copy(library("versioned_2"), &writable).unwrap();
    fs::set_permissions(&writable, fs::Permissions::from_mode(0o666)).unwrap();
    refused(
        &User::new(),
        &writable,
        &format!(
            "refusing to load it: it ({}) is writable by group or others (mode 0666)",
            writable.display()
        ),
        &format!(
            "run `chmod go-w {}` if you trust its contents",
            writable.display()
        ),
    );

    let theirs = scratch.path().join("libsygen_theirs.so");
    fs::copy(library("versioned_2"), &theirs).unwrap();
    if std::os::unix::fs::chown(&theirs, Some(65534), None).is_ok() {
        refused(
            &User::new(),
            &theirs,
            &format!(
                "refusing to load it: it ({}) belongs to user 65534, not to you or root",
                theirs.display()
            ),
            &format!(
                "copy it somewhere of yours, or `chown` {} to yourself if you trust it",
                theirs.display()
            ),
        );
    } else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
    }
}

#[test]
fn a_library_that_crashes_on_load_takes_down_only_the_check() {
    let user = User::new();
    user.add(&library("versioned_1")).succeeds();
    let crashing = library("crash_on_load");
    let out = user.add(&crashing);
    let line = out.fails_with(4, "crashed (SIGABRT) in loading; nothing was installed");
    assert_eq!(
        line,
        format!(
            "error: backend {}: crashed (SIGABRT) in loading; nothing was installed \
             (hint: {NOT_WORKING})",
            crashing.display()
        )
    );
    assert_eq!(user.active_version().as_deref(), Some("1.0.0"));
}

#[test]
fn a_store_held_too_long_is_given_up_in_one_line() {
    let user = User::new();
    user.add(&library("versioned_1")).succeeds();
    // Held by something that does not say who it is, for longer than anyone waits.
    let lock = user.backends().join(".lock");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "600"])
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let out = user.add(&library("versioned_2"));
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "waiting for the backend store: another sygen command is changing it…".to_owned(),
            format!(
                "error: the backend store {} is still being changed by another sygen command \
                 after 1m: nothing was changed (hint: wait for that command to finish, then run \
                 this one again)",
                user.backends().display()
            )
        ]
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(user.active_version().as_deref(), Some("1.0.0"));
}

#[test]
fn concurrent_adds_leave_one_consistent_backend() {
    for _ in 0..3 {
        let user = User::new();
        let children: Vec<_> = [library("versioned_1"), library("versioned_2")]
            .iter()
            .map(|file| {
                user.command(&["service", "backend", "add", file.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            child.wait().unwrap();
        }
        // Whichever came first, the newer version is active (the older, second, is refused as
        // a downgrade), and it loads.
        match user.state() {
            Some((_, Some(_))) => user.holds_only(&["2.0.0", "1.0.0"]),
            _ => user.holds_only(&["2.0.0"]),
        }
    }
}

#[test]
fn a_crash_midway_through_add_leaves_a_backend_that_loads() {
    let user = User::new();
    user.add(&library("versioned_1")).succeeds();
    // A large (padded) update takes long enough to be killed while it is being written.
    let scratch = tempfile::tempdir().unwrap();
    let big = scratch.path().join("libsygen_big.so");
    let mut bytes = fs::read(library("versioned_2")).unwrap();
    bytes.resize(bytes.len() + 200 * 1024 * 1024, 0);
    fs::write(&big, bytes).unwrap();
    for delay_ms in [50, 150, 400] {
        let mut child = user
            .command(&["service", "backend", "add", big.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let version = user.active_version();
        assert!(
            matches!(version.as_deref(), Some("1.0.0" | "2.0.0")),
            "after a kill at {delay_ms} ms the active backend is {version:?}"
        );
        let leftovers = user.leftovers();
        assert!(
            user.store_files().iter().all(|f| leftovers.contains(f)
                || f == "versioned/state"
                || f.ends_with("-*/libsygen_versioned.so")),
            "{:?}",
            user.store_files()
        );
        user.sygen(&["service", "backend", "list"]).succeeds();
        assert_eq!(user.leftovers(), Vec::<String>::new());
    }
}

#[test]
fn output_cut_short_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let user = User::new();
    let mut child = user
        .command(&["service", "backends", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr, "", "nothing at all, no panic");
}

/// A backend publisher's minisign key pair, its public key trusted by `user`.
fn trusted_publisher(user: &User) -> minisign::KeyPair {
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let keys = user.home.path().join(".sygen/trusted-keys");
    fs::create_dir_all(&keys).unwrap();
    fs::write(
        keys.join("publisher.pub"),
        pair.pk.to_box().unwrap().to_string(),
    )
    .unwrap();
    pair
}

/// Writes `<library>.minisig`, as `minisign -Sm <library>` does.
fn sign(pair: &minisign::KeyPair, library: &Path) {
    let data = fs::read(library).unwrap();
    let signature = minisign::sign(Some(&pair.pk), &pair.sk, &data[..], None, None).unwrap();
    let mut name = library.as_os_str().to_owned();
    name.push(".minisig");
    fs::write(PathBuf::from(name), signature.to_string()).unwrap();
}

fn publish(dir: &Path, built: &Path) -> PathBuf {
    let file = dir.join(built.file_name().unwrap());
    fs::copy(built, &file).unwrap();
    file
}

#[test]
fn with_trusted_keys_only_signed_backends_load() {
    let user = User::new();
    let publisher = trusted_publisher(&user);
    let scratch = tempfile::tempdir().unwrap();

    let signed = publish(scratch.path(), &library("versioned_1"));
    sign(&publisher, &signed);
    user.add(&signed).succeeds();
    assert_eq!(user.active_version().as_deref(), Some("1.0.0"));
    let mut signature = user.active().into_os_string();
    signature.push(".minisig");
    assert!(Path::new(&signature).is_file());

    let unsigned = publish(scratch.path(), &library("versioned_2"));
    let line = user
        .add(&unsigned)
        .fails_with(4, "it has no signature")
        .to_owned();
    let keys = user.home.path().join(".sygen/trusted-keys");
    let hint = format!(
        "get the signature from the backend's publisher, or pass --allow-unsigned to load it \
         anyway (keys: {})",
        keys.display()
    );
    assert_eq!(
        line,
        format!(
            "error: backend {0}: refusing to load it: it has no signature ({0}.minisig) and {1} \
             holds trusted keys; nothing was installed (hint: {hint})",
            unsigned.display(),
            keys.display()
        )
    );
    let mismatch = format!(
        "error: backend {0}: refusing to load it: its signature ({0}.minisig) does not match \
         any trusted key in {1}; nothing was installed (hint: {hint})",
        unsigned.display(),
        keys.display()
    );

    let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    sign(&stranger, &unsigned);
    let line = user
        .add(&unsigned)
        .fails_with(4, "does not match any trusted key")
        .to_owned();
    assert_eq!(line, mismatch);

    // A signed file changed afterwards: the signature no longer holds.
    sign(&publisher, &unsigned);
    let mut bytes = fs::read(&unsigned).unwrap();
    bytes.push(0);
    fs::write(&unsigned, bytes).unwrap();
    let line = user
        .add(&unsigned)
        .fails_with(4, "does not match any trusted key")
        .to_owned();
    assert_eq!(line, mismatch);
    assert_eq!(user.active_version().as_deref(), Some("1.0.0"));
}

#[test]
fn keys_someone_else_could_change_refuse_every_backend_and_doctor_says_so() {
    let scratch = tempfile::tempdir().unwrap();
    let nobody = 65534;
    /// How to expose the keys to someone else, and what sygen then says of which place.
    type Case = (fn(&Path, &Path), &'static str, fn(&Path) -> String);
    let cases: [Case; 4] = [
        (
            |keys, _| fs::set_permissions(keys, fs::Permissions::from_mode(0o777)).unwrap(),
            "is writable by group or others (mode 0777)",
            |keys| keys.display().to_string(),
        ),
        (
            |keys, _| {
                let key = keys.join("publisher.pub");
                fs::set_permissions(key, fs::Permissions::from_mode(0o666)).unwrap()
            },
            "is writable by group or others (mode 0666)",
            |keys| keys.join("publisher.pub").display().to_string(),
        ),
        (
            |keys, _| {
                std::os::unix::fs::chown(keys.join("publisher.pub"), Some(65534), None).unwrap()
            },
            "belongs to user 65534, not to you or root",
            |keys| keys.join("publisher.pub").display().to_string(),
        ),
        (
            // Through a link, to a key of nobody's.
            |keys, elsewhere| {
                let theirs = elsewhere.join("theirs.pub");
                fs::copy(keys.join("publisher.pub"), &theirs).unwrap();
                std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
                fs::remove_file(keys.join("publisher.pub")).unwrap();
                std::os::unix::fs::symlink(&theirs, keys.join("publisher.pub")).unwrap();
            },
            "belongs to user 65534, not to you or root",
            |keys| keys.join("publisher.pub").display().to_string(),
        ),
    ];
    if std::os::unix::fs::chown(scratch.path(), Some(nobody), None).is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    std::os::unix::fs::chown(scratch.path(), Some(0), None).unwrap();
    for (expose, why, place) in cases {
        let user = User::new();
        let publisher = trusted_publisher(&user);
        let signed = publish(scratch.path(), &library("misbehaving_backend"));
        sign(&publisher, &signed);
        let status = || {
            let mut command =
                user.command(&["--backend", signed.to_str().unwrap(), "service", "status"]);
            Outcome::from(command.env("MISBEHAVE", "ok").output().unwrap())
        };
        assert_eq!(status().code, Some(0), "{}", status().stderr);
        let keys = user.home.path().join(".sygen/trusted-keys");
        let elsewhere = tempfile::tempdir().unwrap();
        expose(&keys, elsewhere.path());
        let shown = place(&keys);
        let hint = match why.starts_with("is writable") {
            true => format!("run `chmod go-w {shown}`"),
            false => format!("check what it holds, then `chown` {shown} to yourself"),
        };
        // A link is judged by what it points to, and named as it is in trusted-keys.
        assert_eq!(
            status().fails_with(4, why),
            format!(
                "error: backend {}: refusing to load it: trusted keys must be changeable only by \
                 you or root, and {shown} {why} (hint: {hint})",
                signed.display(),
            )
        );
        let doctor = user.sygen(&["doctor"]);
        let line = format!(
            "[FAIL] trusted-keys: every backend is refused: trusted keys must be changeable only \
             by you or root, and {shown} {why}"
        );
        assert!(
            doctor.stdout.lines().any(|l| l == line),
            "{}",
            doctor.stdout
        );
        assert_eq!(doctor.code, Some(1), "{}", doctor.stderr);
    }
}

#[test]
fn when_every_backend_is_refused_for_one_reason_that_reason_is_said() {
    let user = User::new();
    let keys = user.home.path().join(".sygen/trusted-keys");
    fs::create_dir_all(&keys).unwrap();
    fs::write(
        keys.join("broken.pub"),
        "untrusted comment: x\nnot base64!\n",
    )
    .unwrap();
    let out = user.sygen(&["service", "status"]);
    assert_eq!(
        out.fails_with(4, "every backend file found was refused"),
        format!(
            "error: no usable sygen backend for linux was found: every backend file found was \
             refused: refusing to load it: the trusted key {} cannot be used (not a minisign \
             public key: Invalid encoding in minisign data) (hint: fix or remove it: while \
             trusted-keys exists, every backend's signature is checked against the keys in it)",
            keys.join("broken.pub").display()
        )
    );
}

#[test]
fn keys_that_cannot_be_used_refuse_every_backend_naming_the_file() {
    let scratch = tempfile::tempdir().unwrap();
    let unsigned = publish(scratch.path(), &library("versioned_2"));
    let status =
        |user: &User| user.sygen(&["--backend", unsigned.to_str().unwrap(), "service", "status"]);
    let keys = |user: &User| user.home.path().join(".sygen/trusted-keys");
    /// The file that cannot be used (in trusted-keys; "" for trusted-keys itself), why, and
    /// how to spoil the keys.
    type Case = (&'static str, &'static str, fn(&Path));
    let not_a_key = "not a minisign public key: Invalid encoding in minisign data";
    let cases: [Case; 4] = [
        ("broken.pub", not_a_key, |keys| {
            fs::create_dir_all(keys).unwrap();
            fs::write(
                keys.join("broken.pub"),
                "untrusted comment: x\nnot base64!\n",
            )
            .unwrap();
        }),
        (
            "folder.pub",
            "is not a regular file (a directory)",
            |keys| {
                fs::create_dir_all(keys.join("folder.pub")).unwrap();
            },
        ),
        ("", "Not a directory (os error 20)", |keys| {
            fs::create_dir_all(keys.parent().unwrap()).unwrap();
            fs::write(keys, "").unwrap();
        }),
        ("empty.pub", not_a_key, |keys| {
            fs::create_dir_all(keys).unwrap();
            fs::write(keys.join("empty.pub"), "").unwrap();
        }),
    ];
    for (file, why, make) in cases {
        let user = User::new();
        let keys = keys(&user);
        make(&keys);
        let key = if file.is_empty() {
            keys
        } else {
            keys.join(file)
        };
        let refusal = format!(
            "refusing to load it: the trusted key {} cannot be used ({why})",
            key.display()
        );
        let line = status(&user).fails_with(4, why).to_owned();
        assert_eq!(
            line,
            format!(
                "error: backend {}: {refusal} (hint: fix or remove it: while trusted-keys exists, \
                 every backend's signature is checked against the keys in it)",
                unsigned.display()
            )
        );
        // --allow-unsigned still loads it, saying why it is unchecked.
        let out = user.sygen(&[
            "--allow-unsigned",
            "--backend",
            unsigned.to_str().unwrap(),
            "service",
            "backends",
        ]);
        out.succeeds();
        assert_eq!(
            out.stderr.lines().next(),
            Some(
                format!(
                    "warning: loading {} unchecked (--allow-unsigned): {refusal}",
                    unsigned.display()
                )
                .as_str()
            ),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_key_file_holding_only_the_key_line_is_a_key() {
    let user = User::new();
    let publisher = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let keys = user.home.path().join(".sygen/trusted-keys");
    fs::create_dir_all(&keys).unwrap();
    let boxed = publisher.pk.to_box().unwrap().to_string();
    let line = boxed.lines().nth(1).unwrap();
    fs::write(keys.join("publisher.pub"), format!("{line}\n")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let signed = publish(scratch.path(), &library("versioned_1"));
    sign(&publisher, &signed);
    user.add(&signed).succeeds();
    let unsigned = publish(scratch.path(), &library("versioned_2"));
    user.add(&unsigned).fails_with(4, "it has no signature");
}

#[test]
fn allow_unsigned_loads_with_a_loud_warning() {
    let user = User::new();
    trusted_publisher(&user);
    let scratch = tempfile::tempdir().unwrap();
    let unsigned = publish(scratch.path(), &library("versioned_2"));
    let out = user.sygen(&[
        "--allow-unsigned",
        "--backend",
        unsigned.to_str().unwrap(),
        "service",
        "backends",
        "--json",
    ]);
    out.succeeds();
    // Every unsigned backend found is loaded so, the one named first.
    assert_eq!(
        out.stderr.lines().next(),
        Some(
            format!(
                "warning: loading {0} although it has no signature ({0}.minisig) and {1} holds \
                 trusted keys (--allow-unsigned): its code runs with your rights, unchecked",
                unsigned.display(),
                user.home.path().join(".sygen/trusted-keys").display()
            )
            .as_str()
        ),
        "{}",
        out.stderr
    );
    let out = user.sygen(&["--backend", unsigned.to_str().unwrap(), "service", "status"]);
    let line = out.fails_with(4, "it has no signature");
    assert_eq!(
        line,
        format!(
            "error: backend {0}: refusing to load it: it has no signature ({0}.minisig) and {1} \
             holds trusted keys (hint: get the signature from the backend's publisher, or pass \
             --allow-unsigned to load it anyway (keys: {1}))",
            unsigned.display(),
            user.home.path().join(".sygen/trusted-keys").display()
        )
    );
}

/// A small random number generator (xorshift), seeded from the clock: each run tries other
/// moments, and a failure names its seed.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self(u64::from(nanos) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

#[test]
fn kill_9_during_add_or_rollback_never_splits_a_library_from_its_signature() {
    let user = User::new();
    let publisher = trusted_publisher(&user);
    let scratch = tempfile::tempdir().unwrap();
    let signed = |built: &str| {
        let file = publish(scratch.path(), &library(built));
        sign(&publisher, &file);
        file.to_str().unwrap().to_owned()
    };
    let (v1, v2) = (signed("versioned_1"), signed("versioned_2"));
    let add_v1 = ["service", "backend", "add", "--force", &v1];
    let add_v2 = ["service", "backend", "add", &v2];
    let rollback = ["service", "backend", "rollback", "versioned"];
    user.sygen(&add_v1).succeeds();
    user.sygen(&add_v2).succeeds();
    let started = Instant::now();
    user.sygen(&rollback).succeeds();
    let rollback_takes = started.elapsed();
    let mut random = Random::new();
    let seed = random.0;
    let (mut killed, mut in_use) = (0, "1.0.0".to_owned());
    for round in 0..25 {
        // Each round changes something: a rollback, or an add of the version not in use.
        let add = if in_use == "1.0.0" {
            &add_v2[..]
        } else {
            &add_v1[..]
        };
        let args = if random.below(2) == 0 {
            add
        } else {
            &rollback[..]
        };
        let before = user.store_files();
        let mut child = user
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // An add is killed once it starts changing the store (before, it only checks files,
        // slowly in a debug build), after 0 to 1 ms, 0 to 2 ms, …, 0 to 1 s: in its copies,
        // renames, the deletion of the version it drops, or after. A rollback anywhere in it,
        // or not at all (it is mostly a check), so that the versions change.
        let delay = if args[2] == "add" {
            while child.try_wait().unwrap().is_none() && user.store_files() == before {
                thread::sleep(Duration::from_millis(1));
            }
            let scale = 1000 << random.below(11);
            Duration::from_micros(random.below(scale))
        } else {
            Duration::from_micros(random.below(rollback_takes.as_micros() as u64 * 3 / 2))
        };
        thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        // SIGKILL (nothing, if it has ended already).
        let _ = child.kill();
        child.wait().unwrap();
        let when = format!("round {round} (seed {seed}): {args:?}, kill after {delay:?}");
        // The one backend in the store loads as sygen searches for it, signature checked.
        in_use = match &user.found_in_store()[..] {
            [Ok(version)] if version == "1.0.0" || version == "2.0.0" => version.clone(),
            found => panic!("{when}: the store holds {found:?}"),
        };
        // The cheapest store operation (it checks no file): what the kill left goes.
        user.sygen(&["service", "backend", "remove", "not-installed"])
            .fails_with(4, "no not-installed backend is installed");
        assert_eq!(user.leftovers(), Vec::<String>::new(), "{when}");
    }
    assert!(killed > 0, "no operation was killed midway (seed {seed})");
}

#[test]
fn leftovers_of_an_interrupted_add_are_removed_by_the_next_store_operation() {
    let user = User::new();
    user.add(&library("versioned_1")).succeeds();
    user.add(&library("versioned_2")).succeeds();
    let store = user.backends();
    // What killed operations leave: an old-layout `write_atomic` temporary (as big as a
    // library), a version directory being built, a temporary state, and a version directory
    // no state names any more.
    let big = File::create(store.join(".tmpAbCd12")).unwrap();
    big.set_len(28 * 1024 * 1024).unwrap();
    let building = store.join("versioned/.tmp-x");
    fs::create_dir_all(&building).unwrap();
    fs::copy(
        library("versioned_2"),
        building.join("libsygen_versioned.so"),
    )
    .unwrap();
    fs::write(store.join("versioned/.tmpSt4te"), "current x\n").unwrap();
    let orphan = store.join("versioned/0.9.0-Orph4n");
    fs::create_dir_all(&orphan).unwrap();
    fs::copy(library("versioned_1"), orphan.join("libsygen_versioned.so")).unwrap();
    assert_eq!(user.leftovers().len(), 3, "{:?}", user.store_files());

    let listing = user.sygen(&["service", "backend", "list"]);
    assert!(
        listing.succeeds().contains("  kept for rollback: 1.0.0"),
        "{}",
        listing.stdout
    );
    assert!(!orphan.exists());
    user.holds_only(&["2.0.0", "1.0.0"]);
    assert_eq!(user.found_in_store(), [Ok("2.0.0".to_owned())]);
}
