//! A loaded backend, and every call into it: each goes through the boundary (a time limit,
//! crashes reported) with the host's console, and each error comes back as the host reports
//! it, naming the backend.

use std::path::{Path, PathBuf};

use sygen_backend_api::{
    abi::BackendResult, BackendError, BackendModuleRef, ServiceExtra, ServiceSpec,
};

use super::{
    boundary::{self, Limit, Site},
    console,
    identity::Described,
    name::BackendName,
};
use crate::{
    exit::{BackendSaid, Exit, Failure},
    platform::LoadedFile,
};

/// A loaded backend library.
pub struct Backend {
    pub path: PathBuf,
    /// The library's file as loaded, open for good.
    file: LoadedFile,
    pub name: BackendName,
    pub version: String,
    pub platform: String,
    pub description: String,
    pub api_version: String,
    /// The backend shipped with sygen that this one, chosen from the sygen home, replaces.
    pub replaces: Option<PathBuf>,
    /// Why it is the backend in use, when it is.
    pub why: Option<Why>,
    /// The description's `extra` for this backend: its settings from config.toml, and where
    /// they come from.
    extra: String,
    module: BackendModuleRef,
}

/// Why the backend in use is the one it is, as sygen says it wherever it names that backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// `--backend <file>`.
    Flag,
    /// `$SYGEN_BACKEND`.
    Env,
    /// `backend = "<name>"` in config.toml (`sygen service backend use <name>`).
    Config,
    /// The platform's usual backend (systemd, launchd, Task Scheduler).
    PlatformDefault,
    /// The only backend found for the platform.
    OnlyOne,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Flag => "named with --backend",
            Why::Env => "named by SYGEN_BACKEND",
            Why::Config => "chosen in config.toml",
            Why::PlatformDefault => "the default for this platform",
            Why::OnlyOne => "the only one for this platform",
        })
    }
}

/// A backend error, as the host reports it: prefixed with the backend, mapped to an exit code.
pub fn backend_failure(backend: &Backend, error: BackendError) -> Failure {
    let exit = if error.kind == sygen_backend_api::ErrorKind::NOT_INSTALLED {
        Exit::NotInstalled
    } else {
        Exit::Failed
    };
    let mut failure = Failure::new(
        exit,
        format!(
            "{} backend {}: {}",
            backend.name, backend.version, error.message
        ),
    );
    failure.backend = Some(BackendSaid {
        kind: error.kind,
        message: error.message.to_string(),
    });
    match error.hint.into_option() {
        Some(hint) => failure.hint(hint),
        None if exit == Exit::NotInstalled => failure.hint("run `sygen service install`"),
        None => failure,
    }
}

type Operation<T> =
    extern "C" fn(&ServiceSpec, sygen_backend_api::abi::Console) -> BackendResult<T>;

macro_rules! operations {
    ($($name:ident -> $ty:ty, $limit:ident;)*) => {$(
        pub fn $name(&self, spec: &ServiceSpec) -> Result<$ty, Failure> {
            self.invoke(stringify!($name), Limit::$limit, self.module.$name(), spec)
        }
    )*};
}

impl Backend {
    /// The backend `described`, loaded from `path` as `module`; configured with no settings.
    pub fn new(
        path: PathBuf,
        file: LoadedFile,
        described: Described,
        module: BackendModuleRef,
    ) -> Self {
        let Described {
            name,
            version,
            platform,
            description,
            api_version,
        } = described;
        Self {
            path,
            file,
            name,
            version,
            platform,
            description,
            api_version,
            replaces: None,
            why: None,
            extra: ServiceExtra::default().to_json(),
            module,
        }
    }

    /// `systemd backend 0.1.0`: the backend as messages name it.
    fn who(&self) -> String {
        format!("{} backend {}", self.name, self.version)
    }

