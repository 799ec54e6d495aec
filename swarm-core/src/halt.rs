//! The halt protocol's report ([`HaltReport`]), the value of `halt:reason`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The halt protocol's report, the JSON value of `halt:reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HaltReport {
    /// What failed (`librarian shard 2: quota exhausted`).
    pub failed: String,
    /// At which step of the job (`paper: section 3 of 5`).
    pub step: String,
    /// What was saved before stopping (keys or journal names).
    #[serde(default)]
    pub saved: Vec<String>,
    /// Who halted (worker id, `coordinator`, `librarian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl HaltReport {
    /// A report made now.
    pub fn new(failed: impl Into<String>, step: impl Into<String>) -> Self {
        Self {
            failed: failed.into(),
            step: step.into(),
            saved: Vec::new(),
            by: None,
            at: Utc::now(),
        }
    }

    /// Records what was saved.
    pub fn saved<I, S>(mut self, saved: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.saved.extend(saved.into_iter().map(Into::into));
        self
    }

    /// Reads the value stored under `halt:reason`, whatever wrote it.
    ///
    /// The swarm writes the JSON of a report; the brief's agents (and an
    /// operator's `SET halt:reason "shard 3 failed"`) write plain text.
    /// Both are a halt: a JSON report is read as such; anything else (plain
    /// text, a JSON string, JSON of another shape, invalid UTF-8) is a
    /// report whose `failed` is that text (lossily decoded, trimmed, or
    /// `"(empty halt:reason)"`), `step` empty, `by` unknown, and `at` the
    /// Unix epoch (the time is unknown; [`HaltReport::at_known`] says so).
    /// Never an error: a key that is set always halts.
    pub fn from_stored(raw: &[u8]) -> Self {
        if let Ok(report) = serde_json::from_slice::<HaltReport>(raw) {
            return report;
        }
        let text = match serde_json::from_slice::<String>(raw) {
            Ok(s) => s,
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        };
        let text = text.trim();
        let failed = if text.is_empty() {
            "(empty halt:reason)".to_owned()
        } else {
            text.to_owned()
        };
        Self {
            failed,
            step: String::new(),
            saved: Vec::new(),
            by: None,
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Whether `at` is a real time (false for a plain-text halt, whose
    /// time is unknown).
    pub fn at_known(&self) -> bool {
        self.at != DateTime::<Utc>::UNIX_EPOCH
    }

    /// Records who halted.
    pub fn by(mut self, by: impl Into<String>) -> Self {
        self.by = Some(by.into());
        self
    }
}

impl std::fmt::Display for HaltReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.step.is_empty() {
            f.write_str(&self.failed)?;
        } else {
            write!(f, "{} at step {:?}", self.failed, self.step)?;
        }
        if !self.saved.is_empty() {
            write!(f, " (saved: {})", self.saved.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod halt_text_tests {
    use super::*;

    #[test]
    fn plain_text_under_halt_reason_is_a_halt_with_that_text() {
        let r = HaltReport::from_stored(b"shard 3 failed");
        assert_eq!(r.failed, "shard 3 failed");
        assert!(!r.at_known());
        let r = HaltReport::from_stored(b"\"quoted\"");
        assert_eq!(r.failed, "quoted");
        let r = HaltReport::from_stored(b"{\"other\": 1}");
        assert_eq!(r.failed, "{\"other\": 1}");
        assert_eq!(HaltReport::from_stored(b"  ").failed, "(empty halt:reason)");
        assert_eq!(HaltReport::from_stored(b"bad \xff").failed, "bad \u{fffd}");
        let json = serde_json::to_vec(&HaltReport::new("x", "y").by("w1")).unwrap();
        let r = HaltReport::from_stored(&json);
        assert_eq!((r.failed.as_str(), r.by.as_deref()), ("x", Some("w1")));
    }
}
