//! What a backend file says it is: the identity sygen finds, chooses, installs and compares
//! backends by, whether it was loaded here or described by a child process.

use serde::{Deserialize, Serialize};

use super::name::BackendName;

/// A backend's own word about itself (its `info()`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Described {
    pub name: BackendName,
    pub version: String,
    pub platform: String,
    pub description: String,
    pub api_version: String,
}

impl Described {
    /// Its version, for comparing (see [`version`]).
    pub fn semver(&self) -> semver::Version {
        version(&self.version)
    }

    /// The major version of the backend interface it was built against, when it states one
    /// as semver.
    pub fn interface(&self) -> Result<u64, semver::Error> {
        semver::Version::parse(&self.api_version).map(|v| v.major)
    }
}

/// A version as a backend states it, for comparing: one that is not semver counts as 0.0.0,
/// below every real version, so it never wins a choice or blocks an update.
pub fn version(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or(semver::Version::new(0, 0, 0))
}
