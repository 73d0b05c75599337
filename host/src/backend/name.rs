//! A backend's name, and the file names made from it.
//!
//! Backend files and store paths are made from names, so a name is checked once, where it
//! comes in (the command line, config.toml, a library's own `info`, a child's answer), and is
//! a [`BackendName`] from then on: it can never leave the directory it is joined to.

use std::{env::consts, fmt};

use serde::{Deserialize, Serialize};

/// A backend name: `[a-z0-9][a-z0-9_-]*`, at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackendName(String);

impl BackendName {
    /// `name`, if it is a backend name; else what is wrong with it ("is empty", …).
    pub fn new(name: impl Into<String>) -> Result<Self, (String, &'static str)> {
        let name = name.into();
        match check(&name) {
            Ok(()) => Ok(Self(name)),
            Err(why) => Err((name, why)),
        }
    }

    /// A name given on the command line or in config.toml: the error says what a name is.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::new(name).map_err(|(name, why)| {
            format!("{name:?} is not a backend name: it {why} (for example: systemd)")
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The library file of this backend on this platform: `libsygen_<name>.so`,
    /// `libsygen_<name>.dylib`, `sygen_<name>.dll`.
    pub fn file_name(&self) -> String {
        format!(
            "{}sygen_{}.{}",
            consts::DLL_PREFIX,
            self.0,
            consts::DLL_EXTENSION
        )
    }
}

fn check(name: &str) -> Result<(), &'static str> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    match name.chars().next() {
        None => Err("is empty"),
        Some('-' | '_') => Err("does not start with a letter or digit"),
        Some(_) if name.len() > 64 => Err("is longer than 64 characters"),
        Some(_) if !name.chars().all(allowed) => {
            Err("has characters other than lowercase letters, digits, '-' and '_'")
        }
        Some(_) => Ok(()),
    }
}

impl TryFrom<String> for BackendName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Self::parse(&name)
    }
}

impl From<BackendName> for String {
    fn from(name: BackendName) -> Self {
        name.0
    }
}

impl std::str::FromStr for BackendName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::parse(name)
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for BackendName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for BackendName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Whether a file name looks like a backend library on this platform (the inverse of
/// [`BackendName::file_name`], for any name).
pub fn is_backend_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(&format!(".{}", consts::DLL_EXTENSION)) else {
        return false;
    };
    stem.strip_prefix("lib")
        .unwrap_or(stem)
        .strip_prefix("sygen_")
        .is_some_and(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_lowercase_letters_digits_dashes_and_underscores() {
        for good in ["systemd", "openrc", "my-backend_2", "0x", &"a".repeat(64)] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-x",
            "_x",
            "X",
            "a/b",
            "..",
            "a.b",
            "a b",
            "a\nb",
            "é",
            &"a".repeat(65),
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recognises_backend_file_names() {
        let ext = consts::DLL_EXTENSION;
        assert!(is_backend_file_name(&format!("libsygen_systemd.{ext}")));
        assert!(is_backend_file_name(&format!("sygen_tasksched.{ext}")));
        assert!(!is_backend_file_name(&format!("libsygen_.{ext}")));
        assert!(!is_backend_file_name(&format!("libz.{ext}")));
        assert!(!is_backend_file_name("libsygen_systemd.d"));
        assert!(!is_backend_file_name("sygen"));
        let name = BackendName::parse("systemd").unwrap();
        assert!(is_backend_file_name(&name.file_name()));
    }

    #[test]
    fn a_name_read_from_json_is_checked() {
        let name: BackendName = serde_json::from_str("\"systemd\"").unwrap();
        assert_eq!(name, "systemd");
        let error = serde_json::from_str::<BackendName>("\"../x\"").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("\"../x\" is not a backend name: it has characters"),
            "{error}"
        );
    }
}
