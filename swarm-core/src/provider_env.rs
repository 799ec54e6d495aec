//! Reading a provider's connection settings from the environment: the one
//! rule every provider client follows (`ANTHROPIC_*`, `GEMINI_*`,
//! `DEEPSEEK_*`).
//!
//! - A variable counts when it is set, valid Unicode and not blank; its
//!   value is trimmed ([`var`]).
//! - A base URL override replaces the provider's default only when it
//!   counts ([`ProviderEnv::base_url_or`]).
//! - A key is read as a [`SecretString`], kept as written (the client
//!   decides how to put it in a header), and a missing or blank one is a
//!   [`MissingKey`] naming the variable, never its value.
//!
//! This module reads variables and nothing else: no files, no network.

use secrecy::SecretString;

/// The variable of a provider's key is unset or blank.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var} is not set")]
#[non_exhaustive]
pub struct MissingKey {
    /// The variable's name.
    pub var: String,
}

/// The value of `name`, trimmed, when it is set, valid Unicode and not
/// blank.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The environment variables a provider reads its key and base URL from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderEnv {
    /// The key's variable (`ANTHROPIC_API_KEY`).
    pub key_var: &'static str,
    /// The base URL override's variable (`ANTHROPIC_BASE_URL`).
    pub base_url_var: &'static str,
}

impl ProviderEnv {
    /// A provider reading its key from `key_var` and its base URL override
    /// from `base_url_var`.
    pub const fn new(key_var: &'static str, base_url_var: &'static str) -> Self {
        Self {
            key_var,
            base_url_var,
        }
    }

    /// The base URL: the override when it counts, else `default`.
    pub fn base_url_or(&self, default: &str) -> String {
        var(self.base_url_var).unwrap_or_else(|| default.to_owned())
    }

    /// The key, when set and not blank.
    pub fn optional_key(&self) -> Option<SecretString> {
        std::env::var(self.key_var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from)
    }

    /// The key, or [`MissingKey`] naming its variable.
    pub fn key(&self) -> Result<SecretString, MissingKey> {
        self.optional_key().ok_or_else(|| MissingKey {
            var: self.key_var.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Variables no environment sets: the tests only read (setting one is
    // `unsafe` and races other threads).
    const NONE: ProviderEnv = ProviderEnv::new(
        "SWARMBUS_PROVIDER_ENV_TEST_NO_KEY",
        "SWARMBUS_PROVIDER_ENV_TEST_NO_URL",
    );

    #[test]
    fn an_unset_override_leaves_the_default() {
        assert_eq!(NONE.base_url_or("https://x.test"), "https://x.test");
        assert_eq!(var(NONE.base_url_var), None);
    }

    #[test]
    fn a_missing_key_names_its_variable() {
        assert!(NONE.optional_key().is_none());
        let e = NONE.key().unwrap_err();
        assert_eq!(e.var, "SWARMBUS_PROVIDER_ENV_TEST_NO_KEY");
        assert_eq!(
            e.to_string(),
            "SWARMBUS_PROVIDER_ENV_TEST_NO_KEY is not set"
        );
    }

    #[test]
    fn a_set_variable_is_read() {
        use secrecy::ExposeSecret;
        // A variable this process has (whoever started it: cargo, the
        // clock check running the executable itself, CI), read through
        // both fields; setting one would be `unsafe` and race other tests.
        let (name, value) = std::env::vars()
            .find(|(_, v)| !v.is_empty() && v.trim() == v)
            .expect("a process with no environment variable at all");
        let name: &'static str = Box::leak(name.into_boxed_str());
        let set = ProviderEnv::new(name, name);
        assert_eq!(set.base_url_or("https://x.test"), value);
        assert_eq!(set.key().unwrap().expose_secret(), value);
    }
}
