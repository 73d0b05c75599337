//! Fetching a channel's files: over HTTPS, never plain HTTP, or from `file://` for an offline
//! mirror. Every size is bounded, every wait limited, and redirects stay on the host the
//! channel names. A download gets a start ([`START`]) and then as long as its size takes at
//! the slowest rate accepted (`[updates] min_bytes_per_second`); any [`SILENCE`] ends it too.
//! So a server that trickles cannot hold the store's lock for longer than that.

use std::{
    fs::File,
    io::{Read, Write},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use ureq::tls::{Certificate, RootCerts};
use url::Url;

use crate::{
    exit::{Exit, Failure},
    file, progress,
};

/// How long a connection may take, and a silence in the middle of an answer.
const CONNECT: Duration = Duration::from_secs(15);
const SILENCE: Duration = Duration::from_secs(30);
/// What every download gets besides its size at the slowest rate.
const START: Duration = Duration::from_secs(30);
/// Redirects followed on one host, at most.
const REDIRECTS: usize = 5;
/// Documents (a manifest, a signature) are small; a larger one is not what was asked for.
pub const DOCUMENT_LIMIT: u64 = 4 << 20;

pub struct Fetcher {
    agent: ureq::Agent,
    ca_file: Option<String>,
    /// The slowest download accepted, in bytes a second.
    min_rate: u64,
}

/// How long a download of `bytes` may take in all, at `min_rate` bytes a second at least.
fn allowed(bytes: u64, min_rate: u64) -> Duration {
    START.saturating_add(Duration::from_secs(bytes / min_rate.max(1)))
}

/// Why copying a download stopped short.
enum Cut {
    /// The source broke off (or went silent): what it said.
    Broken(std::io::Error),
    /// It took longer than it was allowed.
    TooSlow(Duration),
    /// More bytes came than could be.
    TooLarge,
    /// Saving it failed.
    Saving(std::io::Error),
}

/// Copies at most `max` bytes from `reader` to `out` within `within`; answers how many came,
/// and calls `copied` with each piece's size.
fn copy_within(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    max: u64,
    within: Duration,
    mut copied: impl FnMut(u64),
) -> (u64, Option<Cut>) {
    let deadline = Instant::now().checked_add(within);
    let mut received: u64 = 0;
    let mut buffer = vec![0; 64 << 10];
    loop {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return (received, Some(Cut::TooSlow(within)));
        }
        let read = match reader.read(&mut buffer) {
            Ok(0) => return (received, None),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return (received, Some(Cut::Broken(e))),
        };
        received = received.saturating_add(read as u64);
        if received > max {
            return (received, Some(Cut::TooLarge));
        }
        if let Err(e) = out.write_all(&buffer[..read]) {
            return (received, Some(Cut::Saving(e)));
        }
        copied(read as u64);
    }
}

fn failure(message: String) -> Failure {
    Failure::new(Exit::Failed, message)
}

