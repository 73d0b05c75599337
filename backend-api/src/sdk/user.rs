//! Who the backend runs as, asked of the OS: the effective user id and that user's entry in
//! the user database. Not `$USER`, which says whatever the environment was given, and not
//! `id`, a process per question whose failure is easy to miss.

use nix::unistd::{self, Uid, User};

use super::{Error, Result};

/// The effective user id: whose permissions the backend has (`0` under sudo), as `id -u`
/// prints it.
pub fn uid() -> u32 {
    unistd::geteuid().as_raw()
}

/// The name of the user [`uid`] is, from the user database (`/etc/passwd`, or what NSS or
/// Directory Services adds to it). A user id with no entry there is an error, with the fix.
pub fn name() -> Result<String> {
    name_of(uid())
}

fn name_of(uid: u32) -> Result<String> {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) if !user.name.is_empty() => Ok(user.name),
        Ok(_) => Err(Error::failed(format!(
            "user id {uid} has no name: the user database has no entry for it"
        ))
        .with_hint(format!(
            "run sygen as a user the system knows by name, or add user id {uid} to /etc/passwd"
        ))),
        Err(errno) => Err(Error::failed(format!(
            "cannot read the user database for user id {uid}: {errno}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `id` says, to compare with: the tool the backends used to ask.
    fn id(flag: &str) -> String {
        let output = super::super::command::run("id", [flag]).expect("id runs");
        assert!(output.success(), "{output:?}");
        output.stdout.trim().to_owned()
    }

    #[test]
    fn the_uid_and_name_are_what_id_says() {
        assert_eq!(uid().to_string(), id("-u"));
        assert_eq!(name().expect("this user has a passwd entry"), id("-un"));
    }

    #[test]
    fn root_is_named_root() {
        assert_eq!(name_of(0).expect("root has a passwd entry"), "root");
    }

    #[test]
    fn a_uid_without_an_entry_is_a_clear_error() {
        // Far above any uid a system hands out, and below the invalid (uid_t)-1.
        let unknown = 3_999_999_999;
        let error = name_of(unknown).unwrap_err();
        assert_eq!(error.kind, crate::ErrorKind::FAILED);
        assert_eq!(
            error.message,
            "user id 3999999999 has no name: the user database has no entry for it"
        );
        assert!(error
            .hint
            .unwrap()
            .contains("add user id 3999999999 to /etc/passwd"));
    }
}
