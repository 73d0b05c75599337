//! The benchmarks measure sygen beside systemd and the Unix runtime, so they run on Linux
//! (`linux.rs`).

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the benchmarks run on Linux: they measure sygen beside a real systemd");
}
