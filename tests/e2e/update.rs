//! `sygen service backend update` through the real binary, against a real HTTPS server on
//! 127.0.0.1 whose certificate comes from a certificate authority the test makes and the
//! user trusts through `ca_file` in config.toml (verification is never turned off). The
//! channels are signed by keys the tests make; each bad channel, file or server is one clear
//! line, the installed backend as it was, and nothing left behind.

use std::{
    collections::HashMap,
    fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use crate::support::{self, library, Outcome, User};
use serde_json::{json, Value};

/// How the server answers one path.
#[derive(Clone)]
enum Route {
    Ok(Vec<u8>),
    /// Announces the whole body, sends the first bytes, and hangs up.
    CutAfter(Vec<u8>, usize),
    /// Sends the first bytes, then nothing for a minute.
    Stall(Vec<u8>, usize),
    /// Sends the body slowly: a tenth of it every 100 ms.
    Slow(Vec<u8>),
    /// Sends the body a byte every 2 s, never going silent for long.
    Trickle(Vec<u8>),
    Redirect(String),
}

/// An HTTPS server on 127.0.0.1 with a certificate for it from a fresh CA (saved as `ca`).
#[test]
fn a_trickling_server_is_given_up_in_time_and_a_command_waiting_is_told_why() {
    let s = Setup::new().with_v1_installed();
    let config = s.user.sygen_home().join("config.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    // Any size takes no time at this rate: each download gets its 30 s start only.
    text.push_str("min_bytes_per_second = 1073741824\n");
    fs::write(&config, text).unwrap();
    let (manifest, signature) = s
        .publisher
        .manifest(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    s.server
        .put("stable.json", Route::Trickle(manifest.clone()));
    s.server
        .put("stable.json.minisig", Route::Ok(signature.into_bytes()));

    let started = std::time::Instant::now();
    let update = s
        .user
        .command(&["service", "backend", "update", "versioned"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let holder = update.id();
    // The store is held by the update: a command that needs it says who has it, and waits.
    thread::sleep(Duration::from_secs(3));
    let list = s.user.run(&["service", "backend", "list"]);
    let update = Outcome::from(update.wait_with_output().unwrap());
    let url = s.server.url("stable.json");
    // What is being waited for shows once a second has passed; then the one error line.
    assert_eq!(update.code, Some(1), "{}", update.stderr);
    let lines: Vec<&str> = update.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", update.stderr);
    assert_eq!(lines[0], format!("fetching {url}…"));
    let line = lines[1];
    assert!(
        line.starts_with(&format!(
            "error: the download of {url} took longer than 30s ("
        )) && line.ends_with(&format!(
            " of {} bytes came; it is given 30s and 1073741824 bytes a second): refusing it \
             (hint: nothing was changed; try again later, or allow slower downloads with \
             `min_bytes_per_second` in [updates] of config.toml)",
            manifest.len()
        )),
        "{line}"
    );
    // Given up at the deadline, a read's silence at most later.
    assert!(
        started.elapsed() < Duration::from_secs(70),
        "{:?}",
        started.elapsed()
    );
    assert!(
        list.succeeds().contains("versioned 1.0.0"),
        "{}",
        list.stdout
    );
    assert_eq!(
        list.stderr,
        format!(
            "waiting for the backend store: pid {holder} (`sygen service backend update \
             versioned`) is changing it…\n"
        )
    );
    assert_eq!(s.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn a_certificate_from_an_authority_not_trusted_says_how_to_trust_it() {
    let s = Setup::new();
    s.serve(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    let url = s.server.url("stable.json");
    let config = s.user.sygen_home().join("config.toml");
    let fetched_with = |updates: String| {
        fs::write(&config, format!("[updates]\nchannel = {url:?}\n{updates}")).unwrap();
        let out = s.update(&[]);
        out.fails_with(1, "cannot fetch").to_owned()
    };
    // rustls's own words of why are between the URL and the hint.
    let refused = |line: &str, hint: &str| {
        assert!(
            line.starts_with(&format!("error: cannot fetch {url} (")) && line.ends_with(hint),
            "{line}"
        );
    };
    refused(
        &fetched_with(String::new()),
        " (hint: if the channel's server has a certificate of its own authority, name that \
         authority's PEM file as `ca_file` in [updates] of config.toml)",
    );
    let other = Server::start();
    let other_ca = other.ca.path().display().to_string();
    refused(
        &fetched_with(format!("ca_file = {other_ca:?}\n")),
        &format!(" (hint: the server's certificate is not from the authority in {other_ca})"),
    );
    // Not a certificate: nothing answers there.
    let nobody = "https://127.0.0.1:1/stable.json";
    let out = s.update(&["--channel", nobody]);
    let line = out.fails_with(1, "cannot fetch");
    assert!(
        line.starts_with(&format!("error: cannot fetch {nobody} ("))
            && line.ends_with(
                " (hint: nothing was changed; check the channel's URL and your connection)"
            ),
        "{line}"
    );
}

struct Server {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    ca: tempfile::NamedTempFile,
}

impl Server {
    fn start() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sygen test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
        let mut ca = tempfile::NamedTempFile::new().unwrap();
        ca.write_all(ca_cert.pem().as_bytes()).unwrap();

        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
                )
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let served = routes.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, routes) = (config.clone(), served.clone());
                thread::spawn(move || answer(stream, config, &routes));
            }
        });
        Self { port, routes, ca }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    fn put(&self, path: &str, route: Route) {
        self.routes
            .lock()
            .unwrap()
            .insert(format!("/{path}"), route);
    }
}

fn answer(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    routes: &Mutex<HashMap<String, Route>>,
) {
    let connection = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut request = Vec::new();
    let mut byte = [0; 1];
    while !request.ends_with(b"\r\n\r\n") && request.len() < 8192 {
        if tls.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        request.push(byte[0]);
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let route = routes.lock().unwrap().get(&path).cloned();
    let head = |status: &str, length: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
    };
    let _ = match route {
        None => tls.write_all(head("404 Not Found", 0).as_bytes()),
        Some(Route::Ok(body)) => tls
            .write_all(head("200 OK", body.len()).as_bytes())
            .and_then(|()| tls.write_all(&body)),
        Some(Route::CutAfter(body, sent)) => {
            let _ = tls.write_all(head("200 OK", body.len()).as_bytes());
            let _ = tls.write_all(&body[..sent]);
            let _ = tls.flush();
            // Hang up without TLS's goodbye.
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
            return;
        }
        Some(Route::Stall(body, sent)) => {
            let _ = tls.write_all(head("200 OK", body.len()).as_bytes());
            let _ = tls.write_all(&body[..sent]);
            let _ = tls.flush();
            thread::sleep(Duration::from_secs(60));
            return;
        }
        Some(Route::Slow(body)) => {
            let _ = tls.write_all(head("200 OK", body.len()).as_bytes());
            for chunk in body.chunks(body.len() / 10 + 1) {
                let _ = tls.write_all(chunk);
                let _ = tls.flush();
                thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        Some(Route::Trickle(body)) => {
            let _ = tls.write_all(head("200 OK", body.len()).as_bytes());
            for byte in &body {
                if tls.write_all(&[*byte]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
                thread::sleep(Duration::from_secs(2));
            }
            Ok(())
        }
        Some(Route::Redirect(location)) => tls.write_all(
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        ),
    };
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// This machine as channels name targets.
fn here() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// A publisher: a minisign key pair making signed entries and manifests.
struct Publisher(minisign::KeyPair);

impl Publisher {
    fn new() -> Self {
        Self(minisign::KeyPair::generate_unencrypted_keypair().unwrap())
    }

    fn trusted_by(&self, user: &User) {
        let dir = user.sygen_home().join("trusted-keys");
        fs::create_dir_all(&dir).unwrap();
        let key = self.0.pk.to_box().unwrap().to_string();
        fs::write(dir.join("publisher.pub"), key).unwrap();
    }

    fn sign(&self, data: &[u8], trusted_comment: &str) -> String {
        minisign::sign(None, &self.0.sk, data, Some(trusted_comment), None)
            .unwrap()
            .to_string()
    }

    /// The entry for `file`, its signature vouching for `signed` (name, version, target,
    /// interface), announcing `entry` (the same, unless a test lies).
    fn entry(
        &self,
        file: &[u8],
        url: &str,
        signed: (&str, &str, &str, u64),
        entry: (&str, &str, &str, u64),
    ) -> Value {
        let comment = |(name, version, target, interface): (&str, &str, &str, u64)| {
            format!(
                "sygen-backend name={name} version={version} target={target} interface={interface}"
            )
        };
        json!({
            "name": entry.0, "version": entry.1, "target": entry.2, "interface": entry.3,
            "url": url, "size": file.len(), "sha256": sha256(file),
            "signature": self.sign(file, &comment(signed)),
        })
    }

    /// A manifest of `entries` and its signature.
    fn manifest(&self, entries: &[Value], issued: &str, expires: &str) -> (Vec<u8>, String) {
        let manifest = json!({
            "channel": "stable", "issued": issued, "expires": expires, "backends": entries,
        });
        let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let comment = format!("sygen-channel stable issued={issued} expires={expires}");
        let signature = self.sign(&bytes, &comment);
        (bytes, signature)
    }
}

fn sha256(bytes: &[u8]) -> String {
    let output = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&output.stdout)[..64].to_owned()
}

const ISSUED: &str = "2026-06-01T00:00:00Z";
const LATER: &str = "2026-07-01T00:00:00Z";
const EXPIRES: &str = "2099-01-01T00:00:00Z";

/// A user trusting `publisher`, whose config names the channel on `server` and its CA.
struct Setup {
    user: User,
    server: Server,
    publisher: Publisher,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

impl Setup {
    fn new() -> Self {
        let user = User::new();
        let server = Server::start();
        let publisher = Publisher::new();
        publisher.trusted_by(&user);
        fs::write(
            user.sygen_home().join("config.toml"),
            format!(
                "[updates]\nchannel = {:?}\nca_file = {:?}\n",
                server.url("stable.json"),
                server.ca.path().display().to_string()
            ),
        )
        .unwrap();
        let v1 = fs::read(library("versioned_1")).unwrap();
        let v2 = fs::read(library("versioned_2")).unwrap();
        Self {
            user,
            server,
            publisher,
            v1,
            v2,
        }
    }

    /// The entry of the versioned backend at `version` (1.0.0 or 2.0.0), served at `path`.
    fn entry(&self, version: &str, path: &str) -> Value {
        let file = if version == "1.0.0" {
            &self.v1
        } else {
            &self.v2
        };
        let signed = ("versioned", version, &*here(), 1);
        self.publisher.entry(
            file,
            &self.server.url(path),
            signed,
            ("versioned", version, &here(), 1),
        )
    }

    /// Serves a channel of `entries`, issued at `issued`.
    fn serve(&self, entries: &[Value], issued: &str, expires: &str) {
        let (manifest, signature) = self.publisher.manifest(entries, issued, expires);
        self.server.put("stable.json", Route::Ok(manifest));
        self.server
            .put("stable.json.minisig", Route::Ok(signature.into_bytes()));
    }

    fn serve_files(&self) {
        self.server.put("v1.so", Route::Ok(self.v1.clone()));
        self.server.put("v2.so", Route::Ok(self.v2.clone()));
    }

    fn update(&self, args: &[&str]) -> Outcome {
        let mut full = vec!["service", "backend", "update"];
        full.extend_from_slice(args);
        self.user.run(&full)
    }

    /// The version of the versioned backend in the store, if one is installed.
    fn installed(&self) -> Option<String> {
        let state =
            fs::read_to_string(self.user.sygen_home().join("backends/versioned/state")).ok()?;
        let current = state.lines().find_map(|l| l.strip_prefix("current "))?;
        Some(current.split('-').next()?.to_owned())
    }

    /// The library of the versioned backend's version in use.
    fn in_use(&self) -> PathBuf {
        let versioned = self.user.sygen_home().join("backends/versioned");
        let state = fs::read_to_string(versioned.join("state")).unwrap();
        let current = state
            .lines()
            .find_map(|l| l.strip_prefix("current "))
            .unwrap();
        versioned.join(current).join("libsygen_versioned.so")
    }

    /// Nothing an update stages is left in the store.
    fn assert_nothing_left(&self) {
        let store = self.user.sygen_home().join("backends");
        let left: Vec<PathBuf> = walk(&store)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
            })
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    /// Installs 1.0.0 from the channel.
    fn with_v1_installed(self) -> Self {
        self.serve_files();
        self.serve(&[self.entry("1.0.0", "v1.so")], ISSUED, EXPIRES);
        self.update(&["versioned"]).succeeds();
        assert_eq!(self.installed().as_deref(), Some("1.0.0"));
        self
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        found.push(entry.path());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walk(&entry.path()));
        }
    }
    found
}

#[test]
fn updates_to_the_newest_version_for_this_target_and_interface_and_then_has_nothing_to_do() {
    let s = Setup::new();
    s.serve_files();
    let other_target = s.publisher.entry(
        &s.v2,
        &s.server.url("v2.so"),
        ("versioned", "3.0.0", "windows-x86_64", 1),
        ("versioned", "3.0.0", "windows-x86_64", 1),
    );
    let other_interface = s.publisher.entry(
        &s.v2,
        &s.server.url("v2.so"),
        ("versioned", "4.0.0", &here(), 2),
        ("versioned", "4.0.0", &here(), 2),
    );
    s.serve(
        &[
            s.entry("1.0.0", "v1.so"),
            s.entry("2.0.0", "v2.so"),
            other_target,
            other_interface,
        ],
        ISSUED,
        EXPIRES,
    );
    let check = s.update(&["versioned", "--check"]);
    assert!(
        check
            .succeeds()
            .contains("  versioned: not installed → 2.0.0 available"),
        "{}",
        check.stdout
    );
    assert_eq!(s.installed(), None);

    let out = s.update(&["versioned"]);
    assert!(
        out.succeeds()
            .contains("installed the versioned backend 2.0.0"),
        "{}",
        out.stdout
    );
    assert_eq!(s.installed().as_deref(), Some("2.0.0"));
    let list = s.user.run(&["service", "backend", "list"]);
    assert_eq!(
        list.succeeds().lines().next(),
        Some(
            format!(
                "versioned 2.0.0: {} — the only copy found",
                s.in_use().display()
            )
            .as_str()
        ),
        "{}",
        list.stdout
    );

    let again = s.update(&[]);
    assert!(
        again
            .succeeds()
            .contains("every backend is up to date with the stable channel"),
        "{}",
        again.stdout
    );
    let none = s.update(&["elsewhere"]);
    assert!(
        none.succeeds().contains(&format!(
            "the stable channel has nothing for the elsewhere backend on {} (interface 1)",
            here()
        )),
        "{}",
        none.stdout
    );
    let json: Value = serde_json::from_str(s.update(&["--check", "--json"]).succeeds()).unwrap();
    assert_eq!(json["backends"][0]["status"], "up-to-date");
    assert_eq!(json["backends"][0]["installed"], "2.0.0");
    s.assert_nothing_left();

    // doctor says what the last check found, without going online.
    let doctor = s.user.run(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains("[pass] backend-updates: no backend update at the last check"),
        "{}",
        doctor.stdout
    );
}

#[test]
fn doctor_tells_of_an_update_from_the_last_check() {
    let s = Setup::new().with_v1_installed();
    s.serve(
        &[s.entry("1.0.0", "v1.so"), s.entry("2.0.0", "v2.so")],
        LATER,
        EXPIRES,
    );
    s.update(&["--check"]).succeeds();
    let doctor = s.user.run(&["doctor"]);
    assert!(
        doctor.stdout.contains(
            "[warn] backend-updates: the versioned backend 2.0.0 (1.0.0 in use) available from"
        ),
        "{}",
        doctor.stdout
    );
    assert_eq!(s.installed().as_deref(), Some("1.0.0"));
}

/// Runs `update versioned` and expects it to fail with `message`, leaving 1.0.0 installed and
/// nothing behind.
fn refused(s: &Setup, message: &str) -> String {
    let out = s.update(&["versioned"]);
    let line = out.fails_with(1, message).to_owned();
    eprintln!("refused as expected: {}", out.stderr.trim_end());
    assert_eq!(s.installed().as_deref(), Some("1.0.0"), "{}", out.stdout);
    s.assert_nothing_left();
    line
}

#[test]
fn a_tampered_file_or_a_wrong_sha256_is_refused() {
    let s = Setup::new().with_v1_installed();
    let mut tampered = s.v2.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    s.server.put("v2.so", Route::Ok(tampered));
    s.serve(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    refused(&s, "has sha256");

    s.serve_files();
    let mut entry = s.entry("2.0.0", "v2.so");
    entry["sha256"] = json!("0".repeat(64));
    s.serve(&[entry], LATER, EXPIRES);
    refused(
        &s,
        &format!("not the {} the channel announced", "0".repeat(64)),
    );
}

#[test]
fn signatures_must_be_by_a_trusted_key_and_vouch_for_exactly_what_the_channel_says() {
    let s = Setup::new().with_v1_installed();
    // The manifest signed by someone else.
    let stranger = Publisher::new();
    let (manifest, signature) = stranger.manifest(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    s.server.put("stable.json", Route::Ok(manifest));
    s.server
        .put("stable.json.minisig", Route::Ok(signature.into_bytes()));
    refused(&s, "is not signed by any trusted key");

    // The file signed by someone else.
    let entry = stranger.entry(
        &s.v2,
        &s.server.url("v2.so"),
        ("versioned", "2.0.0", &here(), 1),
        ("versioned", "2.0.0", &here(), 1),
    );
    s.serve(&[entry], LATER, EXPIRES);
    refused(
        &s,
        "its signature is not by the key that signed the channel",
    );

    // The channel's own key's signature, as 2.0.0, of another file (1.0.0's bytes).
    let mut entry = s.entry("2.0.0", "v2.so");
    let borrowed = s.publisher.entry(
        &s.v1,
        &s.server.url("v2.so"),
        ("versioned", "2.0.0", &here(), 1),
        ("versioned", "2.0.0", &here(), 1),
    );
    entry["signature"] = borrowed["signature"].clone();
    s.serve(&[entry], LATER, EXPIRES);
    let keys = s.user.sygen_home().join("trusted-keys/publisher.pub");
    assert_eq!(
        refused(&s, "is of other bytes than these"),
        format!(
            "error: the versioned backend 2.0.0 from {}: its signature, by the key that signed \
             the channel ({}), is of other bytes than these (hint: nothing was installed; tell \
             the channel's publisher)",
            s.server.url("v2.so"),
            keys.display()
        )
    );

    // 1.0.0, validly signed as 1.0.0, announced as 9.0.0.
    let entry = s.publisher.entry(
        &s.v1,
        &s.server.url("v1.so"),
        ("versioned", "1.0.0", &here(), 1),
        ("versioned", "9.0.0", &here(), 1),
    );
    s.serve(&[entry], LATER, EXPIRES);
    refused(
        &s,
        "its signature vouches for `sygen-backend name=versioned version=1.0.0",
    );

    // Signed as 9.0.0 too: the library itself says 1.0.0.
    let entry = s.publisher.entry(
        &s.v1,
        &s.server.url("v1.so"),
        ("versioned", "9.0.0", &here(), 1),
        ("versioned", "9.0.0", &here(), 1),
    );
    s.serve(&[entry], LATER, EXPIRES);
    refused(&s, "says it is the versioned backend 1.0.0");

    // No keys at all: no update.
    fs::remove_dir_all(s.user.sygen_home().join("trusted-keys")).unwrap();
    s.serve(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    refused(&s, "there are no trusted keys in");
}

#[test]
fn a_manifest_from_the_future_is_refused_and_locks_no_one_out() {
    let s = Setup::new().with_v1_installed();
    let now = std::time::SystemTime::now();
    let rfc3339 = |t| humantime::format_rfc3339_seconds(t).to_string();
    let ahead = rfc3339(now + Duration::from_secs(48 * 3600));
    s.serve(&[s.entry("2.0.0", "v2.so")], &ahead, EXPIRES);
    let out = s.update(&["versioned"]);
    let line = out.fails_with(1, "after this machine's time");
    assert!(
        line.starts_with(&format!(
            "error: the channel manifest {} was issued at {ahead}, more than 1h after this \
             machine's time (",
            s.server.url("stable.json")
        )) && line.ends_with(
            "): refusing it (hint: check this machine's clock; if it is right, the channel's \
             publisher must publish a manifest with the right time)"
        ),
        "{line}"
    );
    assert_eq!(s.installed().as_deref(), Some("1.0.0"));
    // Not remembered as the newest: a correctly dated manifest is believed.
    s.serve(&[s.entry("2.0.0", "v2.so")], &rfc3339(now), EXPIRES);
    s.update(&["versioned"]).succeeds();
    assert_eq!(s.installed().as_deref(), Some("2.0.0"));
}

#[test]
fn an_expired_or_replayed_manifest_and_a_downgrade_are_refused() {
    let s = Setup::new().with_v1_installed();
    s.serve(&[s.entry("2.0.0", "v2.so")], ISSUED, "2026-06-02T00:00:00Z");
    refused(&s, "expired at 2026-06-02T00:00:00Z");

    // 2.0.0 from a manifest issued later; then the first manifest again.
    s.serve(
        &[s.entry("1.0.0", "v1.so"), s.entry("2.0.0", "v2.so")],
        LATER,
        EXPIRES,
    );
    s.update(&["versioned"]).succeeds();
    assert_eq!(s.installed().as_deref(), Some("2.0.0"));
    s.serve(&[s.entry("1.0.0", "v1.so")], ISSUED, EXPIRES);
    let out = s.update(&["versioned"]);
    out.fails_with(1, "before the newest one sygen has seen from this channel");

    // A fresh manifest whose newest is lower than what was installed from it.
    s.serve(
        &[s.entry("1.0.0", "v1.so")],
        "2026-08-01T00:00:00Z",
        EXPIRES,
    );
    let out = s.update(&["versioned"]);
    out.fails_with(
        1,
        "the channel offers the versioned backend 1.0.0, lower than 2.0.0 installed from it before",
    );
    // rollback stays the explicit way back.
    let back = s.user.run(&["service", "backend", "rollback", "versioned"]);
    assert_eq!(
        back.succeeds(),
        format!(
            "rolled the versioned backend back to 1.0.0 ({})\n",
            s.in_use().display()
        )
    );
    assert_eq!(s.installed().as_deref(), Some("1.0.0"));
    s.assert_nothing_left();
}

#[test]
fn a_broken_server_is_one_line_and_changes_nothing() {
    let s = Setup::new().with_v1_installed();
    s.serve(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    s.server
        .put("v2.so", Route::CutAfter(s.v2.clone(), s.v2.len() / 3));
    let line = refused(&s, "broke off after");
    // What the TLS library says of the hang-up, if anything, aside.
    assert!(
        line.starts_with(&format!(
            "error: the download of {} broke off after {} of {} bytes",
            s.server.url("v2.so"),
            s.v2.len() / 3,
            s.v2.len()
        )) && line.ends_with(" (hint: nothing was installed; try again)"),
        "{line}"
    );

    s.routes_remove("v2.so");
    assert_eq!(
        refused(&s, "answered 404 Not Found"),
        format!(
            "error: {} answered 404 Not Found (hint: check the channel's URL ([updates] channel \
             in config.toml, or --channel))",
            s.server.url("v2.so")
        )
    );

    let elsewhere = format!("https://localhost:{}/v2.so", s.server.port);
    s.server.put("v2.so", Route::Redirect(elsewhere.clone()));
    assert_eq!(
        refused(&s, "on another host: refusing it"),
        format!(
            "error: {} redirects to {elsewhere}, on another host: refusing it (hint: a channel's \
             files are fetched from the host its URL names; tell the channel's publisher)",
            s.server.url("v2.so")
        )
    );

    let mut larger = s.v2.clone();
    larger.extend_from_slice(b"and more");
    s.server.put("v2.so", Route::Ok(larger));
    assert_eq!(
        refused(&s, "not the"),
        format!(
            "error: {} is {} bytes, not the {} the channel announced (hint: nothing was \
             installed; tell the channel's publisher)",
            s.server.url("v2.so"),
            s.v2.len() + b"and more".len(),
            s.v2.len()
        )
    );

    let mut huge = s.entry("2.0.0", "v2.so");
    huge["size"] = json!(1u64 << 40);
    s.serve(&[huge], LATER, EXPIRES);
    assert_eq!(
        refused(&s, "more than a backend library can be"),
        format!(
            "error: the channel announces the versioned backend 2.0.0 as {} bytes, more than a \
             backend library can be ({} bytes): refusing it (hint: nothing was installed; tell \
             the channel's publisher)",
            1u64 << 40,
            256 << 20
        )
    );

    // A plain-HTTP channel is refused before anything is asked.
    let out = s.update(&["--channel", "http://127.0.0.1:1/stable.json"]);
    assert_eq!(
        out.fails_with(1, "is not HTTPS"),
        "error: refusing http://127.0.0.1:1/stable.json: http is not HTTPS (hint: a channel is \
         an https:// URL, or file:// for an offline mirror)"
    );
}

impl Setup {
    fn routes_remove(&self, path: &str) {
        self.server
            .routes
            .lock()
            .unwrap()
            .remove(&format!("/{path}"));
    }
}

#[test]
fn a_killed_update_leaves_the_installed_backend_and_its_leftovers_go_next_time() {
    let s = Setup::new().with_v1_installed();
    s.serve(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    s.server
        .put("v2.so", Route::Stall(s.v2.clone(), s.v2.len() / 2));
    let mut update = s
        .user
        .command(&["service", "backend", "update", "versioned"]);
    let mut child = update
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store = s.user.sygen_home().join("backends");
    support::eventually("the download to start", Duration::from_secs(20), || {
        walk(&store).iter().any(|p| {
            p.to_string_lossy().contains(".tmp-update-")
                && p.metadata().is_ok_and(|m| m.is_file() && m.len() > 0)
        })
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.installed().as_deref(), Some("1.0.0"));
    let list = s.user.run(&["service", "backend", "list"]);
    assert_eq!(
        list.succeeds().lines().next(),
        Some(
            format!(
                "versioned 1.0.0: {} — the only copy found",
                s.in_use().display()
            )
            .as_str()
        ),
        "{}",
        list.stdout
    );

    // The next update (which takes the store's lock) clears what the killed one left.
    s.serve_files();
    s.update(&["versioned"]).succeeds();
    assert_eq!(s.installed().as_deref(), Some("2.0.0"));
    s.assert_nothing_left();
}

#[test]
fn a_full_disk_leaves_the_installed_backend_and_no_partial_download() {
    let s = Setup::new();
    // Room for 1.0.0 (downloaded, then installed) and the store's small files, not for
    // 2.0.0 besides.
    let store = s.user.sygen_home().join("backends");
    let room = (2 * s.v1.len() + s.v2.len() / 2) / 1024 + 64;
    let Some(_tmpfs) = support::Tmpfs::mount(&store, &format!("{room}k")) else {
        return;
    };
    let s = s.with_v1_installed();
    s.serve(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    refused(&s, "No space left on device");
}

#[test]
fn an_update_killed_while_the_new_backend_is_checked_leaves_the_installed_one() {
    // on-load's constructor sleeps (ON_LOAD=sleep): the update is killed while the
    // downloaded library is being checked, after its download and before the switch.
    let s = Setup::new();
    let on_load = fs::read(library("on_load")).unwrap();
    s.server.put("on-load.so", Route::Ok(on_load.clone()));
    let entry = |version: &str| {
        let signed = ("on-load", version, &*here(), 1);
        s.publisher
            .entry(&on_load, &s.server.url("on-load.so"), signed, signed)
    };
    s.serve(&[entry("0.1.0")], ISSUED, EXPIRES);
    let mut update = s.user.command(&["service", "backend", "update", "on-load"]);
    update.env("ON_LOAD", "sleep").process_group(0);
    let child = update
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store = s.user.sygen_home().join("backends");
    support::eventually(
        "the download to be checked",
        Duration::from_secs(30),
        || {
            walk(&store).iter().any(|p| {
                p.to_string_lossy().contains(".tmp-update-")
                    && p.extension().is_some_and(|e| e == "minisig")
            })
        },
    );
    thread::sleep(Duration::from_millis(300));
    // The update and the child checking the library, together.
    Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    let _ = child.wait_with_output();
    assert!(!store.join("on-load/state").exists(), "{:?}", walk(&store));
    let check = s.update(&["on-load", "--check"]);
    assert_eq!(
        check.succeeds(),
        format!(
            "the stable channel ({}), issued {ISSUED}, for {}:\n  \
             on-load: not installed → 0.1.0 available\n",
            s.server.url("stable.json"),
            here()
        )
    );
    s.assert_nothing_left();
    assert!(!store.join("on-load").exists(), "{:?}", walk(&store));
}

#[test]
fn two_updates_at_once_install_once() {
    let s = Setup::new().with_v1_installed();
    s.serve(&[s.entry("2.0.0", "v2.so")], LATER, EXPIRES);
    s.server.put("v2.so", Route::Slow(s.v2.clone()));
    let children: Vec<_> = (0..2)
        .map(|_| {
            s.user
                .command(&["service", "backend", "update", "versioned"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Outcome> = children
        .into_iter()
        .map(|c| Outcome::from(c.wait_with_output().unwrap()))
        .collect();
    let installed = outputs
        .iter()
        .filter(|o| {
            o.succeeds()
                .contains("installed the versioned backend 2.0.0")
        })
        .count();
    let up_to_date = outputs
        .iter()
        .filter(|o| o.stdout.contains("every backend is up to date"))
        .count();
    assert_eq!(
        (installed, up_to_date),
        (1, 1),
        "{:?}",
        outputs.iter().map(|o| &o.stdout).collect::<Vec<_>>()
    );
    assert_eq!(s.installed().as_deref(), Some("2.0.0"));
    s.assert_nothing_left();
}

#[test]
fn a_publisher_builds_a_channel_that_updates_from_an_offline_mirror() {
    let user = User::new();
    let mirror = tempfile::tempdir().unwrap();
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let secret = mirror.path().join("publisher.key");
    fs::write(&secret, pair.sk.to_box(None).unwrap().to_string()).unwrap();
    Publisher(pair).trusted_by(&user);
    let manifest = mirror.path().join("stable.json");
    for (lib, file) in [("versioned_1", "v1.so"), ("versioned_2", "v2.so")] {
        let copy = mirror.path().join(file);
        fs::copy(library(lib), &copy).unwrap();
        let url = format!("file://{}", copy.display());
        let out = user.run(&[
            "service",
            "backend",
            "publish",
            copy.to_str().unwrap(),
            "--key",
            secret.to_str().unwrap(),
            "--url",
            &url,
            "--manifest",
            manifest.to_str().unwrap(),
        ]);
        assert!(
            out.succeeds().contains("signed the stable channel"),
            "{}",
            out.stdout
        );
    }
    let published: Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(
        published["backends"].as_array().unwrap().len(),
        2,
        "{published}"
    );
    assert_eq!(published["backends"][1]["target"], here());
    let channel = format!("file://{}", manifest.display());
    let out = user.run(&[
        "service",
        "backend",
        "update",
        "versioned",
        "--channel",
        &channel,
    ]);
    assert!(
        out.succeeds()
            .contains("installed the versioned backend 2.0.0"),
        "{}",
        out.stdout
    );
}

/// An encrypted key (as `minisign -G` makes by default) is unlocked with
/// `$SYGEN_SIGNING_PASSWORD`, saying so first: deriving it takes seconds.
#[test]
fn publish_says_it_unlocks_an_encrypted_key_and_a_wrong_password_is_one_line() {
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    let pair = minisign::KeyPair::generate_encrypted_keypair(Some("correct horse".into())).unwrap();
    let secret = dir.path().join("publisher.key");
    fs::write(&secret, pair.sk.to_box(None).unwrap().to_string()).unwrap();
    let copy = dir.path().join("v1.so");
    fs::copy(library("versioned_1"), &copy).unwrap();
    let manifest = dir.path().join("stable.json");
    let publish = |password: &str| {
        let mut command = user.command(&[
            "service",
            "backend",
            "publish",
            copy.to_str().unwrap(),
            "--key",
            secret.to_str().unwrap(),
            "--url",
            "v1.so",
            "--manifest",
            manifest.to_str().unwrap(),
        ]);
        command.env("SYGEN_SIGNING_PASSWORD", password);
        User::run_command(command)
    };
    let out = publish("correct horse");
    assert!(
        out.succeeds().contains("signed the stable channel"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stderr,
        format!(
            "unlocking the encrypted key {} with $SYGEN_SIGNING_PASSWORD (a few seconds)…\n\
             signing {} and the manifest {}…\n",
            secret.display(),
            copy.display(),
            manifest.display()
        )
    );
    let wrong = publish("battery staple");
    let lines: Vec<&str> = wrong.stderr.lines().collect();
    assert_eq!(wrong.code, Some(1), "{}", wrong.stderr);
    assert!(
        lines[0].starts_with("unlocking the encrypted key "),
        "{}",
        wrong.stderr
    );
    assert_eq!(lines.len(), 2, "{}", wrong.stderr);
    assert!(
        lines[1].starts_with(&format!(
            "error: {} is not a usable minisign secret key",
            secret.display()
        )),
        "{}",
        wrong.stderr
    );
}
