//! The crate's one error type. Callers decide by asking it
//! ([`AgentError::retry`], [`AgentError::halt_report`]), never by parsing its
//! message.

use std::path::PathBuf;
use std::time::Duration;

use swarmbus_core::HaltReport;
use swarmbus_core::error::{Error, Retry};

/// Every error of the agent runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A bus or model error, with its own retry advice.
    #[error(transparent)]
    Core(Error),
    /// The swarm is halted; the report says why. Stop, start nothing new.
    #[error("swarm halted: {}", .0.failed)]
    Halted(Box<HaltReport>),
    /// A configuration value was refused before anything started.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A file could not be written; the I/O error is kept as the source.
    #[error("cannot write {}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The coordinator model's plan is not the JSON the schema asks for: the
    /// run stops here (a plan is never guessed).
    #[error("malformed plan from {model}: {reason}")]
    MalformedPlan {
        /// The model that planned.
        model: String,
        /// What was wrong.
        reason: String,
        /// The model's text, cut to 2,000 characters.
        raw: String,
    },
    /// The coordinator model's answer cannot be used (empty, or citing
    /// findings it was not shown).
    #[error("unusable answer from {model}: {reason}")]
    MalformedAnswer {
        /// The model.
        model: String,
        /// What was wrong.
        reason: String,
    },
    /// A budget refused the coordinator's next call.
    #[error("budget refused the call: {reason}")]
    BudgetRefused {
        /// What the budget said.
        reason: String,
    },
    /// The librarian failed or did not answer in time.
    #[error("librarian: {message}")]
    Librarian {
        /// What happened.
        message: String,
    },
    /// Waiting for the workers took longer than the deadline.
    #[error("{pending} of {total} tasks unfinished after {after:?}")]
    Deadline {
        /// Tasks with neither a finding nor a failure report.
        pending: usize,
        /// Tasks dispatched.
        total: usize,
        /// The deadline.
        after: Duration,
    },
    /// Context safety: too many findings, summarise before delegating more.
    #[error("context over its limit: {findings} findings > {limit}; summarise first")]
    ContextFull {
        /// Active findings.
        findings: u64,
        /// The limit.
        limit: u64,
    },
}

impl AgentError {
    /// Whether and how a retry may help.
    pub fn retry(&self) -> Retry {
        match self {
            AgentError::Core(e) => e.retry(),
            AgentError::Halted(_) => Retry::Stop,
            _ => Retry::Never,
        }
    }

    /// The halt report, when a halt stopped the work.
    pub fn halt_report(&self) -> Option<&HaltReport> {
        match self {
            AgentError::Halted(h) => Some(h),
            AgentError::Core(Error::Halted(h)) => Some(h),
            _ => None,
        }
    }
}

impl From<Error> for AgentError {
    fn from(e: Error) -> Self {
        match e {
            Error::Halted(h) => AgentError::Halted(h),
            Error::Refused { reason, .. } => AgentError::BudgetRefused { reason },
            other => AgentError::Core(other),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// Cuts text to at most `max` characters for an error or a tool result.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
