//! tinysup: a process supervisor small enough to build in a test and real enough to write a
//! sygen backend for, as a third party would for supervisord.
//!
//! `tinysup daemon <dir>` runs the programs defined in `<dir>/programs/<name>.conf` when asked,
//! restarts one that exits (after a second) until asked to stop it, and appends each one's
//! output to `<dir>/logs/<name>.log`. `tinysup <dir> <request>` asks it over
//! `<dir>/control.sock` and prints the one-line answer: `ping` (`pong`), `start <name>`,
//! `stop <name>` (`ok`; SIGTERM, then SIGKILL after 5 s), `status <name>` (`running <pid>`, `backoff`, `stopped`).
//!
//! A definition has one `key=value` per line: `program=`, then any `arg=` and `env=KEY=VALUE`.

use std::{
    collections::HashMap,
    fs::{self, OpenOptions},
    io::{BufRead, BufReader, ErrorKind, Write},
    os::unix::net::{UnixListener, UnixStream},
    path::Path,
    process::{Child, Command, ExitCode, Stdio},
    thread,
    time::{Duration, Instant},
};

const RESTART_DELAY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Program {
    child: Option<Child>,
    wanted: bool,
    restart_at: Option<Instant>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [verb, dir] if verb == "daemon" => daemon(Path::new(dir)),
        [dir, request @ ..] if !request.is_empty() => ask(Path::new(dir), &request.join(" ")),
        _ => {
            eprintln!("usage: tinysup daemon <dir> | tinysup <dir> <request>");
            ExitCode::from(2)
        }
    }
}

fn ask(dir: &Path, request: &str) -> ExitCode {
    let socket = dir.join("control.sock");
    let mut stream = match UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("tinysup is not running ({}: {e})", socket.display());
            return ExitCode::from(3);
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut answer = String::new();
    let asked = writeln!(stream, "{request}")
        .and_then(|()| BufReader::new(&stream).read_line(&mut answer));
    match asked {
        Ok(_) if answer.starts_with("error") => {
            eprint!("{answer}");
            ExitCode::FAILURE
        }
        Ok(_) => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tinysup did not answer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn daemon(dir: &Path) -> ExitCode {
    let socket = dir.join("control.sock");
    let _ = fs::remove_file(&socket);
    let listener = match fs::create_dir_all(dir.join("logs"))
        .and_then(|()| UnixListener::bind(&socket))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
    {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("tinysup cannot listen on {}: {e}", socket.display());
            return ExitCode::FAILURE;
        }
    };
    let mut programs: HashMap<String, Program> = HashMap::new();
    loop {
        match listener.accept() {
            Ok((stream, _)) => serve(stream, dir, &mut programs),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(50)),
            Err(e) => eprintln!("tinysup: {e}"),
        }
        tend(dir, &mut programs);
    }
}

fn serve(stream: UnixStream, dir: &Path, programs: &mut HashMap<String, Program>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut request = String::new();
    if BufReader::new(&stream).read_line(&mut request).is_ok() {
        let answer = handle(request.trim(), dir, programs);
        let _ = writeln!(&stream, "{answer}");
    }
}

fn handle(request: &str, dir: &Path, programs: &mut HashMap<String, Program>) -> String {
    let words: Vec<&str> = request.split(' ').collect();
    match words.as_slice() {
        ["ping"] => "pong".into(),
        ["start", name] => {
            let program = programs.entry((*name).to_owned()).or_default();
            program.wanted = true;
            program.restart_at = None;
            if program.child.is_none() {
                match spawn(dir, name) {
                    Ok(child) => program.child = Some(child),
                    Err(e) => return format!("error {e}"),
                }
            }
            "ok".into()
        }
        ["stop", name] => {
            if let Some(program) = programs.get_mut(*name) {
                program.wanted = false;
                program.restart_at = None;
                if let Some(child) = program.child.take() {
                    end(child);
                }
            }
            "ok".into()
        }
        ["status", name] => match programs.get(*name) {
            Some(Program {
                child: Some(child), ..
            }) => format!("running {}", child.id()),
            Some(program) if program.wanted => "backoff".into(),
            _ => "stopped".into(),
        },
        _ => format!("error unknown request {request:?}"),
    }
}

/// Asks `child` to end (SIGTERM, as supervisord does), and kills it if it has not after
/// a few seconds.
fn end(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Notices programs that exited and restarts the wanted ones once their delay is over.
fn tend(dir: &Path, programs: &mut HashMap<String, Program>) {
    for (name, program) in programs.iter_mut() {
        if let Some(child) = &mut program.child {
            if !matches!(child.try_wait(), Ok(None)) {
                program.child = None;
                if program.wanted {
                    program.restart_at = Some(Instant::now() + RESTART_DELAY);
                }
            }
        }
        if program.restart_at.is_some_and(|at| Instant::now() >= at) {
            program.restart_at = None;
            match spawn(dir, name) {
                Ok(child) => program.child = Some(child),
                Err(e) => {
                    eprintln!("tinysup: {name}: {e}");
                    program.restart_at = Some(Instant::now() + RESTART_DELAY);
                }
            }
        }
    }
}

fn spawn(dir: &Path, name: &str) -> Result<Child, String> {
    let definition = dir.join("programs").join(format!("{name}.conf"));
    let text = fs::read_to_string(&definition)
        .map_err(|e| format!("cannot read {}: {e}", definition.display()))?;
    let (mut program, mut args, mut env) = (None, Vec::new(), Vec::new());
    for line in text.lines() {
        match line.split_once('=') {
            Some(("program", path)) if program.is_none() => program = Some(path),
            Some(("arg", arg)) => args.push(arg),
            Some(("env", pair)) => env.push(pair.split_once('=').unwrap_or((pair, ""))),
            _ => return Err(format!("{}: bad line {line:?}", definition.display())),
        }
    }
    let program = program.ok_or_else(|| format!("{}: no program", definition.display()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("logs").join(format!("{name}.log")))
        .map_err(|e| e.to_string())?;
    let log_too = log.try_clone().map_err(|e| e.to_string())?;
    Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_too)
        .spawn()
        .map_err(|e| e.to_string())
}
