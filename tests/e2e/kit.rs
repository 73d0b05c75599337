//! The backend author kit as a third party meets it: the template, written out of the guide
//! in `sygen-backend-api` as packaged for crates.io (the one place an author finds it), builds
//! against that package, and sygen finds and loads it and shows its dry run; made into a real
//! backend over a small supervisor, it passes the conformance suite in its own `cargo test`,
//! and sygen runs the service through it. And what the guide says of developing next to
//! `trusted-keys` and of subscribing to a channel holds.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use crate::support::{self, User};

/// `sygen-backend-api` as it would be published, unpacked in `outside`, where no path leads
/// into this checkout: answers its directory.
fn packaged_api(outside: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let packaged = Command::new(&cargo)
        .args([
            "package",
            "-p",
            "sygen-backend-api",
            "--allow-dirty",
            "--no-verify",
        ])
        .arg("--target-dir")
        .arg(outside.join("target"))
        .current_dir(support::repository())
        .output()
        .unwrap();
    assert!(
        packaged.status.success(),
        "{}",
        String::from_utf8_lossy(&packaged.stderr)
    );
    let archive = outside.join("target/package/sygen-backend-api-1.2.0.crate");
    let unpacked = Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(outside)
        .status()
        .unwrap();
    assert!(unpacked.success());
    outside.join("sygen-backend-api-1.2.0")
}

/// The template's files as the guide gives them: under its heading "The template, file by
/// file", each "### `<path>`" and the fenced block after it.
fn template_in(guide: &str) -> Vec<(PathBuf, String)> {
    let mut lines = guide
        .lines()
        .skip_while(|line| *line != "## The template, file by file")
        .skip(1);
    let mut files = Vec::new();
    let mut path = None;
    while let Some(line) = lines.next() {
        if line.starts_with("## ") {
            break;
        }
        if let Some(name) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            path = Some(PathBuf::from(name));
        } else if line.starts_with("```") {
            let content: String = lines
                .by_ref()
                .take_while(|line| *line != "```")
                .map(|line| format!("{line}\n"))
                .collect();
            files.push((
                path.take().expect("a file's heading before its block"),
                content,
            ));
        }
    }
    assert!(!files.is_empty(), "the guide holds no template");
    files
}

/// The template as an author starts from it: written out of the guide in the unpacked crate
/// `api` into `outside/template`; answers that directory.
fn template_from_packaged_guide(api: &Path, outside: &Path) -> PathBuf {
    let guide = fs::read_to_string(api.join("WRITING-A-BACKEND.md")).unwrap();
    let template = outside.join("template");
    for (path, content) in template_in(&guide) {
        let file = template.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, content).unwrap();
    }
    template
}

/// The files under `dir` that are not build output, relative to it.
fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                files.extend(
                    source_files(&path)
                        .into_iter()
                        .map(|f| Path::new(&entry.file_name()).join(f)),
                );
            }
        } else if entry.file_name() != "Cargo.lock" {
            files.push(PathBuf::from(entry.file_name()));
        }
    }
    files.sort();
    files
}

#[test]
fn the_guide_holds_the_template_of_the_repository_file_for_file() {
    let repository = support::repository();
    let guide = fs::read_to_string(repository.join("backend-api/WRITING-A-BACKEND.md")).unwrap();
    let template = repository.join("backend-api/template");
    let in_guide = template_in(&guide);
    let paths: Vec<PathBuf> = in_guide.iter().map(|(path, _)| path.clone()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(sorted, source_files(&template));
    for (path, content) in in_guide {
        let file = fs::read_to_string(template.join(&path)).unwrap();
        assert!(
            file == content,
            "{} differs from the guide's: make the guide's copy the file again",
            path.display()
        );
    }
}

/// The template's manifest as an author copies it (its one dependency is
/// `sygen-backend-api = "1.2"`), with the unpacked crate standing in for crates.io.
fn use_packaged_api(copy: &Path, api: &Path) -> String {
    let manifest = copy.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let dependencies = text
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("[dev-dependencies]").next())
        .unwrap_or_default();
    assert_eq!(dependencies.trim(), "sygen-backend-api = \"1.2\"", "{text}");
    format!(
        "{text}\n[patch.crates-io]\nsygen-backend-api = {{ path = {:?} }}\n",
        api.display().to_string()
    )
}