impl Fetcher {
    /// A fetcher trusting Mozilla's roots, or only the certificate authorities in
    /// `ca_file` (PEM) when one is configured; downloads slower than `min_rate` bytes a second
    /// (after a start) are given up.
    pub fn new(ca_file: Option<&Path>, min_rate: u64) -> Result<Self, Failure> {
        // rustls with Mozilla's roots on every platform: the system's TLS would tie the macOS
        // build to Apple's SDK, and release binaries are built on Linux.
        let mut tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(RootCerts::WebPki);
        if let Some(path) = ca_file {
            // A bundle of every public authority is about 200 KiB.
            let pem = file::read_bytes(path, 4 << 20)
                .map_err(|e| e.to_string())
                .and_then(|pem| pem.ok_or_else(|| "it does not exist".to_owned()))
                .map_err(|why| {
                    failure(format!(
                        "cannot read the CA file {} ({why})",
                        path.display()
                    ))
                    .hint("fix `ca_file` in [updates] of config.toml")
                })?;
            let certificates = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<Certificate<'static>>, _>>()
                .map_err(|e| failure(format!("the CA file {} is not PEM ({e})", path.display())))?;
            if certificates.is_empty() {
                return Err(failure(format!(
                    "the CA file {} holds no certificate",
                    path.display()
                ))
                .hint("fix `ca_file` in [updates] of config.toml"));
            }
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certificates)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .https_only(true)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT))
            .timeout_recv_response(Some(SILENCE))
            .timeout_per_read(Some(SILENCE))
            .user_agent(format!("sygen/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            ca_file: ca_file.map(|p| p.display().to_string()),
            min_rate,
        })
    }

    /// The failure of a download that took longer than `within`.
    fn too_slow(&self, url: &str, received: u64, size: u64, within: Duration) -> Failure {
        failure(format!(
            "the download of {url} took longer than {} ({received} of {size} bytes came; it is \
             given {} and {} bytes a second): refusing it",
            humantime::format_duration(within),
            humantime::format_duration(START),
            self.min_rate
        ))
        .hint(
            "nothing was changed; try again later, or allow slower downloads with \
             `min_bytes_per_second` in [updates] of config.toml",
        )
    }

    /// The document at `url`, at most `limit` bytes.
    pub fn document(&self, url: &str, limit: u64) -> Result<Vec<u8>, Failure> {
        let (mut reader, announced) = self.open(url)?;
        let expected = announced.unwrap_or(limit).min(limit);
        let within = allowed(expected, self.min_rate);
        let fetching = format!("fetching {url}");
        let progress = progress::Progress::start(&fetching);
        let mut bytes = Vec::new();
        let (received, cut) = copy_within(&mut reader, &mut bytes, limit, within, |_| {
            progress.update(&fetching)
        });
        drop(progress);
        match cut {
            None => Ok(bytes),
            Some(Cut::TooLarge) => Err(failure(format!(
                "{url} is larger than {limit} bytes: it is not a channel document"
            ))),
            Some(Cut::TooSlow(within)) => Err(self.too_slow(url, received, expected, within)),
            Some(Cut::Broken(e) | Cut::Saving(e)) => Err(self.broken(url, &e.to_string())),
        }
    }

    /// The file at `url`, which must be exactly `size` bytes, into `out`; shown as `label`
    /// with a bar on a terminal.
    pub fn file(&self, url: &str, size: u64, out: &mut File, label: &str) -> Result<(), Failure> {
        let (mut reader, announced) = self.open(url)?;
        if let Some(announced) = announced.filter(|&length| length != size) {
            return Err(failure(format!(
                "{url} is {announced} bytes, not the {size} the channel announced"
            ))
            .hint("nothing was installed; tell the channel's publisher"));
        }
        let bar = progress::Transfer::start(label, size);
        let within = allowed(size, self.min_rate);
        let (received, cut) = copy_within(&mut reader, out, size, within, |n| bar.advance(n));
        match cut {
            None => {}
            Some(Cut::Broken(e)) => {
                return Err(failure(format!(
                    "the download of {url} broke off after {received} of {size} bytes ({e})"
                ))
                .hint("nothing was installed; try again"))
            }
            Some(Cut::TooSlow(within)) => return Err(self.too_slow(url, received, size, within)),
            Some(Cut::TooLarge) => {
                return Err(failure(format!(
                    "{url} is larger than the {size} bytes the channel announced"
                ))
                .hint("nothing was installed; tell the channel's publisher"))
            }
            Some(Cut::Saving(e)) => {
                return Err(failure(format!("cannot save the download of {url} ({e})"))
                    .hint("nothing was installed; make room in the sygen home and try again"))
            }
        }
        if received < size {
            return Err(failure(format!(
                "the download of {url} broke off after {received} of {size} bytes"
            ))
            .hint("nothing was installed; try again"));
        }
        out.sync_all()
            .map_err(|e| failure(format!("cannot save the download of {url} ({e})")))
    }

    fn broken(&self, url: &str, why: &str) -> Failure {
        failure(format!("cannot fetch {url} ({why})")).hint("nothing was changed; try again")
    }

    /// A reader of what `url` names, and its length when the server says it.
    fn open(&self, url: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), Failure> {
        let mut current = parse(url)?;
        if current.scheme() == "file" {
            let path = current
                .to_file_path()
                .map_err(|()| failure(format!("{url} does not name a local file")))?;
            let file = file::open_regular(&path)
                .map_err(|e| e.to_string())
                .and_then(|file| file.ok_or_else(|| "it does not exist".to_owned()))
                .map_err(|why| {
                    failure(format!("cannot read {} ({why})", path.display())).hint(
                        "check the channel's URL ([updates] channel in config.toml, or --channel)",
                    )
                })?;
            let length = file.metadata().ok().map(|m| m.len());
            return Ok((Box::new(file), length));
        }
        for _ in 0..=REDIRECTS {
            let response = self
                .agent
                .get(current.as_str())
                .call()
                .map_err(|e| self.unreachable(current.as_str(), &e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| current.join(l).ok())
                    .ok_or_else(|| failure(format!("{current} redirects nowhere ({status})")))?;
                if location.scheme() != current.scheme()
                    || location.host_str() != current.host_str()
                    || location.port_or_known_default() != current.port_or_known_default()
                {
                    return Err(failure(format!(
                        "{current} redirects to {location}, on another host: refusing it"
                    ))
                    .hint(
                        "a channel's files are fetched from the host its URL names; tell the \
                         channel's publisher",
                    ));
                }
                current = location;
                continue;
            }
            if !status.is_success() {
                return Err(failure(format!("{current} answered {status}")).hint(
                    "check the channel's URL ([updates] channel in config.toml, or --channel)",
                ));
            }
            let length = response.body().content_length();
            return Ok((Box::new(response.into_body().into_reader()), length));
        }
        Err(failure(format!(
            "{url} redirects more than {REDIRECTS} times"
        )))
    }

    fn unreachable(&self, url: &str, error: &ureq::Error) -> Failure {
        let text = error.to_string();
        let hint = match &self.ca_file {
            _ if !is_untrusted_certificate(error) => {
                "nothing was changed; check the channel's URL and your connection".to_owned()
            }
            None => "if the channel's server has a certificate of its own authority, name that \
                     authority's PEM file as `ca_file` in [updates] of config.toml"
                .to_owned(),
            Some(ca) => format!("the server's certificate is not from the authority in {ca}"),
        };
        failure(format!("cannot fetch {url} ({text})")).hint(hint)
    }
}

