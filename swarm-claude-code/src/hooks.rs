//! Hook payloads: the JSON object Claude Code writes on a hook command's
//! stdin. Every event has `session_id`, `transcript_path`, `cwd` and
//! `hook_event_name`; events fired inside a subagent add `agent_id` and
//! `agent_type`; `SubagentStop` adds `agent_transcript_path`; tool events
//! add `tool_name` and `tool_input`. No payload carries tokens or cost.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// What a hook reads on stdin (unknown fields are ignored; every field is
/// optional so a newer Claude Code still parses).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct HookPayload {
    /// `SessionStart`, `SubagentStart`, `SubagentStop`, `PreToolUse`, …
    #[serde(default)]
    pub hook_event_name: Option<String>,
    /// The session.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The main session's transcript.
    #[serde(default)]
    pub transcript_path: Option<String>,
    /// The working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The subagent (events inside or about a subagent).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The subagent's type.
    #[serde(default)]
    pub agent_type: Option<String>,
    /// The subagent's transcript (`SubagentStop`).
    #[serde(default)]
    pub agent_transcript_path: Option<String>,
    /// The tool (tool events).
    #[serde(default)]
    pub tool_name: Option<String>,
    /// The tool's input (tool events).
    #[serde(default)]
    pub tool_input: Option<Value>,
    /// The tool call's id (tool events).
    #[serde(default)]
    pub tool_use_id: Option<String>,
}

impl HookPayload {
    /// Parses a payload.
    pub fn parse(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| Error::Json {
            what: "hook payload",
            reason: e.to_string(),
        })
    }

    /// For a `PreToolUse` of the subagent tool (`Agent`, formerly `Task`):
    /// the `model` and `subagent_type` asked for.
    pub fn subagent_request(&self) -> Option<(Option<&str>, Option<&str>)> {
        let tool = self.tool_name.as_deref()?;
        if tool != "Agent" && tool != "Task" {
            return None;
        }
        let input = self.tool_input.as_ref()?;
        Some((
            input.get("model").and_then(Value::as_str),
            input.get("subagent_type").and_then(Value::as_str),
        ))
    }
}