#[test]
fn the_template_from_the_packaged_guide_builds_against_the_packaged_crate_and_sygen_shows_it() {
    let outside = tempfile::tempdir().unwrap();
    let api = packaged_api(outside.path());
    let template = template_from_packaged_guide(&api, outside.path());
    let patch = |copy: &Path| {
        let manifest = use_packaged_api(copy, &api);
        fs::write(copy.join("Cargo.toml"), manifest).unwrap();
    };
    let built = support::build_out_of_tree(&template, patch);
    // Its own unit tests, with a test context from the SDK, pass there too, and its
    // conformance test is there, waiting for a service manager.
    let (_, tests) = support::cargo_out_of_tree(&template, patch, &["test"], &[]);
    assert!(tests.contains("test result: ok. 2 passed"), "{tests}");
    assert!(
        tests.contains("test behaves_as_sygen_expects ... ignored"),
        "{tests}"
    );

    let user = User::new();
    let backends = user.sygen_home().join("backends");
    fs::create_dir_all(&backends).unwrap();
    let library = backends.join("libsygen_example.so");
    fs::copy(built.join("libsygen_example.so"), &library).unwrap();
    let listing = user.run(&["service", "backends", "--json"]);
    let report: serde_json::Value = serde_json::from_str(listing.succeeds()).unwrap();
    let example = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "example")
        .unwrap_or_else(|| panic!("example not listed: {}", listing.stdout));
    assert_eq!(example["loaded"], true);
    assert_eq!(example["version"], "0.1.0");
    assert_eq!(example["api_version"], "1.2.0");
    assert_eq!(example["available"], false);
    assert!(example["path"]
        .as_str()
        .unwrap()
        .starts_with(backends.to_str().unwrap()));

    // Its install, shown exactly and not made: the definition, the link that enables it and
    // the supervisor started detached, in the directory its settings name.
    let dir = outside.path().join("supervisor");
    let config = user.sygen_home().join("config.toml");
    fs::write(
        &config,
        format!(
            "[backends.example]\ndir = {:?}\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    let dry_run = |user: &User| {
        user.run(&[
            "--backend",
            library.to_str().unwrap(),
            "service",
            "install",
            "--dry-run",
        ])
    };
    let shown = dry_run(&user);
    let (available, enabled) = (
        dir.join("available/sygen.conf"),
        dir.join("enabled/sygen.conf"),
    );
    assert_eq!(
        support::dry_run_lines(shown.succeeds()),
        [
            format!("would write {} (utf-8, mode 0644):", available.display()),
            format!(
                "would link {} to {}",
                enabled.display(),
                available.display()
            ),
            format!("would start, detached: example-supervise {}", dir.display()),
            "dry run: nothing was changed".to_owned(),
        ]
    );
    assert!(!dir.exists());
    // A setting of the wrong kind is named with the file it is in.
    fs::write(&config, "[backends.example]\ndir = 3\n").unwrap();
    dry_run(&user).fails_with(
        1,
        &format!(
            "example backend 0.1.0: `dir` in [backends.example] of {} is 3, not a path",
            config.display()
        ),
    );
}

/// A tinysup daemon in `dir`, ended when dropped.
struct Tinysup(Child);

