//! File helpers: write a definition file (or point a link) so it is either old or new, never
//! half-made, read the end of a log without reading the whole file, and find the user's
//! configuration directory.

use std::{
    ffi::OsString,
    fs::{self, File},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

/// The user's configuration directory, by the XDG Base Directory spec: `$XDG_CONFIG_HOME`
/// when it is an absolute path, else `.config` in `user_home`. The spec makes a relative (or
/// empty) value invalid, to be ignored: it would depend on the directory sygen started in.
pub fn config_home(user_home: &Path) -> PathBuf {
    config_home_from(std::env::var_os("XDG_CONFIG_HOME"), user_home)
}

fn config_home_from(xdg_config_home: Option<OsString>, user_home: &Path) -> PathBuf {
    match xdg_config_home.map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => user_home.join(".config"),
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, fsync,
/// rename over the target, fsync of the directory. Creates the directory if needed.
/// `mode` sets the Unix permission bits (ignored elsewhere).
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> io::Result<()> {
    let dir = directory_of(path);
    fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents)?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Makes `link` a symbolic link to `target` atomically: a link under a temporary name in the
/// same directory, renamed over whatever `link` was, so a supervisor scanning the directory sees
/// the old entry or the new one, never none. Creates the directory if needed. A relative
/// `target` is relative to the link's directory, as with `ln -s`.
pub fn symlink_atomic(target: &Path, link: &Path) -> io::Result<()> {
    let dir = directory_of(link);
    fs::create_dir_all(dir)?;
    let temporary = tempfile::Builder::new()
        .prefix(".tmp-link")
        .make_in(dir, |path| symlink(target, path))?;
    temporary.persist(link).map_err(|e| e.error)?;
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Windows tells a link to a directory from a link to a file.
#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    if directory_of(link).join(target).is_dir() {
        std::os::windows::fs::symlink_dir(target, link)
    } else {
        std::os::windows::fs::symlink_file(target, link)
    }
}

/// The directory `path` is in (`.` for a bare name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The last `count` lines of the file at `path`, reading backwards from the end in blocks, so
/// the cost depends on the lines asked for, not on the size of the file. Invalid UTF-8 is
/// replaced; a final line without a newline counts as a line.
pub fn tail_lines(path: &Path, count: usize) -> io::Result<Vec<String>> {
    const BLOCK: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let len = file.seek(SeekFrom::End(0))?;
    if count == 0 || len == 0 {
        return Ok(Vec::new());
    }
    let mut start = len;
    let mut tail = Vec::new();
    // A trailing newline ends the last line rather than starting an empty one.
    let mut newlines_needed = count + 1;
    let mut last_byte_seen = false;
    while start > 0 && newlines_needed > 0 {
        let read_from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - read_from) as usize];
        file.seek(SeekFrom::Start(read_from))?;
        file.read_exact(&mut block)?;
        for (i, byte) in block.iter().enumerate().rev() {
            if !last_byte_seen {
                last_byte_seen = true;
                if *byte != b'\n' {
                    newlines_needed -= 1;
                }
            }
            if *byte == b'\n' {
                newlines_needed -= 1;
                if newlines_needed == 0 {
                    block.drain(..=i);
                    break;
                }
            }
        }
        block.extend_from_slice(&tail);
        tail = block;
        start = read_from;
    }
    let text = String::from_utf8_lossy(&tail);
    Ok(text.lines().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents).unwrap();
        file
    }

    #[test]
    fn config_home_is_an_absolute_xdg_config_home() {
        let home = Path::new("/home/ada");
        let default = Path::new("/home/ada/.config");
        assert_eq!(config_home_from(None, home), default);
        assert_eq!(config_home_from(Some("".into()), home), default);
        assert_eq!(config_home_from(Some("cfg".into()), home), default);
        assert_eq!(config_home_from(Some("./cfg".into()), home), default);
        let absolute = if cfg!(windows) {
            r"C:\ada cfg"
        } else {
            "/srv/ada cfg"
        };
        assert_eq!(
            config_home_from(Some(absolute.into()), home),
            Path::new(absolute)
        );
    }

    #[test]
    fn tails_the_last_lines() {
        let file = file_with(b"one\ntwo\nthree\nfour\n");
        assert_eq!(tail_lines(file.path(), 2).unwrap(), ["three", "four"]);
        assert_eq!(
            tail_lines(file.path(), 10).unwrap(),
            ["one", "two", "three", "four"]
        );
        assert!(tail_lines(file.path(), 0).unwrap().is_empty());
    }

    #[test]
    fn counts_a_final_line_without_newline() {
        let file = file_with(b"one\ntwo\nthree");
        assert_eq!(tail_lines(file.path(), 2).unwrap(), ["two", "three"]);
    }

    #[test]
    fn keeps_empty_lines_and_handles_empty_files() {
        let file = file_with(b"a\n\nb\n");
        assert_eq!(tail_lines(file.path(), 2).unwrap(), ["", "b"]);
        assert!(tail_lines(file_with(b"").path(), 5).unwrap().is_empty());
    }

    #[test]
    fn tails_across_block_boundaries() {
        let lines: Vec<String> = (0..50_000).map(|i| format!("line {i}")).collect();
        let file = file_with(format!("{}\n", lines.join("\n")).as_bytes());
        assert_eq!(tail_lines(file.path(), 30_000).unwrap(), lines[20_000..]);
        assert_eq!(tail_lines(file.path(), 1).unwrap(), ["line 49999"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_atomically_replacing_a_link_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("enabled dir/sygen %$ü");
        symlink_atomic(Path::new("../first"), &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../first"));
        let second = dir.path().join("second");
        fs::write(&second, "second").unwrap();
        symlink_atomic(&second, &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), second);
        assert_eq!(fs::read_to_string(&link).unwrap(), "second");
        let leftovers = fs::read_dir(link.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary link is left behind");
    }

    #[test]
    fn writes_atomically_with_mode_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new dir/unit %$ü.service");
        write_atomic(&path, b"first", Some(0o644)).unwrap();
        write_atomic(&path, b"second", Some(0o600)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
