//! What the command line itself gives: help, usage errors, shell completions, the manual page,
//! and colour (only on a terminal, never with NO_COLOR).

use std::{fs, process::Command};

use crate::support::{on_a_terminal, User};

#[test]
fn service_alone_prints_its_help() {
    let out = User::new().run(&["service"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.starts_with(
            "Install and manage the sygen background service\n\n\
             Usage: sygen service [OPTIONS] <COMMAND>\n\n\
             Commands:\n"
        ),
        "{}",
        out.stderr
    );
    let commands: Vec<&str> = out
        .stderr
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            "  install      Install the service and start it; waits until sygen is running",
            "  start        Start the installed service; waits until sygen is running",
            "  stop         Stop the service; waits until sygen has stopped",
            "  uninstall    Stop and remove the service",
            "  status       Show whether the service is installed and running",
            "  logs         Show the service's logs",
            "  backends     List the backend libraries found and which one is used",
            "  conformance  Check that a backend behaves as sygen expects, in a sandboxed service",
            "  backend      Install, list, remove or roll back backend libraries in \
             $SYGEN_HOME/backends",
            "  help         Print this message or the help of the given subcommand(s)",
        ],
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
}

#[test]
fn usage_errors_exit_2() {
    let unknown = User::new().run(&["service", "frobnicate"]);
    assert_eq!(unknown.code, Some(2));
    assert_eq!(
        unknown.stderr,
        "error: unrecognized subcommand 'frobnicate'\n\n\
         Usage: sygen service [OPTIONS] <COMMAND>\n\n\
         For more information, try '--help'.\n"
    );
    let not_a_number = User::new().run(&["service", "logs", "-n", "many"]);
    assert_eq!(not_a_number.code, Some(2));
    assert_eq!(
        not_a_number.stderr,
        "error: invalid value 'many' for '--lines <N>': invalid digit found in string\n\n\
         For more information, try '--help'.\n"
    );
}

#[test]
fn completions_generate_for_every_shell() {
    let user = User::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = user.run(&["completions", shell]);
        let script = out.succeeds();
        for word in ["service", "install", "conformance", "rollback", "backend"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    // The bash script is valid bash.
    let script = user.run(&["completions", "bash"]).stdout;
    let file = user.home.path().join("sygen.bash");
    fs::write(&file, script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(check.success());
    let unknown = user.run(&["completions", "tcsh"]);
    assert_eq!(unknown.code, Some(2));
    assert_eq!(
        unknown.stderr,
        "error: invalid value 'tcsh' for '<SHELL>'\n  \
         [possible values: bash, elvish, fish, powershell, zsh]\n\n  \
         tip: a similar value exists: 'zsh'\n\n\
         For more information, try '--help'.\n"
    );
}

#[test]
fn the_manual_page_generates() {
    let out = User::new().run(&["man"]);
    let page = out.succeeds();
    assert!(page.contains(".TH sygen 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "{section} missing");
    }
    assert!(
        page.contains(".TP\nsygen\\-service(1)\nInstall and manage the sygen background service\n"),
        "the subcommands are listed: {page}"
    );
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let user = User::new();
    let bad = "--backend /nonexistent.so service status";
    // The message after `error:`, and the terminal's line end.
    let message =
        " backend /nonexistent.so: no such file (hint: check the path of the backend file)";
    let coloured = on_a_terminal(&user, bad, &[]);
    assert_eq!(coloured, format!("\x1b[1;31merror:\x1b[0m{message}\r\n"));
    let plain = on_a_terminal(&user, bad, &[("NO_COLOR", "1")]);
    assert_eq!(plain, format!("error:{message}\r\n"));
    let never = on_a_terminal(&user, &format!("--color never {bad}"), &[]);
    assert_eq!(never, format!("error:{message}\r\n"));
    // A terminal that says it has no escape codes gets none.
    let dumb = on_a_terminal(&user, bad, &[("TERM", "dumb")]);
    assert_eq!(dumb, format!("error:{message}\r\n"));

    // Piped, nothing is coloured unless asked for.
    let piped = user.run(&["--backend", "/nonexistent.so", "service", "status"]);
    assert_eq!(piped.stderr, format!("error:{message}\n"));
    let asked = user.run(&[
        "--color",
        "always",
        "--backend",
        "/nonexistent.so",
        "service",
        "status",
    ]);
    assert_eq!(asked.stderr, format!("\x1b[1;31merror:\x1b[0m{message}\n"));
    let unknown = user.run(&["--color", "sometimes", "service", "backends"]);
    assert_eq!(unknown.code, Some(2));
    assert_eq!(
        unknown.stderr,
        "error: invalid value 'sometimes' for '--color <WHEN>'\n  \
         [possible values: auto, always, never]\n\n\
         For more information, try '--help'.\n"
    );
}