impl Tinysup {
    fn start(program: &Path, dir: &Path) -> Self {
        let child = Command::new(program)
            .arg("daemon")
            .arg(dir)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("control.sock").exists() {
            assert!(Instant::now() < deadline, "tinysup did not start listening");
            thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for Tinysup {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_outside_authors_backend_over_a_small_supervisor_passes_its_own_conformance_test_and_runs_sygen(
) {
    let outside = tempfile::tempdir().unwrap();
    let api = packaged_api(outside.path());
    // The supervisor: one file of std-only Rust, like any program a backend drives.
    let tinysup = outside.path().join("tinysup");
    let fixture = support::repository().join("tests/kit/tinysup");
    let compiled = Command::new("rustc")
        .args(["--edition", "2021", "-O"])
        .arg(fixture.join("supervisor.rs"))
        .arg("-o")
        .arg(&tinysup)
        .status()
        .unwrap();
    assert!(compiled.success());

    // The template, written out of the packaged guide and made real: renamed, its source
    // replaced by the author's.
    let template = template_from_packaged_guide(&api, outside.path());
    let make_real = |copy: &Path| {
        let manifest = use_packaged_api(copy, &api)
            .replace("name = \"sygen-example\"", "name = \"sygen-tinysup\"")
            .replace("name = \"sygen_example\"", "name = \"sygen_tinysup\"")
            .replace(
                "[dev-dependencies]\n",
                "[dev-dependencies]\ntempfile = \"3\"\n",
            );
        fs::write(copy.join("Cargo.toml"), manifest).unwrap();
        for file in ["src/lib.rs", "tests/conformance.rs"] {
            fs::copy(fixture.join(file), copy.join(file)).unwrap();
        }
    };
    let (built, tests) = support::cargo_out_of_tree(
        &template,
        make_real,
        &["test", "--", "--nocapture"],
        &[("TINYSUP", &tinysup)],
    );
    // Its unit tests, and the suite `sygen service conformance` runs, row for row.
    assert!(tests.contains("test result: ok. 3 passed"), "{tests}");
    assert!(
        tests.contains("conformance of the tinysup backend 0.1.0 (")
            && !tests.contains("FAIL")
            && tests.contains("12 of 12 checks passed\n"),
        "{tests}"
    );

    // sygen runs its service through the backend, chosen for good and configured in
    // config.toml, with tinysup where the settings say.
    let user = User::new();
    let backends = user.sygen_home().join("backends");
    fs::create_dir_all(&backends).unwrap();
    fs::copy(
        built.join("deps/libsygen_tinysup.so"),
        backends.join("libsygen_tinysup.so"),
    )
    .unwrap();
    let dir = outside.path().join("supervised");
    let _daemon = Tinysup::start(&tinysup, &dir);
    let config = user.sygen_home().join("config.toml");
    let settings = format!(
        "[backends.tinysup]\ndir = {:?}\nprogram = {:?}\n",
        dir.display().to_string(),
        tinysup.display().to_string()
    );
    fs::write(&config, &settings).unwrap();
    assert_eq!(
        user.run(&["service", "backend", "use", "tinysup"])
            .succeeds(),
        format!(
            "sygen uses the tinysup backend from now on ({}; set in {})\n",
            backends.join("libsygen_tinysup.so").display(),
            config.display()
        )
    );
    let installed = user.run(&["service", "install"]);
    assert!(
        installed
            .succeeds()
            .contains("(tinysup backend, chosen in config.toml)"),
        "{}",
        installed.stdout
    );
    let status = user.run(&["service", "status"]);
    assert!(
        status.succeeds().contains("sygen under tinysup: running "),
        "{}",
        status.stdout
    );
    // Its settings reach it wherever it is asked, in the listing's child processes too.
    let listing = user.run(&["service", "backends"]);
    assert!(
        listing
            .succeeds()
            .contains("* tinysup   0.1.0   linux    yes")
            && listing
                .stdout
                .contains("* in use: tinysup 0.1.0, chosen in config.toml"),
        "{}",
        listing.stdout
    );
    let doctor = user.run(&["doctor"]);
    assert!(
        doctor
            .succeeds()
            .contains("[pass] service-manager: the tinysup service manager answers")
            && doctor
                .stdout
                .contains("[pass] service: sygen is installed and running"),
        "{}",
        doctor.stdout
    );
    assert_eq!(
        user.run(&["service", "uninstall"]).succeeds(),
        "sygen service uninstalled\n"
    );
    assert!(!dir.join("programs/sygen.conf").exists());

    // A setting of the wrong kind is named by the backend, with its file, in doctor.
    let chosen = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        chosen.replace(&format!("dir = {:?}", dir.display().to_string()), "dir = 3"),
    )
    .unwrap();
    let doctor = user.run(&["doctor"]);
    assert!(
        doctor.stdout.contains(&format!(
            "`dir` in [backends.tinysup] of {} is 3, not a path",
            config.display()
        )),
        "{}",
        doctor.stdout
    );
}

/// A minisign key of the author's, without a password, as `dir/<name>.key`, its public half
/// trusted in `user`'s sygen home as `<name>.pub`: answers the secret key's path.
fn trusted_author_key(user: &User, dir: &Path, name: &str) -> PathBuf {
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let key = dir.join(format!("{name}.key"));
    fs::write(&key, pair.sk.to_box(None).unwrap().to_string()).unwrap();
    let keys = user.sygen_home().join("trusted-keys");
    fs::create_dir_all(&keys).unwrap();
    let public = pair.pk.to_box().unwrap().to_string();
    fs::write(keys.join(format!("{name}.pub")), public).unwrap();
    key
}

/// `sygen service backend publish`: `library` signed with `key` into `manifest`, its URL the
/// library's file name, beside the manifest.
fn publish(user: &User, library: &Path, key: &Path, manifest: &Path) {
    let name = library.file_name().unwrap().to_str().unwrap();
    user.run(&[
        "service",
        "backend",
        "publish",
        library.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--url",
        name,
        "--manifest",
        manifest.to_str().unwrap(),
    ])
    .succeeds();
}

#[test]
fn next_to_trusted_keys_a_signed_dev_build_loads_and_a_mirror_updates_a_backend_once_named() {
    let user = User::new();
    let dev = tempfile::tempdir().unwrap();
    // The author's key for development, trusted where they try their backend.
    let key = trusted_author_key(&user, dev.path(), "dev");

    // A fresh build is refused by --backend, and loads with --allow-unsigned, warned about.
    let build = dev.path().join("libsygen_versioned.so");
    fs::copy(support::library("versioned_1"), &build).unwrap();
    let named = |before: &[&str], command: &[&str]| {
        let mut args = before.to_vec();
        args.extend(["--backend", build.to_str().unwrap()]);
        args.extend(command);
        user.run(&args)
    };
    named(&[], &["service", "status"]).fails_with(4, "it has no signature");
    let allowed = named(&["--allow-unsigned"], &["service", "backends", "--json"]);
    allowed.succeeds();
    assert!(
        allowed.stderr.starts_with(&format!(
            "warning: loading {} although it has no signature",
            build.display()
        )),
        "{}",
        allowed.stderr
    );

    // Signed with publish, into a manifest beside it, it loads as it is: no warning for it.
    let manifest = dev.path().join("stable.json");
    publish(&user, &build, &key, &manifest);
    let signed = named(&[], &["service", "backends", "--json"]);
    let report: serde_json::Value = serde_json::from_str(signed.succeeds()).unwrap();
    assert_eq!(report["backends"][0]["path"], build.to_str().unwrap());
    assert_eq!(report["backends"][0]["loaded"], true, "{report}");
    assert!(
        !signed.stderr.contains(build.to_str().unwrap()),
        "{}",
        signed.stderr
    );

    // That directory is a file:// mirror. Updating takes installed backends only, and a copy
    // put in backends/ by hand is none: named, it is installed.
    let backends = user.sygen_home().join("backends");
    fs::create_dir_all(&backends).unwrap();
    fs::copy(&build, backends.join("libsygen_versioned.so")).unwrap();
    let channel = format!("file://{}", manifest.display());
    let update = |names: &[&str]| {
        let mut args = vec!["service", "backend", "update", "--channel", &channel];
        args.extend(names);
        user.run(&args)
    };
    assert_eq!(
        update(&[]).succeeds(),
        "the stable channel offers no backend installed here\n"
    );
    let installed = update(&["versioned"]);
    assert!(
        installed
            .succeeds()
            .contains("installed the versioned backend 1.0.0"),
        "{}",
        installed.stdout
    );
    assert!(
        update(&[])
            .succeeds()
            .contains("every backend is up to date with the stable channel"),
        "{}",
        installed.stdout
    );

    // Plain HTTP is refused, however local the server.
    let plain = "http://127.0.0.1:8000/stable.json";
    user.run(&["service", "backend", "update", "--channel", plain])
        .fails_with(1, &format!("refusing {plain}: http is not HTTPS"));
}

#[test]
fn the_conformance_library_gives_the_table_sygen_service_conformance_gives() {
    // Timings and the sandbox's name aside, row for row, for a backend that implements
    // nothing and one that answers only whether its manager is there.
    let rows = |table: &str| -> Vec<String> {
        table
            .lines()
            .skip(1)
            .map(|line| {
                let line = line.replace(|c: char| c.is_ascii_digit(), "#");
                match line.split_once("$HOME-") {
                    Some((before, after)) => {
                        format!("{before}$HOME-…{}", after.get(6..).unwrap_or(""))
                    }
                    None => line,
                }
            })
            .collect()
    };
    for name in ["minimal_backend", "on_load"] {
        let file = support::library(name);
        // Side by side: each waits out the logs check's time limit.
        let host = thread::spawn({
            let file = file.clone();
            move || {
                User::new().run(&[
                    "--backend",
                    file.to_str().unwrap(),
                    "service",
                    "conformance",
                ])
            }
        });
        let scratch = tempfile::tempdir().unwrap();
        let report = sygen_backend_api::conformance::Conformance::of_file(&file)
            .user_home(scratch.path())
            .run()
            .unwrap();
        assert!(!report.all_passed());
        let host = host.join().unwrap();
        assert_eq!(rows(&report.to_string()), rows(&host.stdout), "{name}");
    }
}

/// The fenced blocks of `language` in the part of `guide` that starts at `marker`, up to the
/// next section.
fn blocks_after<'g>(guide: &'g str, marker: &str, language: &str) -> Vec<&'g str> {
    let part = guide
        .split_once(marker)
        .expect("the guide holds the part")
        .1;
    let part = part.split("\n## ").next().unwrap_or_default();
    part.split(&format!("```{language}\n"))
        .skip(1)
        .filter_map(|block| block.split_once("\n```").map(|(text, _)| text))
        .collect()
}

/// `openssl s_server -WWW` started as `line` says in `dir`, in a process group of its own so
/// the shell and the server end together when dropped.
struct WebServer(Child);

impl WebServer {
    fn start(line: &str, dir: &Path, port: u16) -> Self {
        use std::os::unix::process::CommandExt;
        let child = Command::new("sh")
            .args(["-c", line])
            .current_dir(dir)
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen");
            thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for WebServer {
    /// Ends the group and waits until none of it is left, so the next server finds the port
    /// free and a connection never reaches this one.
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["--", &group]).status();
        let _ = self.0.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new("kill")
            .args(["-0", "--", &group])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The guide's local HTTPS test, as written: its openssl commands make an authority and a
/// certificate for localhost, `openssl s_server` serves the mirror, and the `[updates]` it gives
/// (with `ca_file`) updates a backend from it; a self-signed certificate is refused as it says.
#[test]
fn the_guides_local_https_test_serves_a_channel_sygen_updates_from() {
    let guide =
        fs::read_to_string(support::repository().join("backend-api/WRITING-A-BACKEND.md")).unwrap();
    let shell = blocks_after(&guide, "**A local HTTPS test**", "sh");
    let toml = blocks_after(&guide, "**A local HTTPS test**", "toml");
    let (shell, toml) = (shell[0], toml[0]);
    let (setup, serve) = shell.rsplit_once('\n').unwrap();
    let port = free_port();
    let on_port = |text: &str, port: u16| text.replace("8443", &port.to_string());

    // The author's directory: a key trusted here and a mirror published with it.
    let user = User::new();
    let author = tempfile::tempdir().unwrap();
    let key = trusted_author_key(&user, author.path(), "sygen-mine");
    let mirror = author.path().join("mirror");
    fs::create_dir_all(&mirror).unwrap();
    let library = mirror.join("libsygen_versioned.so");
    fs::copy(support::library("versioned_1"), &library).unwrap();
    publish(&user, &library, &key, &mirror.join("stable.json"));

    let made = Command::new("sh")
        .args(["-ec", setup])
        .current_dir(author.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ca = author.path().join("ca.pem");
    fs::write(
        user.sygen_home().join("config.toml"),
        on_port(toml, port).replace("/home/me/sygen-mine/ca.pem", ca.to_str().unwrap()),
    )
    .unwrap();

    let server = WebServer::start(&on_port(serve, port), author.path(), port);
    let installed = user.run(&["service", "backend", "update", "versioned"]);
    assert!(
        installed
            .succeeds()
            .contains("installed the versioned backend 1.0.0"),
        "{}",
        installed.stdout
    );
    drop(server);

    // The authority's own certificate as the server's: refused, as the guide says.
    let self_signed = serve
        .replace("../server.pem", "../ca.pem")
        .replace("../server.key", "../ca.key");
    assert_ne!(
        self_signed, serve,
        "the guide's server line names its certificate"
    );
    let port = free_port();
    let _server = WebServer::start(&on_port(&self_signed, port), author.path(), port);
    let channel = format!("https://localhost:{port}/stable.json");
    user.run(&[
        "service",
        "backend",
        "update",
        "--check",
        "--channel",
        &channel,
    ])
    .fails_with(1, "CaUsedAsEndEntity");
}
