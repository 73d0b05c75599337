//! What sygen costs where people feel it, measured with the release build in one run, beside
//! the tools underneath where there are some, and printed as one table (see
//! `docs/benchmarks.md`): `service status` against raw `systemctl` on a real user manager,
//! backend loading, `service logs` on growing log files, the exit-42 restart, `sygen run` at
//! rest, and the size of what a release ships (`sizes.rs`).
//!
//! Run with `scripts/bench` (it builds the release binaries first). This executable doubles as
//! the restart benchmark's worker: with `SYGEN_BENCH_WORKER` set it records its start and exit
//! times and exits 42; and as the availability probe: with `SYGEN_BENCH_AVAILABILITY` set to a
//! backend library, it loads it, times its `is_service_available` in this fresh process (first
//! call, then a second) and prints both in microseconds.

#[path = "sizes.rs"]
mod sizes;
#[path = "../e2e/support/shared.rs"]
mod support;

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

const RESTARTS: usize = 200;
const IDLE: Duration = Duration::from_secs(60);
/// Runs per whole-command measurement.
const RUNS: usize = 15;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// Worker mode: append `start <ns>`; exit 42 with `exit <ns>` until RESTARTS starts, then idle.
fn worker(record: &Path) -> ! {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(record)
        .expect("record file");
    let _ = writeln!(file, "start {}", now_ns());
    let starts = fs::read_to_string(record)
        .map(|t| t.lines().filter(|l| l.starts_with("start")).count())
        .unwrap_or(0);
    if starts <= RESTARTS {
        let _ = writeln!(file, "exit {}", now_ns());
        std::process::exit(42);
    }
    loop {
        thread::park();
    }
}

/// Availability mode: what one `is_service_available` costs a command that asks it once (the
/// first call, which connects to the service manager), and a second call.
fn time_availability(library: &Path) -> ! {
    use abi_stable::{library::lib_header_from_path, sabi_trait::TD_Opaque};
    use sygen_backend_api::{
        abi::ConsoleSink_TO, sdk::Captured, BackendModuleRef, ServiceDescription,
    };
    let module = lib_header_from_path(library)
        .and_then(|header| header.init_root_module::<BackendModuleRef>())
        .expect("the backend loads");
    let home = std::env::var_os("HOME").expect("HOME is set");
    let spec = ServiceDescription::for_test(Path::new(&home)).to_spec();
    let ask = || {
        let console = ConsoleSink_TO::from_value(Captured::default(), TD_Opaque);
        let started = Instant::now();
        let available = (module.is_service_available())(&spec, console).into_result();
        let took = started.elapsed().as_secs_f64() * 1e6;
        assert!(matches!(available, Ok(true)), "{available:?}");
        took
    };
    let (first, second) = (ask(), ask());
    println!("{first:.0} {second:.0}");
    std::process::exit(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// Context switches of every thread of `pid`: each one is a wake-up.
fn wakeups(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .map(|t| {
                    let tid = t.file_name().to_string_lossy().into_owned();
                    let path = format!("task/{tid}/status");
                    proc_field(pid, &path, "voluntary_ctxt_switches:")
                        + proc_field(pid, &path, "nonvoluntary_ctxt_switches:")
                })
                .sum()
        })
        .unwrap_or(0)
}

