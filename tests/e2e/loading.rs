//! Loading a backend file named with `--backend`, and refusing what cannot or must not be loaded:
//! missing files, directories, files that are not libraries or not backends, backends for
//! another interface, and files others could have changed. Each refusal is one line with a hint.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::{self, artifacts, backend_copy, library, User};

/// The hint for a file that is not a backend library at all.
const NOT_A_BACKEND: &str =
    "pass a sygen backend library (libsygen_<name>.so, .dylib or sygen_<name>.dll)";

/// The hint for a backend built for another interface.
const ANOTHER_INTERFACE: &str =
    "install a version of this backend built for this sygen's interface";

/// Asserts that `--backend path` is refused with exit code 4 and the one line
/// `error: backend <path>: <why> (hint: <hint>)`, and nothing on stdout.
fn bad_backend(user: &User, path: &Path, why: &str, hint: &str) {
    let out = user.run(&["--backend", path.to_str().unwrap(), "service", "status"]);
    let line = out.fails_with(4, why);
    assert_eq!(
        line,
        format!("error: backend {}: {why} (hint: {hint})", path.display())
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_missing_backend_file_is_one_line() {
    let user = User::new();
    bad_backend(
        &user,
        &user.home.path().join("nope.so"),
        "no such file",
        "check the path of the backend file",
    );
}

#[test]
fn a_directory_is_not_a_backend() {
    let user = User::new();
    bad_backend(
        &user,
        user.home.path(),
        "is a directory, not a backend library",
        NOT_A_BACKEND,
    );
}

#[test]
fn an_empty_file_is_not_a_backend() {
    let user = User::new();
    let path = user.home.path().join("empty.so");
    fs::write(&path, b"").unwrap();
    bad_backend(&user, &path, "empty file", NOT_A_BACKEND);
}

#[test]
fn random_bytes_are_not_a_backend() {
    let user = User::new();
    let path = user.home.path().join("random.so");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&path, bytes).unwrap();
    bad_backend(
        &user,
        &path,
        "not a loadable library (invalid ELF header)",
        NOT_A_BACKEND,
    );
}

#[test]
fn a_shared_library_that_is_not_a_backend_is_refused() {
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
        "/usr/lib64/libz.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("zlib is installed (Debian: zlib1g)");
    bad_backend(
        &User::new(),
        &libz,
        "not a sygen backend (it exports no abi_stable root module)",
        NOT_A_BACKEND,
    );
}

#[test]
fn a_backend_for_another_interface_version_is_refused() {
    bad_backend(
        &User::new(),
        &library("interface_2"),
        "built against backend interface 2.0.0; this sygen loads 1.x",
        ANOTHER_INTERFACE,
    );
}

#[test]
fn a_backend_with_another_layout_is_refused_without_a_layout_dump() {
    bad_backend(
        &User::new(),
        &library("foreign_root"),
        "built against an incompatible backend interface (layout mismatch)",
        ANOTHER_INTERFACE,
    );
}

#[test]
fn a_backend_others_could_have_changed_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let user = User::new();
    let writable = backend_copy(&user.home.path().join("libs/libsygen_w.so"), 0o666);
    bad_backend(
        &user,
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

    let open_dir = user.home.path().join("open");
    let inside = backend_copy(&open_dir.join("libsygen_x.so"), 0o644);
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    bad_backend(
        &user,
        &inside,
        &format!(
            "refusing to load it: its directory ({}) is writable by group or others (mode 0777)",
            open_dir.display()
        ),
        &format!(
            "run `chmod go-w {}` if you trust its contents",
            open_dir.display()
        ),
    );
}

#[test]
fn a_backend_owned_by_another_user_is_refused() {
    let user = User::new();
    let theirs = backend_copy(&user.home.path().join("libs/libsygen_theirs.so"), 0o644);
    if std::os::unix::fs::chown(&theirs, Some(65534), None).is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let belongs = |path: &Path| {
        format!(
            "refusing to load it: it ({}) belongs to user 65534, not to you or root",
            path.display()
        )
    };
    bad_backend(
        &user,
        &theirs,
        &belongs(&theirs),
        &format!(
            "copy it somewhere of yours, or `chown` {} to yourself if you trust it",
            theirs.display()
        ),
    );

    // In the search path, it is listed as not loaded, with the reason.
    let dir = user.sygen_home().join("backends");
    fs::create_dir_all(&dir).unwrap();
    let listed = dir.join("libsygen_theirs.so");
    fs::rename(&theirs, &listed).unwrap();
    let out = user.run(&["service", "backends"]);
    let not_loaded = format!("not loaded: {}: {}", listed.display(), belongs(&listed));
    assert!(
        out.succeeds().lines().any(|l| l == not_loaded),
        "{}",
        out.stdout
    );
}

#[test]
fn no_usable_backend_has_its_own_exit_code() {
    let user = User::new();
    let lonely = user.home.path().join("bin");
    fs::create_dir_all(&lonely).unwrap();
    let program = lonely.join("sygen");
    support::copy_executable(&artifacts().join("sygen"), &program);
    let mut command = Command::new(&program);
    command.args(["service", "status"]);
    support::in_home(&mut command, user.home.path());
    let line = User::run_command(command)
        .fails_with(4, "no usable sygen backend for linux was found")
        .to_owned();
    assert_eq!(
        line,
        "error: no usable sygen backend for linux was found (hint: pass --backend <file> or set \
         SYGEN_BACKEND; `sygen service backends` shows what was found and why it did not load)"
    );
}
