//! Reading the small files sygen keeps or trusts (config.toml, the worker's env file, pid files,
//! a backend's store state, trusted keys, signatures, caches): one way, for all of them.
//!
//! Any of them can be something else by accident or by someone's doing: a FIFO, whose open
//! would wait for a writer and hang every command that reads it; a device that never ends; a
//! directory; a link to nothing. So a file is opened without blocking, checked on the open
//! descriptor to be a regular file (what the path named a moment before does not matter), and
//! read up to a bound that fits its kind.

use std::{
    fmt,
    fs::File,
    io::{self, Read as _},
    path::Path,
};

use crate::platform;

/// Why a small file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// A symbolic link to nothing: its target.
    DanglingLink(String),
    /// Not a regular file: what it is, in words ("a FIFO", "a directory").
    NotRegular(&'static str),
    /// Larger than a file of its kind can be.
    TooLarge { len: u64, max: u64 },
    /// Anything else the system said.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::DanglingLink(target) => {
                write!(f, "is a link to {target}, which does not exist")
            }
            ReadError::NotRegular(kind) => write!(f, "is not a regular file ({kind})"),
            ReadError::TooLarge { len, max } => {
                write!(
                    f,
                    "is {len} bytes, more than the {max} a file of its kind can be"
                )
            }
            ReadError::Io(error) => write!(f, "cannot be read: {error}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// The text of the regular file at `path`, at most `max` bytes; `None` when nothing is there.
pub fn read_small(path: &Path, max: u64) -> Result<Option<String>, ReadError> {
    read_bytes(path, max)?.map(into_text).transpose()
}

/// [`read_small`], for bytes that need not be text.
pub fn read_bytes(path: &Path, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    read_open(file, max).map(Some)
}

/// The text of `file`, opened with [`open_regular`], at most `max` bytes: for a file checked
/// through its descriptor before it is read.
pub fn read_open_text(file: File, max: u64) -> Result<String, ReadError> {
    read_open(file, max).and_then(into_text)
}

fn into_text(bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes)
        .map_err(|e| ReadError::Io(io::Error::new(io::ErrorKind::InvalidData, e.utf8_error())))
}

/// The content of `file`, at most `max` bytes.
fn read_open(file: File, max: u64) -> Result<Vec<u8>, ReadError> {
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > max {
        return Err(ReadError::TooLarge { len, max });
    }
    let mut bytes = Vec::new();
    // Bounded again while reading: the file may grow after the check.
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    let len = bytes.len() as u64;
    if len > max {
        return Err(ReadError::TooLarge { len, max });
    }
    Ok(bytes)
}

/// Opens the regular file at `path` to read it, without blocking on what it is; `None` when
/// nothing is there.
pub fn open_regular(path: &Path) -> Result<Option<File>, ReadError> {
    let file = match platform::open_nonblocking(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return match std::fs::read_link(path) {
                Ok(target) => Err(ReadError::DanglingLink(target.display().to_string())),
                Err(_) => Ok(None),
            };
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if metadata.is_dir() {
        return Err(ReadError::NotRegular("a directory"));
    }
    if !metadata.is_file() {
        let kind = platform::special_file_kind(&metadata);
        return Err(ReadError::NotRegular(kind));
    }
    Ok(Some(file))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        std::fs::write(&file, "current 1\n").unwrap();
        assert_eq!(
            read_small(&file, 64).unwrap().as_deref(),
            Some("current 1\n")
        );
        assert!(read_small(&dir.path().join("none"), 64).unwrap().is_none());

        let error = read_small(&file, 4).unwrap_err();
        assert_eq!(
            error.to_string(),
            "is 10 bytes, more than the 4 a file of its kind can be"
        );
        let error = read_small(dir.path(), 64).unwrap_err();
        assert_eq!(error.to_string(), "is not a regular file (a directory)");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("gone"), &link).unwrap();
        let error = read_small(&link, 64).unwrap_err();
        assert!(error.to_string().starts_with("is a link to "), "{error}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer ever comes: a blocking open would never return.
        let error = read_small(&fifo, 64).unwrap_err();
        assert_eq!(error.to_string(), "is not a regular file (a FIFO)");
    }
}
