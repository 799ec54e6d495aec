//! The one rule for cleaning provider text before it is kept in an error or
//! a log line: every copy of the key is replaced, control characters become
//! spaces, and the text is trimmed and cut.
//!
//! Both providers (`swarmbus-anthropic`, `swarmbus-gemini`) build their
//! errors through [`Redactor`], so a key echoed by either server is removed
//! by the same rule: any non-empty key, whatever its length, is replaced.
//! (Before, one provider skipped keys shorter than 4 characters.)

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// What replaces a copy of the key.
pub const REDACTED: &str = "[REDACTED]";

/// How many characters of server text an error keeps (then `…`).
pub const MAX_MESSAGE_CHARS: usize = 400;

/// Replaces any copy of the key in server text, drops control characters
/// and cuts it to [`MAX_MESSAGE_CHARS`]. `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct Redactor {
    key: Option<SecretString>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor([REDACTED])")
    }
}

impl Redactor {
    /// A redactor for `key`.
    pub fn for_key(key: &SecretString) -> Self {
        Self {
            key: Some(key.clone()),
        }
    }

    /// A redactor that only cleans and cuts (no key known).
    pub fn none() -> Self {
        Self { key: None }
    }

    /// The text without the key, control characters or excess length.
    pub fn clean(&self, text: &str) -> String {
        self.clean_to(text, MAX_MESSAGE_CHARS)
    }

    /// [`Redactor::clean`] with another length limit (in characters).
    pub fn clean_to(&self, text: &str, max_chars: usize) -> String {
        let mut s = text.to_owned();
        if let Some(k) = &self.key {
            let k = k.expose_secret();
            if !k.is_empty() {
                s = s.replace(k, REDACTED);
            }
        }
        let s: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        cut(s.trim(), max_chars)
    }
}

fn cut(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max_chars).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str) -> Redactor {
        Redactor::for_key(&SecretString::from(key.to_owned()))
    }

    #[test]
    fn every_non_empty_key_is_replaced_whatever_its_length() {
        for key in ["k", "ab", "abc", "abcd", "key-0123456789"] {
            let out = r(key).clean(&format!("<{key}>"));
            assert_eq!(out, format!("<{REDACTED}>"), "key {key:?}");
        }
    }

    #[test]
    fn an_empty_key_changes_nothing_but_control_characters() {
        assert_eq!(r("").clean("a\nb\t c "), "a b  c");
    }

    #[test]
    fn control_characters_become_spaces_and_the_text_is_cut() {
        let long = "x".repeat(MAX_MESSAGE_CHARS + 10);
        let out = Redactor::none().clean(&long);
        assert_eq!(out.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(out.ends_with('…'));
        assert_eq!(Redactor::none().clean_to("abcdef", 3), "abc…");
    }

    #[test]
    fn the_key_is_never_in_debug() {
        let d = format!("{:?}", r("sk-secret"));
        assert!(!d.contains("sk-secret"), "{d}");
    }
}
