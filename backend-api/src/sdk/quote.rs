//! Quoting for formats many service managers read. What a service manager reads is the
//! backend's to escape: the description's program, arguments and environment are plain
//! strings, and may hold spaces, quotes, `$`, `%` or non-ASCII.

use super::{Error, Result};

/// `text` as one word of a POSIX shell script, quoted only when it needs to be; a NUL byte,
/// which no shell word can hold, is an error.
pub fn sh_word(text: &str) -> Result<String> {
    shlex::try_quote(text)
        .map(|quoted| quoted.into_owned())
        .map_err(|e| Error::failed(format!("cannot write {text:?} into a shell script: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_words_that_need_it_and_refuses_nul() {
        assert_eq!(sh_word("/usr/bin/sygen").unwrap(), "/usr/bin/sygen");
        assert_eq!(
            sh_word("/opt/my apps/it's").unwrap(),
            "\"/opt/my apps/it's\""
        );
        assert_eq!(sh_word("$HOME").unwrap(), "'$HOME'");
        assert!(sh_word("a\0b").is_err());
    }
}
