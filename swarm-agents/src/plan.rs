//! The coordinator's plan: independent tasks for the workers, as structured
//! output checked against [`plan_schema`]. A plan that is not exactly that
//! JSON is [`AgentError::MalformedPlan`]: the run stops and reports; the plan
//! is never guessed or repaired.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{AgentError, Result, cut};

/// Longest task kind accepted.
pub const MAX_KIND_CHARS: usize = 64;
/// Longest task instructions accepted.
pub const MAX_INSTRUCTIONS_CHARS: usize = 4_000;

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PlannedTask {
    /// A short kind (`search`, `count`, `git-history`, …).
    pub kind: String,
    /// What the worker must do and report, self-contained.
    pub instructions: String,
    /// Whether the task may write files in the workspace.
    #[serde(default)]
    pub allow_write: bool,
    /// Extra payload fields for the task, set by code (an offline plan's
    /// search pattern); a model's plan cannot set them.
    #[serde(skip)]
    pub payload: serde_json::Map<String, Value>,
}

impl PlannedTask {
    /// A read-only task.
    pub fn new(kind: impl Into<String>, instructions: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            instructions: instructions.into(),
            allow_write: false,
            payload: serde_json::Map::new(),
        }
    }

    /// Adds a payload field.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.payload.insert(key.to_owned(), value);
        self
    }
}

/// A plan: independent tasks, run in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Plan {
    /// The tasks.
    pub tasks: Vec<PlannedTask>,
}

impl Plan {
    /// A plan of these tasks.
    pub fn new(tasks: Vec<PlannedTask>) -> Self {
        Self { tasks }
    }
}

/// The JSON Schema a plan must match, for at most `max_tasks` tasks.
pub fn plan_schema(max_tasks: usize) -> Value {
    json!({
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_tasks,
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "description": "short kind: search, read, count, git, analysis, ..."},
                        "instructions": {"type": "string", "description": "self-contained instructions for one worker"},
                        "allow_write": {"type": "boolean"}
                    },
                    "required": ["kind", "instructions"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["tasks"],
        "additionalProperties": false
    })
}

/// Checks the model's text against the plan schema. The text must be one JSON
/// object (a single fenced ```json block around it is accepted, since that is
/// unambiguous); anything else is refused with the reason.
pub fn parse_plan(model: &str, text: &str, max_tasks: usize) -> Result<Plan> {
    let malformed = |reason: String| AgentError::MalformedPlan {
        model: model.to_owned(),
        reason,
        raw: cut(text, 2_000),
    };
    let body = unfence(text.trim());
    let plan: Plan =
        serde_json::from_str(body).map_err(|e| malformed(format!("not the plan JSON: {e}")))?;
    if plan.tasks.is_empty() {
        return Err(malformed("no tasks".into()));
    }
    if plan.tasks.len() > max_tasks {
        return Err(malformed(format!(
            "{} tasks, over the maximum of {max_tasks}",
            plan.tasks.len()
        )));
    }
    for (i, t) in plan.tasks.iter().enumerate() {
        let n = i + 1;
        if t.kind.trim().is_empty() || t.kind.chars().count() > MAX_KIND_CHARS {
            return Err(malformed(format!(
                "task {n}: kind must be 1 to {MAX_KIND_CHARS} characters"
            )));
        }
        if t.instructions.trim().is_empty()
            || t.instructions.chars().count() > MAX_INSTRUCTIONS_CHARS
        {
            return Err(malformed(format!(
                "task {n}: instructions must be 1 to {MAX_INSTRUCTIONS_CHARS} characters"
            )));
        }
    }
    Ok(plan)
}

fn unfence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    match rest.strip_suffix("```") {
        Some(inner) if !inner.contains("```") => inner.trim(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_exactly_the_schemas_json() {
        let p = parse_plan(
            "m",
            r#"{"tasks":[{"kind":"search","instructions":"grep for KEYS"}]}"#,
            5,
        )
        .unwrap();
        assert_eq!(p.tasks, vec![PlannedTask::new("search", "grep for KEYS")]);
        let fenced = "```json\n{\"tasks\":[{\"kind\":\"a\",\"instructions\":\"b\"}]}\n```";
        assert_eq!(parse_plan("m", fenced, 5).unwrap().tasks.len(), 1);
    }

    #[test]
    fn anything_else_stops_the_run() {
        for bad in [
            "Sure! Here is the plan: {\"tasks\":[]}",
            r#"{"tasks":[]}"#,
            r#"{"tasks":[{"kind":"","instructions":"x"}]}"#,
            r#"{"tasks":[{"kind":"a","instructions":"x","extra":1}]}"#,
            r#"{"tasks":[{"kind":"a"}]}"#,
            r#"{"steps":[]}"#,
            r#"[{"kind":"a","instructions":"x"}]"#,
            "",
        ] {
            let e = parse_plan("claude", bad, 5).unwrap_err();
            assert!(
                matches!(e, AgentError::MalformedPlan { .. }),
                "{bad}: {e:?}"
            );
        }
        let six = format!(
            "{{\"tasks\":[{}]}}",
            [r#"{"kind":"a","instructions":"x"}"#; 6].join(",")
        );
        assert!(parse_plan("m", &six, 5).is_err());
    }
}