    fn site<'a>(&'a self, who: &'a str, call: &'a str) -> Site<'a> {
        Site {
            who,
            call,
            file: Some((&self.path, self.file)),
        }
    }

    /// Calls into the backend through the boundary (see `boundary`): its answer, its error as
    /// the host reports it, or why there was none.
    fn guarded<T: Send + 'static>(
        &self,
        call: &str,
        limit: Limit,
        f: impl FnOnce(sygen_backend_api::abi::Console) -> BackendResult<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let console = console::for_backend(self.name.as_str());
        let who = self.who();
        let site = self.site(&who, call);
        boundary::call(&site, limit, move || f(console).into_result())
            .map_err(|no_answer| {
                let mut failure = no_answer.failure(&site);
                failure.backend = Some(BackendSaid {
                    kind: sygen_backend_api::ErrorKind::FAILED,
                    message: no_answer.reason(call),
                });
                failure
            })?
            .map_err(|e| backend_failure(self, e))
    }

    fn invoke<T: Send + 'static>(
        &self,
        call: &str,
        limit: Limit,
        operation: Operation<T>,
        spec: &ServiceSpec,
    ) -> Result<T, Failure> {
        let spec = self.spec(spec);
        self.guarded(call, limit, move |console| operation(&spec, console))
    }

    /// Gives the backend its own table of `settings`, read from `config_file`, with every call
    /// from now on.
    pub fn configure(&mut self, settings: &Settings, config_file: &Path) {
        self.extra = extra_for(settings.get(&self.name), config_file);
    }

    /// `spec`, with this backend's own part of the description (its settings and their file)
    /// in `extra`.
    fn spec(&self, spec: &ServiceSpec) -> ServiceSpec {
        let mut spec = spec.clone();
        spec.extra = self.extra.as_str().into();
        spec
    }

    operations! {
        is_service_available -> bool, Query;
        is_service_installed -> bool, Query;
        is_service_running -> bool, Query;
        install_service -> (), Change;
        start_service -> (), Change;
        stop_service -> (), Change;
        uninstall_service -> (), Change;
        print_service_status -> (), Query;
    }

    /// What the backend says it is.
    pub fn described(&self) -> Described {
        Described {
            name: self.name.clone(),
            version: self.version.clone(),
            platform: self.platform.clone(),
            description: self.description.clone(),
            api_version: self.api_version.clone(),
        }
    }

    /// What to say after the backend's name where sygen names the backend in use: why it is
    /// the one, and where it comes from when it replaces the one shipped with sygen.
    pub fn replacing(&self) -> String {
        let why = self.why.map_or(String::new(), |why| format!(", {why}"));
        match &self.replaces {
            Some(shipped) => format!(
                " {} from {}, which replaces the one shipped with sygen ({}){why}",
                self.version,
                self.path.parent().unwrap_or(&self.path).display(),
                shipped.display()
            ),
            None => why,
        }
    }

    /// The `call` methods and optional behaviours the backend supports (none, if it cannot
    /// say in time).
    pub fn capabilities(&self) -> Vec<String> {
        let capabilities = self.module.capabilities();
        let who = self.who();
        let site = self.site(&who, "capabilities");
        boundary::call(&site, Limit::Query, move || {
            capabilities().into_iter().map(String::from).collect()
        })
        .unwrap_or_else(|no_answer| {
            tracing::warn!("{}", no_answer.failure(&site));
            Vec::new()
        })
    }

    /// The extension point: `method` with a JSON `input`, answering JSON.
    pub fn call(&self, method: &str, input: &str, spec: &ServiceSpec) -> Result<String, Failure> {
        let (function, spec) = (self.module.call(), self.spec(spec));
        let (method_text, input) = (method.to_owned(), input.to_owned());
        self.guarded(method, Limit::Change, move |console| {
            function(
                method_text.as_str().into(),
                input.as_str().into(),
                &spec,
                console,
            )
        })
        .map(String::from)
    }

    pub fn print_service_logs(
        &self,
        spec: &ServiceSpec,
        follow: bool,
        lines: u32,
    ) -> Result<(), Failure> {
        let (function, spec) = (self.module.print_service_logs(), self.spec(spec));
        let limit = if follow { Limit::None } else { Limit::Change };
        self.guarded("print_service_logs", limit, move |console| {
            function(&spec, follow, lines, console)
        })
    }
}

/// `[backends.<name>]` of config.toml, by name.
pub type Settings = std::collections::BTreeMap<BackendName, toml::Table>;

/// What the description's `extra` carries to a backend: its own settings, and the file they
/// come from (for its errors to name).
fn extra_for(settings: Option<&toml::Table>, config_file: &Path) -> String {
    let settings = match settings.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(table))) => table,
        _ => serde_json::Map::new(),
    };
    ServiceExtra {
        settings,
        config_file: Some(config_file.to_owned()),
    }
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_gets_its_settings_and_the_file_they_come_from() {
        let table: toml::Table = toml::from_str("dir = \"/srv/x\"\nretries = 3\n").unwrap();
        let config = Path::new("/home/a b/.sygen/config.toml");
        let mut spec = sygen_backend_api::ServiceDescription::for_test(Path::new("/h")).to_spec();
        spec.extra = extra_for(Some(&table), config).as_str().into();
        let extra = ServiceExtra::of(&spec);
        assert_eq!(
            serde_json::Value::Object(extra.settings),
            serde_json::json!({ "dir": "/srv/x", "retries": 3 })
        );
        assert_eq!(extra.config_file.as_deref(), Some(config));
        spec.extra = extra_for(None, config).as_str().into();
        assert!(ServiceExtra::of(&spec).settings.is_empty());
    }
}
