//! A sygen host of interface 1.0, reduced to what matters here: it loads the backend named on
//! its command line as the 1.0 host does (`lib_header_from_path` + `init_root_module`), calls
//! `info()`, `capabilities()` and the nine operations, and prints what each answered.

use std::{path::PathBuf, process::ExitCode};

use abi_stable::{
    library::lib_header_from_path,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr},
};
use sygen_backend_api::{
    abi::{Console, ConsoleSink, ConsoleSink_TO},
    BackendModuleRef, ServiceDescription,
};

struct Stdout;

impl ConsoleSink for Stdout {
    fn out(&self, text: RStr<'_>) {
        print!("{text}");
    }
    fn err(&self, text: RStr<'_>) {
        eprint!("{text}");
    }
    fn max_level(&self) -> u8 {
        0
    }
    fn event(&self, _level: u8, _target: RStr<'_>, _message: RStr<'_>) {}
}

fn console() -> Console {
    ConsoleSink_TO::from_value(Stdout, TD_Opaque)
}

fn show<T: std::fmt::Debug>(operation: &str, answer: RResult<T, sygen_backend_api::BackendError>) -> bool {
    match answer {
        RResult::ROk(value) => {
            println!("{operation}: ok {value:?}");
            true
        }
        RResult::RErr(error) => {
            println!("{operation}: error {}", error.message);
            false
        }
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: compat-host-1-0 <backend library>");
        return ExitCode::from(2);
    };
    let module = match lib_header_from_path(&path).and_then(|h| h.init_root_module::<BackendModuleRef>()) {
        Ok(module) => module,
        Err(error) => {
            eprintln!("cannot load {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let info = (module.info())();
    println!("info: {} {} for {}, interface {}", info.name, info.version, info.platform, info.api_version);
    println!("capabilities: {:?}", (module.capabilities())());
    let description = ServiceDescription {
        name: "sygen".into(),
        label: "dev.sygen".into(),
        description: "sygen agent".into(),
        program: "/usr/bin/sygen".into(),
        args: vec!["run".into()],
        env: vec![("SYGEN_SUPERVISOR".into(), "1".into())],
        home: "/tmp/compat-home".into(),
        logs_dir: "/tmp/compat-home/logs".into(),
    };
    let spec = description.to_spec();
    let all = [
        show("is_service_available", (module.is_service_available())(&spec, console())),
        show("is_service_installed", (module.is_service_installed())(&spec, console())),
        show("is_service_running", (module.is_service_running())(&spec, console())),
        show("install_service", (module.install_service())(&spec, console())),
        show("start_service", (module.start_service())(&spec, console())),
        show("stop_service", (module.stop_service())(&spec, console())),
        show("uninstall_service", (module.uninstall_service())(&spec, console())),
        show("print_service_status", (module.print_service_status())(&spec, console())),
        show("print_service_logs", (module.print_service_logs())(&spec, false, 5, console())),
    ];
    if all.iter().all(|ok| *ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
