//! Where the worker's program is found, and the interpreter its `#!` line names, with the PATH
//! the worker will have; and, for what that PATH lacks, whether the shell's finds it. A service
//! manager starts sygen with a PATH of its own, so what works at a terminal may not in the
//! service. Nothing here reads the process's own environment: both PATHs are given.

use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
};

use crate::{file, platform};

/// The longest `#!` line read: Linux reads no more of it either.
const MAX_SHEBANG: u64 = 256;

/// The PATHs a program is looked for in.
pub struct Paths<'a> {
    /// The PATH the worker will have.
    pub worker: &'a OsStr,
    /// The PATH of the shell that asks, if it has one.
    pub shell: Option<&'a OsStr>,
    /// The worker's working directory: where a relative path leads.
    pub working_dir: &'a Path,
}

/// What the worker needs found.
#[derive(Debug, PartialEq, Eq)]
pub enum Needed {
    /// Its command (`[agent] command`'s first word).
    Command(String),
    /// The interpreter `script`'s `#!` line names: a path, or the program `env` looks for.
    Interpreter { name: String, script: PathBuf },
}

impl Needed {
    /// How it is named: `python3`, `/opt/bin/tool`.
    pub fn name(&self) -> &str {
        match self {
            Needed::Command(name) | Needed::Interpreter { name, .. } => name,
        }
    }
}

/// What the search found.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    /// Everything was found: the command, and the interpreter of its `#!` line if it has one.
    Found {
        command: PathBuf,
        interpreter: Option<PathBuf>,
    },
    /// The worker's PATH lacks it, and the shell's PATH finds it here.
    ShellOnly {
        needed: Needed,
        shell_finds: PathBuf,
    },
    /// Neither PATH finds it (or the path it is given by leads to nothing).
    Missing(Needed),
}

/// Looks for `command`, then for the interpreter its `#!` line names (where the system follows
/// such lines), as [`Finding`] says.
pub fn find(command: &str, paths: &Paths) -> Finding {
    let found = match locate(command, paths) {
        Ok(found) => found,
        Err(shell_finds) => return missed(Needed::Command(command.to_owned()), shell_finds),
    };
    let shebang = match platform::FOLLOWS_SHEBANGS {
        true => read_shebang(&found).and_then(|line| parse_shebang(&line)),
        false => None,
    };
    let Some(shebang) = shebang else {
        return Finding::Found {
            command: found,
            interpreter: None,
        };
    };
    let needed = |name: &str| Needed::Interpreter {
        name: name.to_owned(),
        script: found.clone(),
    };
    let interpreter = paths.working_dir.join(&shebang.interpreter);
    if !interpreter.is_file() {
        return Finding::Missing(needed(&shebang.interpreter));
    }
    let interpreter = match &shebang.searched {
        None => interpreter,
        Some(name) => match locate(name, paths) {
            Ok(found) => found,
            Err(shell_finds) => return missed(needed(name), shell_finds),
        },
    };
    Finding::Found {
        command: found,
        interpreter: Some(interpreter),
    }
}

fn missed(needed: Needed, shell_finds: Option<PathBuf>) -> Finding {
    match shell_finds {
        Some(shell_finds) => Finding::ShellOnly {
            needed,
            shell_finds,
        },
        None => Finding::Missing(needed),
    }
}

/// Whether `name` is a bare name, looked for in PATH, rather than a path.
pub fn is_bare(name: &str) -> bool {
    !name.chars().any(std::path::is_separator)
}

/// `name` with the worker's PATH; else where the shell's PATH finds it, if it does. A path
/// (`./bot`, `/opt/bot`) leads where it leads, whatever either PATH says.
fn locate(name: &str, paths: &Paths) -> Result<PathBuf, Option<PathBuf>> {
    if let Ok(found) = which::which_in(name, Some(paths.worker), paths.working_dir) {
        return Ok(found);
    }
    if !is_bare(name) {
        return Err(None);
    }
    Err(which::which_in(name, paths.shell, paths.working_dir).ok())
}

/// What a `#!` line asks the system to run.
#[derive(Debug, PartialEq, Eq)]
struct Shebang {
    /// The interpreter's path, as written.
    interpreter: String,
    /// When the interpreter is `env`: the program it looks for in PATH.
    searched: Option<String>,
}

/// The `#!` line of the script at `path`, without the `#!`; `None` for a file that does not
/// start with one, or cannot be read (without blocking: it may be a FIFO).
fn read_shebang(path: &Path) -> Option<String> {
    let file = file::open_regular(path).ok()??;
    let mut line = Vec::new();
    BufReader::new(file.take(MAX_SHEBANG))
        .read_until(b'\n', &mut line)
        .ok()?;
    let line = line.strip_prefix(b"#!")?;
    Some(String::from_utf8_lossy(line).into_owned())
}

