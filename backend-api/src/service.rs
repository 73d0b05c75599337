//! The service description in plain Rust types, and its conversion to and from the
//! frozen [`ServiceSpec`] that crosses the boundary; and [`ServiceExtra`], what the host adds
//! to it through the spec's `extra` JSON, the one part of the spec that grows within 1.x.
//!
//! The host builds it once (program path from `current_exe`, environment, sygen home) so that
//! every backend describes the same service and none rediscovers the binary.

use std::path::PathBuf;

use abi_stable::std_types::{RString, RVec, Tuple2};
use serde::{Deserialize, Serialize};

use crate::abi::ServiceSpec;

/// The system directories that end the `PATH` the host gives a Unix service, in this order.
/// A backend adding its platform's tool directories puts them just before these.
pub const UNIX_SYSTEM_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Everything a backend needs to define the sygen service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDescription {
    /// Service name (`sygen`).
    pub name: String,
    /// launchd label (`dev.sygen`).
    pub label: String,
    /// One line for the service manager.
    pub description: String,
    /// Absolute, canonical path of the program to start.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Environment of the service, in order.
    pub env: Vec<(String, String)>,
    /// The sygen home directory.
    pub home: PathBuf,
    /// Where file logs go.
    pub logs_dir: PathBuf,
}

impl ServiceDescription {
    /// The description sygen would build for a user whose home is `user_home`, with the sygen
    /// binary at `/usr/local/bin/sygen`: for a backend's unit tests (see
    /// [`crate::sdk::Context::for_test`]).
    pub fn for_test(user_home: &std::path::Path) -> Self {
        let home = user_home.join(".sygen");
        let path = UNIX_SYSTEM_DIRS.join(":");
        Self {
            name: "sygen".into(),
            label: "dev.sygen".into(),
            description: "sygen agent".into(),
            program: "/usr/local/bin/sygen".into(),
            args: vec!["run".into()],
            env: vec![
                ("PATH".into(), path),
                ("HOME".into(), user_home.to_string_lossy().into_owned()),
                ("SYGEN_HOME".into(), home.to_string_lossy().into_owned()),
                ("SYGEN_SUPERVISOR".into(), "1".into()),
            ],
            logs_dir: home.join("logs"),
            home,
        }
    }

    /// The value of one environment variable of the service.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Converts to the boundary type. Paths must be UTF-8 (the host checks this when it
    /// builds the description, because unit files, plists and task XML are text).
    pub fn to_spec(&self) -> ServiceSpec {
        ServiceSpec {
            name: self.name.as_str().into(),
            label: self.label.as_str().into(),
            description: self.description.as_str().into(),
            program: self.program.to_string_lossy().as_ref().into(),
            args: self
                .args
                .iter()
                .map(|a| RString::from(a.as_str()))
                .collect(),
            env: self
                .env
                .iter()
                .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
                .collect(),
            home: self.home.to_string_lossy().as_ref().into(),
            logs_dir: self.logs_dir.to_string_lossy().as_ref().into(),
            extra: RString::from("{}"),
        }
    }

    /// Converts from the boundary type.
    pub fn from_spec(spec: &ServiceSpec) -> Self {
        let strings = |v: &RVec<RString>| v.iter().map(|s| s.to_string()).collect();
        Self {
            name: spec.name.to_string(),
            label: spec.label.to_string(),
            description: spec.description.to_string(),
            program: PathBuf::from(spec.program.as_str()),
            args: strings(&spec.args),
            env: spec
                .env
                .iter()
                .map(|Tuple2(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: PathBuf::from(spec.home.as_str()),
            logs_dir: PathBuf::from(spec.logs_dir.as_str()),
        }
    }
}

/// What the host adds to the description for one backend, as the JSON object in
/// [`ServiceSpec::extra`]. Every field may be missing: a host older than the field does not
/// send it, and a backend older than the field ignores it. A backend reads it through
/// [`crate::sdk::Context`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceExtra {
    /// The backend's `[backends.<name>]` table of config.toml, as JSON.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The configuration file those settings come from, for errors to name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
}

impl ServiceExtra {
    /// What `spec` carries; nothing, when its `extra` is not such an object.
    pub fn of(spec: &ServiceSpec) -> Self {
        serde_json::from_str(spec.extra.as_str()).unwrap_or_default()
    }

    /// The JSON for [`ServiceSpec::extra`].
    pub fn to_json(&self) -> String {
        let mut sendable = self.clone();
        // JSON holds only text: a configuration file whose path is not UTF-8 is left out, not
        // the settings with it. Nothing else can fail to serialize.
        sendable.config_file = sendable.config_file.filter(|path| path.to_str().is_some());
        serde_json::to_string(&sendable).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_round_trips_and_anything_else_is_nothing() {
        let mut spec = ServiceDescription::for_test(std::path::Path::new("/h")).to_spec();
        let extra = ServiceExtra {
            settings: serde_json::json!({ "dir": "/srv/x", "n": 3 })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            config_file: Some("/h/my home/.sygen/config.toml".into()),
        };
        spec.extra = extra.to_json().as_str().into();
        assert_eq!(ServiceExtra::of(&spec), extra);
        // As a host from before `config_file` sends it.
        spec.extra = r#"{"settings":{"dir":"/srv/x","n":3}}"#.into();
        assert_eq!(
            ServiceExtra::of(&spec),
            ServiceExtra {
                config_file: None,
                ..extra
            }
        );
        for nothing in ["{}", "", "[1]", r#"{"settings":3}"#] {
            spec.extra = nothing.into();
            assert_eq!(
                ServiceExtra::of(&spec),
                ServiceExtra::default(),
                "{nothing}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_config_file_that_is_not_text_is_left_out_and_the_settings_kept() {
        use std::os::unix::ffi::OsStrExt;
        let settings = serde_json::json!({ "dir": "/srv/x" })
            .as_object()
            .cloned()
            .unwrap_or_default();
        let extra = ServiceExtra {
            settings: settings.clone(),
            config_file: Some(std::ffi::OsStr::from_bytes(b"/h/\xff/config.toml").into()),
        };
        let mut spec = ServiceDescription::for_test(std::path::Path::new("/h")).to_spec();
        spec.extra = extra.to_json().as_str().into();
        assert_eq!(
            ServiceExtra::of(&spec),
            ServiceExtra {
                settings,
                config_file: None
            }
        );
    }

    #[test]
    fn round_trips_through_the_boundary_type() {
        let description = ServiceDescription {
            name: "sygen".into(),
            label: "dev.sygen".into(),
            description: "sygen agent".into(),
            program: "/opt/my apps/sygen %$ü".into(),
            args: vec!["run".into(), "--flag=\"x\"".into()],
            env: vec![
                ("PATH".into(), "/usr/bin".into()),
                ("HOME".into(), "/h".into()),
            ],
            home: "/h/.sygen".into(),
            logs_dir: "/h/.sygen/logs".into(),
        };
        assert_eq!(
            ServiceDescription::from_spec(&description.to_spec()),
            description
        );
        assert_eq!(description.env_var("HOME"), Some("/h"));
        assert_eq!(description.env_var("NOPE"), None);
    }
}