/// Whether `error` is the server's certificate failing verification, however ureq carried
/// rustls's error (directly, or inside an I/O error from the handshake).
fn is_untrusted_certificate(error: &ureq::Error) -> bool {
    let tls = match error {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(tls, Some(rustls::Error::InvalidCertificate(_)))
}

/// Where a channel entry's file is: its `url` as written, or, when that is relative (as a
/// release's own manifest has it), beside the manifest at `channel`, so a mirror of a release
/// directory works wherever it is served from.
pub fn resolve(channel: &str, url: &str) -> Result<String, Failure> {
    let resolved = parse(channel)?
        .join(url)
        .map_err(|e| failure(format!("the channel's file URL {url} is not a URL ({e})")))?;
    Ok(parse(resolved.as_str())?.to_string())
}

/// An HTTPS or file URL, or why it cannot be one.
fn parse(url: &str) -> Result<Url, Failure> {
    let parsed = Url::parse(url).map_err(|e| {
        failure(format!("{url} is not a URL ({e})"))
            .hint("a channel is an https:// URL, or file:// for an offline mirror")
    })?;
    match parsed.scheme() {
        "https" | "file" => Ok(parsed),
        other => Err(failure(format!("refusing {url}: {other} is not HTTPS"))
            .hint("a channel is an https:// URL, or file:// for an offline mirror")),
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn a_relative_file_url_is_beside_the_manifest_and_an_absolute_one_stays() {
        let channel = "https://example.org/sygen/1.0/channel.json";
        assert_eq!(
            resolve(channel, "linux-x86_64/libsygen_systemd.so").unwrap(),
            "https://example.org/sygen/1.0/linux-x86_64/libsygen_systemd.so"
        );
        assert_eq!(
            resolve("file:///srv/my%20mirror/channel.json", "libsygen_openrc.so").unwrap(),
            "file:///srv/my%20mirror/libsygen_openrc.so"
        );
        assert_eq!(
            resolve(channel, "https://cdn.example.net/libsygen_systemd.so").unwrap(),
            "https://cdn.example.net/libsygen_systemd.so"
        );
        // Relative or not, what is fetched is HTTPS or a file.
        let refused = resolve(channel, "http://example.org/libsygen_systemd.so").unwrap_err();
        assert!(
            refused.message.contains("is not HTTPS"),
            "{}",
            refused.message
        );
    }
}
