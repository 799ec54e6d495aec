//! Bus tools: read and search findings, ask the librarian, write a finding.

use async_trait::async_trait;
use serde_json::{Value, json};
use swarmbus_core::keys::FindingId;
use swarmbus_core::{ArchiveQuery, Finding, FindingFilter, ResponseStatus};

use super::{Tool, ToolContext, ToolDefinition, ToolError, required_str, str_field, u64_field};
use crate::error::cut;
use crate::librarian::ask::{AskError, ask};

fn bus_error(e: swarmbus_core::Error) -> ToolError {
    ToolError::Failed {
        message: format!("bus: {e}"),
    }
}

fn finding_id(s: &str) -> Result<FindingId, ToolError> {
    FindingId::parse(s).map_err(|e| ToolError::InvalidInput {
        reason: e.to_string(),
    })
}

/// One finding as the model reads it.
pub(crate) fn render_finding(f: &Finding, max_body: usize) -> String {
    let tags: Vec<&str> = f.tags.iter().map(String::as_str).collect();
    format!(
        "[{}] {} (by {}, session {}, tags: {})\n{}",
        f.id,
        f.title,
        f.worker,
        f.session,
        if tags.is_empty() {
            "-".into()
        } else {
            tags.join(", ")
        },
        cut(&f.body, max_body)
    )
}

/// `read_finding`: one finding by id.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFinding;

#[async_trait]
impl Tool for ReadFinding {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "read_finding",
            "Read one finding of the swarm by its id.",
            json!({
                "type": "object",
                "properties": {"id": {"type": "string", "description": "The finding's uuid"}},
                "required": ["id"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let id = finding_id(required_str(input, "id")?)?;
        match ctx.bus.get_finding(&id).await.map_err(bus_error)? {
            Some(f) => Ok(render_finding(
                &f,
                ctx.workspace.limits().max_output_bytes / 2,
            )),
            None => Err(ToolError::NotFound {
                path: format!("finding {id}"),
            }),
        }
    }
}

/// `search_findings`: findings whose title or body contains words, by tag
/// or session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchFindings;

#[async_trait]
impl Tool for SearchFindings {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "search_findings",
            "Search the swarm's findings: text contained in title or body (case-insensitive), \
             optionally only a tag or this session's. Newest first.",
            json!({
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "tag": {"type": "string"},
                    "this_session": {"type": "boolean"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50}
                }
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let text = str_field(input, "text")?.map(str::to_lowercase);
        let limit = u64_field(input, "limit")?.unwrap_or(10).clamp(1, 50) as usize;
        let mut filter = FindingFilter::all();
        if let Some(tag) = str_field(input, "tag")? {
            filter = filter.tag(tag);
        }
        if super::bool_field(input, "this_session")? {
            filter = filter.session(ctx.task.session.clone());
        }
        let listing = ctx.bus.list_findings(&filter).await.map_err(bus_error)?;
        let mut hits: Vec<&Finding> = listing
            .findings
            .iter()
            .filter(|f| {
                text.as_deref().is_none_or(|t| {
                    f.title.to_lowercase().contains(t) || f.body.to_lowercase().contains(t)
                })
            })
            .collect();
        hits.sort_by_key(|f| std::cmp::Reverse(f.created_at));
        if hits.is_empty() {
            return Ok("no findings match".into());
        }
        Ok(hits
            .iter()
            .take(limit)
            .map(|f| render_finding(f, 400))
            .collect::<Vec<_>>()
            .join("\n\n"))
    }
}

/// `ask_librarian`: a question over the archive, answered by a librarian
/// daemon through the bus's archive desk, with citations.
#[derive(Debug, Clone, Copy, Default)]
pub struct AskLibrarian;

#[async_trait]
impl Tool for AskLibrarian {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "ask_librarian",
            "Ask the librarian a question over every finding of the swarm (also past sessions). \
             The answer cites finding ids.",
            json!({
                "type": "object",
                "properties": {
                    "question": {"type": "string"},
                    "tag": {"type": "string"}
                },
                "required": ["question"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let question = required_str(input, "question")?;
        let mut filter = FindingFilter::all();
        if let Some(tag) = str_field(input, "tag")? {
            filter = filter.tag(tag);
        }
        let query = ArchiveQuery::new(question, filter).asked_by(ctx.worker.to_string());
        let r = match ask(&*ctx.bus, &query, ctx.librarian_wait).await {
            Ok(r) => r,
            Err(AskError::Bus { source, .. }) => return Err(bus_error(source)),
            Err(_) => {
                return Err(ToolError::Timeout {
                    after: ctx.librarian_wait,
                });
            }
        };
        match r.status {
            ResponseStatus::Ok => {
                let cites: Vec<String> = r.citations.iter().map(ToString::to_string).collect();
                Ok(format!(
                    "{}\n\ncitations: {}",
                    r.answer.unwrap_or_default(),
                    if cites.is_empty() {
                        "-".into()
                    } else {
                        cites.join(", ")
                    }
                ))
            }
            _ => Err(ToolError::Failed {
                message: r.error.map_or_else(
                    || "the librarian failed".to_owned(),
                    |e| format!("librarian {}: {}", e.kind, e.message),
                ),
            }),
        }
    }
}

/// `write_finding`: shares an intermediate result with the swarm as a
/// finding of this task's session (the task's final finding is written by
/// the worker when the task ends).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteFinding;

#[async_trait]
impl Tool for WriteFinding {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "write_finding",
            "Share an intermediate result with the swarm as a finding. Your final answer \
             becomes the task's finding by itself; use this only for extra results.",
            json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "body": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["title", "body"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let title = required_str(input, "title")?;
        let body = required_str(input, "body")?;
        let tags = super::command::string_list(input, "tags")?;
        let finding = Finding::new(ctx.worker.clone(), ctx.task.session.clone(), title, body)
            .with_task(ctx.task.id)
            .with_tags(tags);
        finding.validate().map_err(|e| ToolError::InvalidInput {
            reason: e.to_string(),
        })?;
        ctx.bus.put_finding(&finding).await.map_err(bus_error)?;
        let id = finding.id.clone();
        ctx.note_written(id.clone());
        Ok(format!("stored finding {id}"))
    }
}
