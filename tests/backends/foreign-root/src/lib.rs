//! A library with an abi_stable root module that is not the sygen 1.x one. It is built twice:
//! as version 1.0.0 (`foreign-root`: the right interface version, another layout, as a backend
//! built against an interface that broke the freeze rule would be) and as version 2.0.0
//! (`interface-2`: another major version of the interface, refused before the layout is read).

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
    "not a sygen backend".into()
}

#[export_root_module]
pub fn root_module() -> BackendModuleRef {
    BackendModule { info }.leak_into_prefix()
}
