//! Session transcripts: one JSON object per line. Entries of
//! `type: "assistant"` carry `message.{id, model, usage}`, `requestId`,
//! `sessionId`, `timestamp`, and on a subagent's entries `isSidechain: true`,
//! `agentId` and `attributionAgent`. Claude Code writes one entry per content
//! block of a message, each repeating the message's whole usage, so calls are
//! kept once per request id (else message id). Other entry types carry no
//! usage and are passed over.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use swarmbus_core::llm::Usage;

use crate::call::{CallUsage, Source};

/// The calls of one transcript.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Transcript {
    /// One per call, in the order written.
    pub calls: Vec<CallUsage>,
    /// Entries repeating a call already kept (content blocks of one message).
    pub repeated: u64,
    /// Lines that did not parse: (line number from 1, what was wrong).
    pub skipped: Vec<(usize, String)>,
}

/// A subagent's `agent-<id>.meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AgentMeta {
    /// The subagent type (`general-purpose`, `swarm-worker`).
    #[serde(default)]
    pub agent_type: Option<String>,
    /// The model alias it ran with (`haiku`).
    #[serde(default)]
    pub model: Option<String>,
    /// The description the coordinator gave it.
    #[serde(default)]
    pub description: Option<String>,
}

impl AgentMeta {
    /// Reads a meta file's text; `None` when it is not the expected JSON.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// The usage object of the Messages API as Claude Code stores it.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_creation: Option<WireCacheCreation>,
    #[serde(default)]
    output_tokens_details: Option<WireOutputDetails>,
    #[serde(default)]
    server_tool_use: Option<WireServerTools>,
}

#[derive(Debug, Default, Deserialize)]
struct WireCacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

#[derive(Debug, Default, Deserialize)]
struct WireOutputDetails {
    #[serde(default)]
    thinking_tokens: u64,
}

#[derive(Debug, Default, Deserialize)]
struct WireServerTools {
    #[serde(default)]
    web_search_requests: u64,
    #[serde(default)]
    web_fetch_requests: u64,
}

impl WireUsage {
    fn to_usage(&self) -> Usage {
        // Without the 5m/1h split every cache write is a 5-minute one (the
        // API's default TTL).
        let (five, hour) = match &self.cache_creation {
            Some(c) if c.ephemeral_5m_input_tokens + c.ephemeral_1h_input_tokens > 0 => {
                (c.ephemeral_5m_input_tokens, c.ephemeral_1h_input_tokens)
            }
            _ => (self.cache_creation_input_tokens, 0),
        };
        let mut u = Usage::new(self.input_tokens, self.output_tokens)
            .with_cache_read(self.cache_read_input_tokens)
            .with_cache_write(five, hour);
        if let Some(d) = &self.output_tokens_details {
            u.thinking_tokens = d.thinking_tokens.min(self.output_tokens);
        }
        if let Some(s) = &self.server_tool_use {
            u.server_tool_requests = s.web_search_requests.saturating_add(s.web_fetch_requests);
        }
        u
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    is_sidechain: bool,
    #[serde(default)]
    attribution_agent: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Reads a transcript's text. `agent_type` names the subagent type when the
/// caller knows it (from the meta file or the hook payload); else the
/// entries' `attributionAgent` is used.
pub fn parse(text: &str, agent_type: Option<&str>) -> Transcript {
    let mut out = Transcript::default();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // Cheap pre-check: most lines are not assistant messages.
        if !line.contains("\"assistant\"") {
            if serde_json::from_str::<Value>(line).is_err() {
                out.skipped.push((n + 1, "not JSON".to_owned()));
            }
            continue;
        }
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                out.skipped.push((n + 1, e.to_string()));
                continue;
            }
        };
        if entry.kind != "assistant" {
            continue;
        }
        let Some(message) = entry.message else {
            continue;
        };
        let (Some(model), Some(usage)) = (message.model, message.usage) else {
            continue;
        };
        // Claude Code's own placeholder messages (errors, interruptions)
        // were never sent to the API.
        if model.is_empty() || model.starts_with('<') {
            continue;
        }
        let agent_id = entry.agent_id.filter(|a| !a.is_empty());
        let agent_id = if entry.is_sidechain || agent_id.is_some() {
            agent_id.or_else(|| Some("sidechain".to_owned()))
        } else {
            None
        };
        let call = CallUsage {
            source: Source::Transcript,
            request_id: entry.request_id.filter(|r| !r.is_empty()),
            message_id: message.id.filter(|m| !m.is_empty()),
            model,
            session: entry.session_id,
            agent_type: agent_id.as_ref().and_then(|_| {
                agent_type
                    .map(str::to_owned)
                    .or(entry.attribution_agent.clone())
            }),
            agent_id,
            usage: usage.to_usage(),
            at: entry
                .timestamp
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            cost_usd: None,
        };
        let Some(key) = call.dedup_key() else {
            out.skipped.push((
                n + 1,
                "assistant entry without requestId or message id".to_owned(),
            ));
            continue;
        };
        // A message's blocks share both ids; key on each so neither alone
        // lets a repeat through.
        let msg_key = call.message_id.as_ref().map(|m| format!("msg:{m}"));
        if !seen.insert(key.clone()) || msg_key.as_ref().is_some_and(|m| seen.contains(m)) {
            out.repeated += 1;
            continue;
        }
        if let Some(m) = msg_key {
            seen.insert(m);
        }
        out.calls.push(call);
    }
    out
}

/// The path of a subagent's meta file next to its transcript
/// (`agent-<id>.jsonl` → `agent-<id>.meta.json`).
pub fn meta_path(transcript: &std::path::Path) -> std::path::PathBuf {
    transcript.with_extension("meta.json")
}
