//! The end-to-end tests: the `sygen` binary and the backend libraries as users, service managers
//! and backend authors meet them. One test binary, so that the helpers are compiled once and
//! every test runs in the same process: no test may change what the process shares (its
//! environment, its working directory); each gives its children their environment instead.
//!
//! Needs `cargo build --workspace` first (the binary and the backend cdylibs are build
//! artifacts of other packages; the README's test command does both).

#![cfg(unix)]

// What the tests need: the built artifacts, a user with a home of their own, finished commands,
// the runtime in a temporary home, service managers in namespaces of their own.
mod support;

// The command line itself: help, usage errors, shell completions, the manual page, colour.
mod completions;
// Which backends sygen finds, lists and uses: the search path, `--backend`, `SYGEN_BACKEND`,
// `sygen service backend use`.
mod selection;
// Loading a backend file, and refusing one that cannot or must not be loaded.
mod loading;
// The `sygen service` operations through the test backends: answers, errors, output, waits.
mod operations;
// The service description the host builds for a backend: program, paths, environment,
// settings.
mod description;
// `sygen onboarding` and a first bare `sygen`: the starting configuration and the offer.
mod onboarding;
// `sygen doctor`: its report, and what it finds wrong.
mod doctor;
// What a backend can do to the host (exit, crash, hang, code run on load), and time limits.
mod boundary;
// `sygen service backend add|list|remove|rollback`: the store of installed backends.
mod backend_store;
// Files of the sygen home that are FIFOs or directories: no command waits on one.
mod home_files;
// `sygen service backend update` against a real HTTPS server and signed channels.
#[cfg(target_os = "linux")]
mod update;
// The frozen 1.0 interface: old backends on today's host, today's backends on an old host.
mod compat;
// The backend author kit: the template and the conformance suite, outside this repository.
mod kit;
// `sygen run`, `stop` and `restart` with real processes, signals and pid files.
mod runtime;
// The notify protocol between the runtime and its worker, with systemd's own client.
mod notify;
// The worker's environment and program: its env file, values shown nowhere, and the PATH
// doctor and install check.
mod worker;
// The runtime under faults: stale pid files, killed runtimes, broken streams, a full disk,
// configuration out of range.
mod faults;
// What a person sees at a terminal: spinners, and nothing but plain lines with NO_COLOR.
mod terminal;
// The developer scripts: what the demo installs.
mod scripts;
// The systemd backend against a real `systemd --user` and journald (needs root).
mod systemd;
// The OpenRC backend against real OpenRC (needs root and Debian's `openrc`).
mod openrc;
// The launchd backend against a simulated launchctl.
mod launchd;
// The Task Scheduler backend against a simulated schtasks.exe.
mod tasksched;
