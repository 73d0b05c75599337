//! The runtime's costs, measured with the release binary: how fast a worker that exits 42 is
//! replaced, and what `sygen run` costs while idle. Prints one table.
//!
//! Run with `scripts/bench` (it builds the release binary first). This executable doubles as
//! the worker: with `SYGEN_BENCH_WORKER` set it records its start and exit times and exits 42.

#[path = "../e2e/support/mod.rs"]
mod support;

use std::{
    fs,
    io::Write,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

const RESTARTS: usize = 200;
const IDLE: Duration = Duration::from_secs(20);

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
            "[agent]\ncommand = [{:?}]\nquick_restarts = 100000\nenv = {{ SYGEN_BENCH_WORKER = {:?} }}\n",
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

fn idle_costs() -> Idle {
    let home = tempfile::tempdir().expect("temporary home");
    let sygen_home = home.path().join(".sygen");
    fs::create_dir_all(&sygen_home).unwrap();
    fs::write(
        sygen_home.join("config.toml"),
        "[agent]\nheartbeat_interval = \"60s\"\n",
    )
    .unwrap();
    let mut runtime = spawn_runtime(home.path());
    let pid = runtime.id();
    wait_for("the agent", || sygen_home.join("worker.pid").exists());
    thread::sleep(Duration::from_secs(1));
    let agent: u32 = fs::read_to_string(sygen_home.join("worker.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
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

fn main() {
    if let Some(record) = std::env::var_os("SYGEN_BENCH_WORKER") {
        worker(Path::new(&record));
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let latencies = restart_latency();
    let idle = idle_costs();
    println!("sygen runtime benchmark — {}", machine());
    println!("reproduce: scripts/bench");
    println!();
    println!("| measure | value | target | met |");
    println!("| --- | --- | --- | --- |");
    let median = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);
    let met = |ok: bool| if ok { "yes" } else { "no" };
    println!(
        "| exit 42 → new worker running, median of {} | {median:.2} ms | < 200 ms | {} |",
        latencies.len(),
        met(median < 200.0)
    );
    println!(
        "| exit 42 → new worker running, p99 | {p99:.2} ms | < 200 ms | {} |",
        met(p99 < 200.0)
    );
    println!(
        "| exit 42 → new worker running, min / max | {:.2} / {:.2} ms | | |",
        latencies[0],
        latencies[latencies.len() - 1]
    );
    println!(
        "| `sygen run` idle RSS | {:.1} MiB | < 5 MiB | {} |",
        idle.runtime_rss_kib as f64 / 1024.0,
        met(idle.runtime_rss_kib < 5 * 1024)
    );
    println!(
        "| built-in agent idle RSS | {:.1} MiB | | |",
        idle.agent_rss_kib as f64 / 1024.0
    );
    println!(
        "| `sygen run` CPU over {} s idle | {} ticks | 0 | {} |",
        IDLE.as_secs(),
        idle.cpu_ticks,
        met(idle.cpu_ticks == 0)
    );
    println!(
        "| `sygen run` wake-ups over {} s idle (all threads) | {} | 0 | {} |",
        IDLE.as_secs(),
        idle.wakeups,
        met(idle.wakeups == 0)
    );
}
