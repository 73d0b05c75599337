//! A library built against interface 2.0: the host must refuse it by its version number,
//! before it looks at the layout.

use abi_stable::{
    export_root_module, library::RootModule, package_version_strings, prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings, std_types::RString, StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = BackendModuleRef)))]
pub struct BackendModule {
    #[sabi(last_prefix_field)]
    pub info: extern "C" fn() -> RString,
}

impl RootModule for BackendModuleRef {
    abi_stable::declare_root_module_statics! {BackendModuleRef}
    const BASE_NAME: &'static str = "sygen_backend";
    const NAME: &'static str = "sygen backend";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

extern "C" fn info() -> RString {
    "interface 2".into()
}

#[export_root_module]
pub fn root_module() -> BackendModuleRef {
    BackendModule { info }.leak_into_prefix()
}
