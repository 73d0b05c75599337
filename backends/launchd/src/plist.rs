//! What the backend writes: the Launch Agent property list, as a pure function of the service
//! description, serialized by the `plist` crate.
//!
//! launchd expands neither `~` nor `$VAR`, so every path is written absolute, as the host gave
//! it. `KeepAlive = { SuccessfulExit = false }` restarts sygen after a crash or a non-zero exit
//! but not after a clean exit, which is how `stop` ends it for good (see the crate docs).

use std::collections::BTreeMap;

use serde::Serialize;
use sygen_backend_api::{
    sdk::{Error, Result},
    ServiceDescription, UNIX_SYSTEM_DIRS,
};

/// Where Homebrew and other package managers put programs on macOS; a worker launched by
/// launchd gets only the PATH written here.
const MACOS_TOOL_DIRS: [&str; 2] = ["/opt/homebrew/bin", "/usr/local/bin"];

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LaunchAgent<'a> {
    label: &'a str,
    program_arguments: Vec<&'a str>,
    run_at_load: bool,
    keep_alive: KeepAlive,
    throttle_interval: u32,
    process_type: &'static str,
    /// Aqua for a GUI login, Background for the `user/<uid>` domain (no GUI session, e.g. over
    /// SSH), where an agent limited to Aqua cannot be bootstrapped.
    limit_load_to_session_type: [&'static str; 2],
    environment_variables: BTreeMap<&'a str, String>,
    standard_out_path: String,
    standard_error_path: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeepAlive {
    successful_exit: bool,
}

/// PATH for the agent: the host's directories with the macOS tool directories inserted before
/// the system ones, duplicates dropped (first wins).
fn agent_path(host_path: &str) -> String {
    let entries: Vec<&str> = host_path.split(':').filter(|e| !e.is_empty()).collect();
    let first_system = entries
        .iter()
        .position(|e| UNIX_SYSTEM_DIRS.contains(e))
        .unwrap_or(entries.len());
    let ordered = entries[..first_system]
        .iter()
        .chain(MACOS_TOOL_DIRS.iter())
        .chain(entries[first_system..].iter())
        .chain(UNIX_SYSTEM_DIRS.iter());
    let mut unique: Vec<&str> = Vec::new();
    for entry in ordered {
        if !unique.contains(entry) {
            unique.push(entry);
        }
    }
    unique.join(":")
}

/// The property list for `service`, as XML.
pub fn render(service: &ServiceDescription) -> Result<Vec<u8>> {
    let program = service
        .program
        .to_str()
        .ok_or_else(|| Error::failed("the sygen executable's path is not valid UTF-8"))?;
    let logs = &service.logs_dir;
    let mut environment: BTreeMap<&str, String> = service
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    let path = agent_path(environment.get("PATH").map_or("", String::as_str));
    environment.insert("PATH", path);
    let agent = LaunchAgent {
        label: &service.label,
        program_arguments: std::iter::once(program)
            .chain(service.args.iter().map(String::as_str))
            .collect(),
        run_at_load: true,
        keep_alive: KeepAlive {
            successful_exit: false,
        },
        throttle_interval: 10,
        process_type: "Background",
        limit_load_to_session_type: ["Aqua", "Background"],
        environment_variables: environment,
        standard_out_path: logs.join("service.log").display().to_string(),
        standard_error_path: logs.join("service.err").display().to_string(),
    };
    let mut xml = Vec::new();
    plist::to_writer_xml(&mut xml, &agent)
        .map_err(|e| Error::failed(format!("cannot serialize the launchd property list: {e}")))?;
    xml.push(b'\n');
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Ada's service on a Mac running `program`, with her own tool directories (nvm's among
    /// them) before the system's in PATH.
    fn service(program: &str) -> ServiceDescription {
        let mut service = ServiceDescription::for_test(std::path::Path::new("/Users/ada"));
        service.program = program.into();
        for (key, value) in &mut service.env {
            if key == "PATH" {
                *value = format!(
                    "/Users/ada/.local/bin:/Users/ada/.nvm/versions/node/v20.11.0/bin:{value}"
                );
            }
        }
        service
    }

    #[test]
    fn renders_the_golden_plist() {
        let xml = render(&service("/Users/ada/.cargo/bin/sygen")).unwrap();
        assert_eq!(
            String::from_utf8(xml).unwrap(),
            include_str!("../golden/dev.sygen.plist")
        );
    }

    #[test]
    fn path_puts_the_macos_tool_dirs_before_the_system_dirs() {
        assert_eq!(
            agent_path("/u/bin:/usr/local/bin:/usr/bin:/bin"),
            "/u/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
        );
        assert_eq!(
            agent_path("/u/bin:/u/bin"),
            "/u/bin:/opt/homebrew/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
        );
    }

    /// Parses `xml` back strictly and checks every key and its type.
    fn check_parsed_back(xml: &[u8], program: &str) {
        let value: plist::Value = plist::from_bytes(xml).expect("a valid property list");
        let dict = value.as_dictionary().expect("a dictionary at the top");
        let keys: Vec<&str> = dict.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "Label",
                "ProgramArguments",
                "RunAtLoad",
                "KeepAlive",
                "ThrottleInterval",
                "ProcessType",
                "LimitLoadToSessionType",
                "EnvironmentVariables",
                "StandardOutPath",
                "StandardErrorPath"
            ]
        );
        assert_eq!(dict["Label"].as_string(), Some("dev.sygen"));
        let args: Vec<&str> = dict["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_string().unwrap())
            .collect();
        assert_eq!(args, [program, "run"]);
        assert_eq!(dict["RunAtLoad"].as_boolean(), Some(true));
        let keep_alive = dict["KeepAlive"].as_dictionary().unwrap();
        assert_eq!(keep_alive.len(), 1);
        assert_eq!(keep_alive["SuccessfulExit"].as_boolean(), Some(false));
        assert_eq!(dict["ThrottleInterval"].as_unsigned_integer(), Some(10));
        assert_eq!(dict["ProcessType"].as_string(), Some("Background"));
        let sessions: Vec<&str> = dict["LimitLoadToSessionType"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_string().unwrap())
            .collect();
        assert_eq!(sessions, ["Aqua", "Background"]);
        let env = dict["EnvironmentVariables"].as_dictionary().unwrap();
        for (key, value) in env {
            assert!(value.as_string().is_some(), "{key} is a string");
        }
        assert_eq!(env["HOME"].as_string(), Some("/Users/ada"));
        assert_eq!(env["SYGEN_SUPERVISOR"].as_string(), Some("1"));
        assert!(env["PATH"]
            .as_string()
            .unwrap()
            .contains("/opt/homebrew/bin"));
        assert_eq!(
            dict["StandardOutPath"].as_string(),
            Some("/Users/ada/.sygen/logs/service.log")
        );
        assert_eq!(
            dict["StandardErrorPath"].as_string(),
            Some("/Users/ada/.sygen/logs/service.err")
        );
    }

    #[test]
    fn the_golden_plist_parses_back_with_every_key_and_type() {
        let program = "/Users/ada/.cargo/bin/sygen";
        check_parsed_back(&render(&service(program)).unwrap(), program);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn awkward_program_paths_survive_the_round_trip(
            dir in "[a-zA-Z &<>\"'üé日%$;]{1,16}",
        ) {
            let program = format!("/Users/ada/{dir}/sygen");
            check_parsed_back(&render(&service(&program)).unwrap(), &program);
        }
    }
}
