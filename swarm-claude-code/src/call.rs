//! One model call as Claude Code reports it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use swarmbus_core::llm::Usage;

/// Where a call was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// A session or subagent transcript.
    Transcript,
    /// An OpenTelemetry `api_request` log event.
    Otel,
}

impl Source {
    /// Its name in messages (`transcript`, `otel`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transcript => "transcript",
            Self::Otel => "otel",
        }
    }
}

/// One model call Claude Code made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallUsage {
    /// Where it was read.
    pub source: Source,
    /// The API's request id (`req_…`), when reported.
    pub request_id: Option<String>,
    /// The message id (`msg_…`), when reported (transcripts only).
    pub message_id: Option<String>,
    /// The model that answered (`claude-haiku-5-5`).
    pub model: String,
    /// Claude Code's session id.
    pub session: Option<String>,
    /// The subagent's id; `None` for the main (coordinator) session.
    pub agent_id: Option<String>,
    /// The subagent's type (`general-purpose`, `swarm-worker`).
    pub agent_type: Option<String>,
    /// Tokens per bucket.
    pub usage: Usage,
    /// When the call was made, when reported.
    pub at: Option<DateTime<Utc>>,
    /// Claude Code's own price of the call (OpenTelemetry only), for
    /// comparison: the ledger prices calls itself.
    pub cost_usd: Option<f64>,
}

impl CallUsage {
    /// The key that names this call in every source: `req:<request id>`,
    /// else `msg:<message id>`; `None` when the call carries neither (it
    /// cannot be de-duplicated and should not be booked blindly).
    pub fn dedup_key(&self) -> Option<String> {
        if let Some(r) = self.request_id.as_deref().filter(|r| !r.is_empty()) {
            return Some(format!("req:{r}"));
        }
        self.message_id
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| format!("msg:{m}"))
    }

    /// Whether a subagent made the call.
    pub fn is_subagent(&self) -> bool {
        self.agent_id.is_some()
    }

    /// Total tokens of every bucket (for messages).
    pub fn total_tokens(&self) -> u64 {
        let u = &self.usage;
        u.input_tokens
            .saturating_add(u.output_tokens)
            .saturating_add(u.cache_read_tokens)
            .saturating_add(u.cache_write_5m_tokens)
            .saturating_add(u.cache_write_1h_tokens)
    }

    /// Where two reports of the same call disagree on the tokens or the
    /// model, in words (`None` when they agree).
    pub fn disagreement(&self, other: &CallUsage) -> Option<String> {
        let mut diffs = Vec::new();
        if self.model != other.model {
            diffs.push(format!("model {} vs {}", self.model, other.model));
        }
        let (a, b) = (&self.usage, &other.usage);
        for (name, x, y) in [
            ("input", a.input_tokens, b.input_tokens),
            ("output", a.output_tokens, b.output_tokens),
            ("cache read", a.cache_read_tokens, b.cache_read_tokens),
            (
                "cache write 5m",
                a.cache_write_5m_tokens,
                b.cache_write_5m_tokens,
            ),
            (
                "cache write 1h",
                a.cache_write_1h_tokens,
                b.cache_write_1h_tokens,
            ),
        ] {
            if x != y {
                diffs.push(format!("{name} {x} vs {y}"));
            }
        }
        (!diffs.is_empty()).then(|| diffs.join(", "))
    }
}
