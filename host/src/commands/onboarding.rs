//! `sygen onboarding`, also what bare `sygen` runs on a first run (no `config.toml` yet):
//! writes a starting configuration and offers to install the background service when this
//! platform's service manager is there. It never waits on a prompt nobody can answer.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::Path,
};

use anyhow::{Context as _, Result};

use super::{cli::WaitArgs, context::Context, service};
use crate::{backend::boundary, description, home};

/// What the user said up front, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Ask,
}

const STARTING_CONFIG: &str = "\
# sygen configuration. Every key is optional; these are the defaults.

[agent]
# The worker `sygen run` supervises; without a command, the built-in agent runs.
# command = [\"python3\", \"bot.py\"]
# env = { BOT_TOKEN = \"...\" }
# env_file = \"bot.env\"  # NAME=value lines (dotenv), in this directory; `chmod 600` it
# working_dir = \"/path/to/bot\"
heartbeat_interval = \"60s\"
stop_timeout = \"10s\"

[logs]
max_bytes = 10485760
keep = 5

[supervise]
retries = 3
delay = \"1m\"
";

/// Whether this is a first run: no configuration yet.
pub fn is_first_run() -> Result<bool> {
    Ok(!home::config_file(&home::sygen_home()?).exists())
}

pub fn run(answer: Answer, backend_file: Option<&Path>, wait: WaitArgs) -> Result<()> {
    boundary::allow_changes_to_take(wait.timeout);
    let context = Context::new(backend_file)?;
    let home = &context.home;
    let config = home::config_file(home);
    if !config.exists() {
        std::fs::create_dir_all(home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        std::fs::write(&config, STARTING_CONFIG)
            .with_context(|| format!("cannot write {}", config.display()))?;
        println!("wrote a starting configuration to {}", config.display());
    }

    let backend = match context.backend() {
        Ok(backend) => backend,
        Err(failure) => {
            println!("not offering a background service: {failure}");
            return Ok(());
        }
    };
    let spec = description::build()?.to_spec();
    match backend.is_service_available(&spec) {
        Ok(true) => {}
        Ok(false) => {
            println!(
                "not offering a background service: the {} service manager is not \
                 available here; `sygen run` runs the agent in the foreground",
                backend.name
            );
            return Ok(());
        }
        Err(failure) => {
            println!("not offering a background service: {failure}");
            return Ok(());
        }
    }
    if backend.is_service_installed(&spec)? {
        println!(
            "the sygen background service is already installed ({} backend)",
            backend.name
        );
        return Ok(());
    }
    let install = match answer {
        Answer::Yes => true,
        Answer::No => false,
        Answer::Ask if std::io::stdin().is_terminal() => ask(&format!(
            "Install sygen as a background service ({}: {})? [Y/n] ",
            backend.name, backend.description
        ))?,
        Answer::Ask => {
            println!(
                "no terminal to ask on: not installing the background service; \
                 `sygen onboarding --yes` or `sygen service install` does"
            );
            return Ok(());
        }
    };
    if install {
        let backend = service::backend_to_install(backend, &spec, &context)?;
        service::install(&backend, &spec, home, wait)?;
    } else {
        println!("not installing the background service; `sygen service install` does it later");
    }
    Ok(())
}

fn ask(question: &str) -> Result<bool> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut reply = String::new();
    std::io::stdin().lock().read_line(&mut reply)?;
    Ok(matches!(
        reply.trim().to_lowercase().as_str(),
        "" | "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_starting_configuration_is_the_default_one() {
        let parsed = Config::parse(STARTING_CONFIG, Path::new("config.toml")).unwrap();
        assert_eq!(parsed, Config::default());
    }
}