/// What the `#!` line `line` (after the `#!`) runs. For `env`, its options and `NAME=value`
/// assignments are passed over to the program it looks for (`#!/usr/bin/env -S python3 -u`
/// looks for `python3`).
fn parse_shebang(line: &str) -> Option<Shebang> {
    let mut words = line.split_whitespace();
    let interpreter = words.next()?.to_owned();
    let is_env = Path::new(&interpreter).file_name() == Some(OsStr::new("env"));
    let searched = match is_env {
        true => loop {
            match words.next()? {
                // The options of env that take the next word as their value.
                "-u" | "--unset" | "-C" | "--chdir" => {
                    words.next()?;
                }
                word if word.starts_with('-') || word.contains('=') => {}
                word => break Some(word.to_owned()),
            }
        },
        false => None,
    };
    Some(Shebang {
        interpreter,
        searched,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use std::{ffi::OsString, fs, os::unix::fs::PermissionsExt as _};

    use super::*;

    /// Writes `content` at `path`, executable.
    fn executable(path: &Path, content: &str) {
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn shebang(interpreter: &str, searched: Option<&str>) -> Option<Shebang> {
        Some(Shebang {
            interpreter: interpreter.to_owned(),
            searched: searched.map(str::to_owned),
        })
    }

    #[test]
    fn a_shebang_names_its_interpreter_or_what_env_looks_for() {
        assert_eq!(parse_shebang("/bin/sh\n"), shebang("/bin/sh", None));
        assert_eq!(
            parse_shebang(" /usr/bin/python3 -u\r\n"),
            shebang("/usr/bin/python3", None)
        );
        assert_eq!(
            parse_shebang("/usr/bin/env python3\n"),
            shebang("/usr/bin/env", Some("python3"))
        );
        assert_eq!(
            parse_shebang("/usr/bin/env -S LANG=C node --max-old-space-size=64"),
            shebang("/usr/bin/env", Some("node"))
        );
        assert_eq!(
            parse_shebang("/usr/bin/env -u HOME -C /tmp ruby"),
            shebang("/usr/bin/env", Some("ruby"))
        );
        assert_eq!(parse_shebang("/usr/bin/env"), None);
        assert_eq!(parse_shebang("  \n"), None);
    }

    /// Two directories of programs: one on the worker's PATH, one only on the shell's.
    struct Dirs {
        root: tempfile::TempDir,
    }

    impl Dirs {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            for dir in ["service", "shell", "work"] {
                fs::create_dir(root.path().join(dir)).unwrap();
            }
            Self { root }
        }

        fn dir(&self, name: &str) -> PathBuf {
            self.root.path().join(name)
        }

        fn find(&self, command: &str) -> Finding {
            let worker = OsString::from(self.dir("service"));
            let shell = std::env::join_paths([self.dir("service"), self.dir("shell")]).unwrap();
            let work = self.dir("work");
            find(
                command,
                &Paths {
                    worker: &worker,
                    shell: Some(&shell),
                    working_dir: &work,
                },
            )
        }
    }

    #[test]
    fn a_command_is_found_with_the_worker_path_or_named_with_where_the_shell_finds_it() {
        let dirs = Dirs::new();
        executable(&dirs.dir("service").join("tool"), "#!/bin/sh\n");
        executable(&dirs.dir("shell").join("mine"), "#!/bin/sh\n");
        executable(&dirs.dir("work").join("local"), "#!/bin/sh\n");
        assert_eq!(
            dirs.find("tool"),
            Finding::Found {
                command: dirs.dir("service").join("tool"),
                interpreter: Some("/bin/sh".into()),
            }
        );
        assert_eq!(
            dirs.find("mine"),
            Finding::ShellOnly {
                needed: Needed::Command("mine".into()),
                shell_finds: dirs.dir("shell").join("mine"),
            }
        );
        assert_eq!(
            dirs.find("nowhere"),
            Finding::Missing(Needed::Command("nowhere".into()))
        );
        // A path leads where it leads, relative ones from the working directory.
        assert_eq!(
            dirs.find("./local"),
            Finding::Found {
                command: dirs.dir("work").join("./local"),
                interpreter: Some("/bin/sh".into()),
            }
        );
        assert_eq!(
            dirs.find("./mine"),
            Finding::Missing(Needed::Command("./mine".into()))
        );
    }

    #[test]
    fn an_interpreter_env_looks_for_is_found_with_the_worker_path_too() {
        let dirs = Dirs::new();
        executable(&dirs.dir("shell").join("interp"), "#!/bin/sh\n");
        let script = dirs.dir("service").join("bot");
        executable(&script, "#!/usr/bin/env interp\n");
        assert_eq!(
            dirs.find("bot"),
            Finding::ShellOnly {
                needed: Needed::Interpreter {
                    name: "interp".into(),
                    script: script.clone(),
                },
                shell_finds: dirs.dir("shell").join("interp"),
            }
        );
        fs::rename(
            dirs.dir("shell").join("interp"),
            dirs.dir("service").join("interp"),
        )
        .unwrap();
        assert_eq!(
            dirs.find("bot"),
            Finding::Found {
                command: script.clone(),
                interpreter: Some(dirs.dir("service").join("interp")),
            }
        );
        fs::write(&script, "#!/nonexistent/python3\n").unwrap();
        assert_eq!(
            dirs.find("bot"),
            Finding::Missing(Needed::Interpreter {
                name: "/nonexistent/python3".into(),
                script,
            })
        );
    }

    #[test]
    fn a_program_that_is_a_fifo_is_not_waited_on() {
        let dirs = Dirs::new();
        let fifo = dirs.dir("service").join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
        // No writer ever comes: reading its `#!` line must not wait for one.
        assert_eq!(read_shebang(&fifo), None);
    }
}