fn spawn_runtime(home: &Path) -> std::process::Child {
    Command::new(support::artifacts().join("sygen"))
        .arg("run")
        .env("HOME", home)
        .env("SYGEN_HOME", home.join(".sygen"))
        .env("SYGEN_SUPERVISOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sygen run starts")
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn restart_latency() -> Vec<f64> {
    let home = tempfile::tempdir().expect("temporary home");
    let sygen_home = home.path().join(".sygen");
    fs::create_dir_all(&sygen_home).unwrap();
    let record = home.path().join("record");
    let exe = std::env::current_exe().unwrap();
    fs::write(
        sygen_home.join("config.toml"),
        format!(
            "[agent]\ncommand = [{:?}]\nquick_restarts = 10000\nenv = {{ SYGEN_BENCH_WORKER = {:?} }}\n",
            exe.to_str().unwrap(),
            record.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut runtime = spawn_runtime(home.path());
    let starts = || {
        fs::read_to_string(&record)
            .map(|t| t.lines().filter(|l| l.starts_with("start")).count())
            .unwrap_or(0)
    };
    wait_for("all restarts", || starts() > RESTARTS);
    let _ = Command::new("kill")
        .args(["-TERM", &runtime.id().to_string()])
        .status();
    let _ = runtime.wait();

    let text = fs::read_to_string(&record).unwrap();
    let stamps: Vec<(&str, u128)> = text
        .lines()
        .filter_map(|l| {
            let (kind, ns) = l.split_once(' ')?;
            Some((kind, ns.parse().ok()?))
        })
        .collect();
    let mut latencies: Vec<f64> = stamps
        .windows(2)
        .filter(|w| w[0].0 == "exit" && w[1].0 == "start")
        .map(|w| (w[1].1 - w[0].1) as f64 / 1e6)
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    latencies
}

struct Idle {
    runtime_rss_kib: u64,
    agent_rss_kib: u64,
    cpu_ticks: u64,
    wakeups: u64,
}

/// The period of the watchdog in the idle run with one, and how often its worker pings.
const WATCHDOG: Duration = Duration::from_secs(60);
const PING: Duration = Duration::from_secs(30);

/// What `sygen run` costs at rest for [`IDLE`], with `config` (`[agent]` lines).
fn idle_costs(config: &str) -> Idle {
    let home = tempfile::tempdir().expect("temporary home");
    let sygen_home = home.path().join(".sygen");
    fs::create_dir_all(&sygen_home).unwrap();
    fs::write(
        sygen_home.join("config.toml"),
        format!("[agent]\n{config}\n"),
    )
    .unwrap();
    let mut runtime = spawn_runtime(home.path());
    let pid = runtime.id();
    wait_for("the agent", || sygen_home.join("worker.pid").exists());
    thread::sleep(Duration::from_secs(1));
    let agent = support::read_pid(&sygen_home.join("worker.pid")).unwrap();
    let (ticks, switches) = (cpu_ticks(pid), wakeups(pid));
    thread::sleep(IDLE);
    let idle = Idle {
        runtime_rss_kib: proc_field(pid, "status", "VmRSS:"),
        agent_rss_kib: proc_field(agent, "status", "VmRSS:"),
        cpu_ticks: cpu_ticks(pid) - ticks,
        wakeups: wakeups(pid) - switches,
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = runtime.wait();
    idle
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {}", std::env::consts::OS)
}

/// Median wall time of `RUNS` runs of `command`, in milliseconds.
fn median_ms(mut command: impl FnMut() -> Command) -> f64 {
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let status = command()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("the command runs");
            let took = started.elapsed().as_secs_f64() * 1000.0;
            assert!(status.success() || status.code() == Some(3), "{status}");
            took
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    percentile(&times, 0.5)
}

/// Peak RSS of `command`, in KiB, from GNU time.
fn peak_rss_kib(command: &Command) -> u64 {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(command.get_program())
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(Stdio::null())
        .output()
        .expect("/usr/bin/time runs (Debian: time)");
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

struct Row {
    measure: String,
    value: String,
    target: String,
    met: &'static str,
}

fn row(
    measure: impl Into<String>,
    value: impl Into<String>,
    target: impl Into<String>,
    met: Option<bool>,
) -> Row {
    Row {
        measure: measure.into(),
        value: value.into(),
        target: target.into(),
        met: match met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        },
    }
}

/// `sygen service status` and `systemctl --user status` on the same unit, inside the real
/// user manager of `tests/systemd/harness`; both timed by a loop run as the test user there.
fn status_against_systemctl() -> Vec<Row> {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/harness");
    let state = tempfile::Builder::new()
        .prefix("sygen-bench-")
        .tempdir()
        .unwrap()
        .keep();
    let up = Command::new(&harness)
        .arg("up")
        .arg(&state)
        .output()
        .unwrap();
    if !up.status.success() {
        let _ = fs::remove_dir_all(&state);
        let why = String::from_utf8_lossy(&up.stderr).trim().to_owned();
        return vec![row(
            "`sygen service status` vs `systemctl --user status`",
            format!("not measured: {why}"),
            "≤ 1.3×",
            None,
        )];
    }
    let env = fs::read_to_string(state.join("env")).unwrap();
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let (uid, home) = (
        var("HARNESS_UID").parse::<u32>().unwrap(),
        PathBuf::from(var("HARNESS_HOME")),
    );
    let apps = home.join("bin");
    fs::create_dir_all(&apps).unwrap();
    for file in ["sygen", "libsygen_systemd.so"] {
        support::copy_executable(&support::artifacts().join(file), &apps.join(file));
    }
    let probe = apps.join("availability-probe");
    support::copy_executable(&std::env::current_exe().unwrap(), &probe);
    for path in [
        &home,
        &apps,
        &apps.join("sygen"),
        &apps.join("libsygen_systemd.so"),
        &probe,
    ] {
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    }
    let exec = |script: &str| {
        Command::new(&harness)
            .arg("exec")
            .arg(&state)
            .args(["--", "sh", "-c", script])
            .output()
            .unwrap()
    };
    let sygen = apps.join("sygen");
    let install = exec(&format!("'{}' service install", sygen.display()));
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    // The Python sygen 1.3.49, from PyPI into a virtualenv of the test user's, when it can be
    // had; its status asks the same unit.
    let python = home.join("python-sygen/bin/sygen");
    let python_why = exec(&format!(
        "/usr/bin/python3 -m venv ~/python-sygen >/dev/null && \
         ~/python-sygen/bin/pip install --quiet --disable-pip-version-check sygen==1.3.49 && \
         '{}' service status >/dev/null",
        python.display()
    ));
    let python_status = format!("'{}' service status", python.display());
    let raw_status = "systemctl --user status sygen --no-pager";
    let our_status = format!("'{}' service status", sygen.display());
    let show = "systemctl --user show sygen -p ActiveState";
    let backends = format!("'{}' service backends", sygen.display());
    let mut commands = vec![raw_status, &our_status, show, &backends];
    if python_why.status.success() {
        commands.push(&python_status);
    }
    // Each round runs every command once, in turn, so that whatever else the machine does
    // falls on all of them alike; medians over the rounds.
    let side_by_side = |commands: &[&str]| -> Vec<f64> {
        let mut script = format!("for i in $(seq {RUNS}); do");
        for (k, command) in commands.iter().enumerate() {
            script.push_str(&format!(
                " s=$(date +%s%N); {command} >/dev/null 2>&1; e=$(date +%s%N); echo {k} $((e - s));"
            ));
        }
        script.push_str(" done");
        let out = exec(&script);
        let mut times = vec![Vec::new(); commands.len()];
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, ns)) = line.split_once(' ') {
                if let (Ok(k), Ok(ns)) = (k.parse::<usize>(), ns.parse::<f64>()) {
                    times[k].push(ns / 1e6);
                }
            }
        }
        times
            .into_iter()
            .map(|mut t| {
                t.sort_by(|a, b| a.total_cmp(b));
                percentile(&t, 0.5)
            })
            .collect()
    };
    let quiet = side_by_side(&commands);
    let availability = exec(&format!(
        "for i in $(seq {RUNS}); do SYGEN_BENCH_AVAILABILITY='{}' '{}'; done",
        apps.join("libsygen_systemd.so").display(),
        probe.display()
    ));
    let (mut first, mut second): (Vec<f64>, Vec<f64>) =
        String::from_utf8_lossy(&availability.stdout)
            .lines()
            .filter_map(|l| {
                let (a, b) = l.split_once(' ')?;
                Some((a.parse::<f64>().ok()? / 1e3, b.parse::<f64>().ok()? / 1e3))
            })
            .unzip();
    assert!(
        !first.is_empty(),
        "{}",
        String::from_utf8_lossy(&availability.stderr)
    );
    first.sort_by(|a, b| a.total_cmp(b));
    second.sort_by(|a, b| a.total_cmp(b));
    // The same again with the other core kept busy.
    let busy = Command::new(&harness)
        .arg("exec")
        .arg(&state)
        .args(["--", "sh", "-c", "while :; do :; done"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let loaded = side_by_side(&[raw_status, &our_status]);
    let _ = exec("pkill -u \"$(id -u)\" -f 'while :; do :; done'");
    let _ = busy.wait_with_output();
    let _ = exec(&format!("'{}' service uninstall", sygen.display()));
    let _ = Command::new(&harness).arg("down").arg(&state).output();
    let (raw, ours) = (quiet[0], quiet[1]);
    let (raw_busy, ours_busy) = (loaded[0], loaded[1]);
    let (ratio, ratio_busy) = (ours / raw, ours_busy / raw_busy);
    let (first, second) = (percentile(&first, 0.5), percentile(&second, 0.5));
    let mut rows = vec![
        row(
            "`systemctl --user status sygen --no-pager`, median",
            format!("{raw:.1} ms"),
            "",
            None,
        ),
        row(
            "`sygen service status` on the same unit, median",
            format!("{ours:.1} ms"),
            "",
            None,
        ),
        row(
            "ratio sygen / systemctl",
            format!("{ratio:.2}×"),
            "≤ 1.0×",
            Some(ratio <= 1.0),
        ),
        row(
            "the same with the other core busy: systemctl / sygen, medians",
            format!("{raw_busy:.1} ms / {ours_busy:.1} ms ({ratio_busy:.2}×)"),
            "≤ 1.0×",
            Some(ratio_busy <= 1.0),
        ),
        row(
            "`systemctl --user show sygen -p ActiveState`, median",
            format!("{:.1} ms", quiet[2]),
            "",
            None,
        ),
        row(
            "`sygen service backends` (asks the systemd backend whether its manager answers), median",
            format!("{:.1} ms", quiet[3]),
            "",
            None,
        ),
        row(
            "systemd `is_service_available`, first call in a process (connects over D-Bus) / second, medians",
            format!("{first:.2} ms / {second:.3} ms"),
            "< 2 ms",
            Some(first < 2.0),
        ),
    ];
    rows.push(match quiet.get(4) {
        Some(python) => row(
            "the Python sygen 1.3.49's `sygen service status` on the same unit, median (its / ours)",
            format!("{python:.1} ms ({:.1}×)", python / ours),
            "≥ 30×",
            Some(python / ours >= 30.0),
        ),
        None => row(
            "the Python sygen 1.3.49's `sygen service status`",
            format!(
                "not measured: {}",
                String::from_utf8_lossy(&python_why.stderr)
                    .lines()
                    .last()
                    .unwrap_or("it could not be installed")
            ),
            "≥ 30×",
            None,
        ),
    });
    rows
}

/// dlopen plus the interface check of each shipped backend, on fresh copies (a library is
/// loaded once per process), and `sygen service backends` with 4 and with 50 backend files.
fn backend_loading() -> Vec<Row> {
    use abi_stable::library::lib_header_from_path;
    use sygen_backend_api::BackendModuleRef;
    let scratch = tempfile::tempdir().unwrap();
    let shipped = ["systemd", "openrc", "launchd", "tasksched"];
    let mut rows = Vec::new();
    for name in shipped {
        let built = support::artifacts().join(format!("libsygen_{name}.so"));
        let mut times: Vec<f64> = (0..RUNS)
            .map(|i| {
                let copy = scratch.path().join(format!("libsygen_{name}_{i}.so"));
                fs::copy(&built, &copy).unwrap();
                let started = Instant::now();
                lib_header_from_path(&copy)
                    .and_then(|header| header.init_root_module::<BackendModuleRef>())
                    .expect("the backend loads");
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        let median = percentile(&times, 0.5);
        rows.push(row(
            format!("load {name} backend (dlopen + interface check), median"),
            format!("{median:.2} ms"),
            "< 2 ms",
            Some(median < 2.0),
        ));
    }
    for count in [shipped.len(), 50] {
        let dir = scratch.path().join(format!("install-{count}"));
        fs::create_dir_all(&dir).unwrap();
        support::copy_executable(&support::artifacts().join("sygen"), &dir.join("sygen"));
        for i in 0..count {
            let name = shipped[i % shipped.len()];
            fs::copy(
                support::artifacts().join(format!("libsygen_{name}.so")),
                dir.join(format!("libsygen_{name}{i}.so")),
            )
            .unwrap();
        }
        let home = scratch.path().join(format!("home-{count}"));
        fs::create_dir_all(&home).unwrap();
        let median = median_ms(|| {
            let mut command = Command::new(dir.join("sygen"));
            command
                .args(["service", "backends"])
                .env("HOME", &home)
                .env_remove("SYGEN_HOME");
            command
        });
        let per = median / count as f64;
        rows.push(row(
            format!("`sygen service backends` with {count} backend files, median"),
            format!("{median:.1} ms ({per:.2} ms per backend)"),
            "< 2 ms per backend",
            Some(per < 2.0),
        ));
    }
    rows
}

/// `sygen service logs -n 50` (sygen's own log file, as the launchd and Task Scheduler
/// backends read it) on log files of 1 MiB, 100 MiB and 1 GiB.
fn logs_on_big_files() -> Vec<Row> {
    let scratch = tempfile::tempdir().unwrap();
    let line = "2026-12-02T04:25:39.123Z [stdout] heartbeat 12345 from the built-in agent\n";
    let mut rows = Vec::new();
    let mut written = 0u64;
    let home = scratch.path().to_path_buf();
    let logs = home.join(".sygen/logs");
    fs::create_dir_all(&logs).unwrap();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("agent.log"))
        .unwrap();
    for (label, size) in [
        ("1 MiB", 1u64 << 20),
        ("100 MiB", 100 << 20),
        ("1 GiB", 1 << 30),
    ] {
        let block = line.repeat(8192);
        while written < size {
            file.write_all(block.as_bytes()).unwrap();
            written += block.len() as u64;
        }
        file.sync_all().unwrap();
        let command = || {
            let mut command = Command::new(support::artifacts().join("sygen"));
            command
                .arg("--backend")
                .arg(support::artifacts().join("libsygen_launchd.so"))
                .args(["service", "logs", "-n", "50"])
                .env("HOME", &home)
                .env_remove("SYGEN_HOME");
            command
        };
        let median = median_ms(command);
        let rss = peak_rss_kib(&command()) as f64 / 1024.0;
        let met = (label == "1 GiB").then_some(median < 20.0 && rss < 10.0);
        rows.push(row(
            format!("`sygen service logs -n 50` on a {label} log, median / peak RSS"),
            format!("{median:.1} ms / {rss:.1} MiB"),
            if label == "1 GiB" {
                "< 20 ms and < 10 MiB at 1 GiB"
            } else {
                ""
            },
            met,
        ));
    }
    rows
}

pub fn main() {
    if let Some(record) = std::env::var_os("SYGEN_BENCH_WORKER") {
        worker(Path::new(&record));
    }
    if let Some(library) = std::env::var_os("SYGEN_BENCH_AVAILABILITY") {
        time_availability(Path::new(&library));
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::args().any(|a| a == "--idle") {
        print_table("idle", idle_rows());
        return;
    }
    if std::env::args().any(|a| a == "--sizes") {
        print_table("sizes", sizes::rows(support::repository()));
        return;
    }
    let mut rows = sizes::rows(support::repository());
    rows.extend(status_against_systemctl());
    rows.extend(backend_loading());
    rows.extend(logs_on_big_files());
    let latencies = restart_latency();
    let (median, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    rows.push(row(
        format!(
            "exit 42 → new worker running, median of {}",
            latencies.len()
        ),
        format!("{median:.2} ms"),
        "< 200 ms",
        Some(median < 200.0),
    ));
    rows.push(row(
        "exit 42 → new worker running, p99",
        format!("{p99:.2} ms"),
        "< 200 ms",
        Some(p99 < 200.0),
    ));
    rows.extend(idle_rows());
    print_table("", rows);
}

/// The runtime at rest: with a silent worker (the built-in agent, one heartbeat an hour), so
/// what wakes up is the runtime's own doing; then with a watchdog, its worker pinging with
/// `systemd-notify` every half period (one datagram each, `--no-block`), where each ping
/// wakes the notify thread once and the runtime looks once per period.
fn idle_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let idle = idle_costs("heartbeat_interval = \"1h\"");
    rows.push(row(
        format!("`sygen run` RSS after {} s idle", IDLE.as_secs()),
        format!("{:.1} MiB", idle.runtime_rss_kib as f64 / 1024.0),
        "< 5 MiB",
        Some(idle.runtime_rss_kib < 5 * 1024),
    ));
    rows.push(row(
        format!("`sygen run` CPU time over {} s idle", IDLE.as_secs()),
        format!("{} ticks", idle.cpu_ticks),
        "none measurable",
        Some(idle.cpu_ticks == 0),
    ));
    rows.push(row(
        format!(
            "`sygen run` wake-ups over {} s idle (all threads)",
            IDLE.as_secs()
        ),
        idle.wakeups.to_string(),
        "no periodic polling",
        Some(idle.wakeups == 0),
    ));
    rows.push(row(
        "built-in agent RSS (the default worker)",
        format!("{:.1} MiB", idle.agent_rss_kib as f64 / 1024.0),
        "",
        None,
    ));
    let pinging = format!(
        "command = [\"sh\", \"-c\", \"while :; do systemd-notify --no-block WATCHDOG=1; sleep {}; done\"]\n\
         watchdog = \"{}s\"",
        PING.as_secs(),
        WATCHDOG.as_secs()
    );
    let watched = idle_costs(&pinging);
    let pings = IDLE.as_secs().div_ceil(PING.as_secs());
    let periods = IDLE.as_secs().div_ceil(WATCHDOG.as_secs());
    rows.push(row(
        format!(
            "`sygen run` wake-ups over {} s with a {} s watchdog, pinged every {} s",
            IDLE.as_secs(),
            WATCHDOG.as_secs(),
            PING.as_secs()
        ),
        watched.wakeups.to_string(),
        format!(
            "≤ {} ({pings} pings + {periods} per period)",
            pings + periods
        ),
        Some(watched.wakeups <= pings + periods),
    ));
    rows.push(row(
        format!("`sygen run` RSS after {} s with a watchdog", IDLE.as_secs()),
        format!("{:.1} MiB", watched.runtime_rss_kib as f64 / 1024.0),
        "",
        None,
    ));
    rows
}

/// The table, headed by the machine and the command that reproduces it (`scripts/bench`, with
/// `--sizes` for the size rows alone, `--idle` for the runtime at rest).
fn print_table(only: &str, rows: Vec<Row>) {
    let built = match only {
        "sizes" => "the dist builds of scripts/release",
        _ => "release build",
    };
    let reproduce = match only {
        "" => "scripts/bench".to_owned(),
        only => format!("scripts/bench --{only}"),
    };
    println!("sygen benchmarks — {}, {built}, one run", machine());
    println!("reproduce: {reproduce}");
    println!();
    println!("| measure | value | target | met |");
    println!("| --- | --- | --- | --- |");
    for r in rows {
        println!("| {} | {} | {} | {} |", r.measure, r.value, r.target, r.met);
    }
}
