//! [`ScriptedModel`]: a local [`LanguageModel`] for offline runs and tests.
//! It answers from a script (one completion per call, in order), then from
//! a responder function of the request; it keeps every request it got, so a
//! test can check what was sent (tools, cache marks, tool results).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::llm::{
    Completion, CompletionRequest, ContentBlock, LanguageModel, Role, StopReason, Usage,
};

type Responder = dyn Fn(&CompletionRequest) -> Result<Completion> + Send + Sync;

/// A scripted local model.
#[derive(Clone)]
pub struct ScriptedModel {
    id: String,
    script: Arc<Mutex<VecDeque<Result<Completion>>>>,
    responder: Option<Arc<Responder>>,
    requests: Arc<Mutex<Vec<CompletionRequest>>>,
    served: Arc<Mutex<Usage>>,
    delay: Option<Duration>,
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedModel")
            .field("id", &self.id)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

impl ScriptedModel {
    /// A model named `id` with an empty script.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            script: Arc::default(),
            responder: None,
            requests: Arc::default(),
            served: Arc::default(),
            delay: None,
        }
    }

    /// Answers with `f(request)` once the script is used up.
    pub fn responding(
        mut self,
        f: impl Fn(&CompletionRequest) -> Result<Completion> + Send + Sync + 'static,
    ) -> Self {
        self.responder = Some(Arc::new(f));
        self
    }

    /// Waits this long before every answer (a model's latency).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// Adds a completion to the script.
    pub fn then(self, completion: Completion) -> Self {
        if let Ok(mut s) = self.script.lock() {
            s.push_back(Ok(completion));
        }
        self
    }

    /// Adds a failure to the script.
    pub fn then_fail(self, error: Error) -> Self {
        if let Ok(mut s) = self.script.lock() {
            s.push_back(Err(error));
        }
        self
    }

    /// Adds a final text answer (`end_turn`).
    pub fn then_text(self, text: &str, usage: Usage) -> Self {
        let c = self.text(text, usage);
        self.then(c)
    }

    /// Adds one tool call (`tool_use`).
    pub fn then_tool(self, id: &str, name: &str, input: Value, usage: Usage) -> Self {
        let c = self.tool_use(id, name, input, usage);
        self.then(c)
    }

    /// A final text answer of this model.
    pub fn text(&self, text: &str, usage: Usage) -> Completion {
        Completion::new(text, &self.id, usage)
    }

    /// A tool call of this model.
    pub fn tool_use(&self, id: &str, name: &str, input: Value, usage: Usage) -> Completion {
        Completion::from_blocks(
            vec![ContentBlock::ToolUse {
                id: id.to_owned(),
                name: name.to_owned(),
                input,
            }],
            &self.id,
            usage,
        )
        .stop_reason(StopReason::ToolUse)
    }

    /// The sum of the usage of every completion it returned.
    pub fn usage_served(&self) -> Usage {
        self.served.lock().map(|u| *u).unwrap_or_default()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<CompletionRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// An offline worker: on a task it lists the workspace (depth 2) with
    /// the `list_files` tool, then answers with what the tool returned. Used
    /// where no API key is set; the answer says it was scripted.
    pub fn offline_worker(id: impl Into<String>) -> Self {
        let id = id.into();
        let model = id.clone();
        Self::new(id).responding(move |req| {
            let last = req.messages.last();
            let results: Vec<String> = last
                .filter(|m| m.role == Role::User)
                .map(|m| {
                    m.content
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::ToolResult { content, .. } => Some(content.clone()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let usage = Usage::new(0, 0);
            if results.is_empty() {
                Ok(Completion::from_blocks(
                    vec![ContentBlock::ToolUse {
                        id: "toolu_offline_1".into(),
                        name: "list_files".into(),
                        input: json!({"max_depth": 2}),
                    }],
                    &model,
                    usage,
                )
                .stop_reason(StopReason::ToolUse))
            } else {
                let body = results.join("\n");
                let n = body.lines().count();
                Ok(Completion::new(
                    format!("{n} workspace entries listed (scripted offline model)\n{body}"),
                    &model,
                    usage,
                ))
            }
        })
    }
}

#[async_trait]
impl LanguageModel for ScriptedModel {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn provider_name(&self) -> &str {
        "scripted"
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
        // Kept on arrival, so a test sees calls in flight.
        if let Ok(mut r) = self.requests.lock() {
            r.push(request.clone());
        }
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let next = self.script.lock().ok().and_then(|mut s| s.pop_front());
        let answer = match next {
            Some(a) => a,
            None => match &self.responder {
                Some(f) => f(&request),
                None => Err(Error::InvalidInput {
                    field: "script",
                    reason: format!("the scripted model {} has no answer left", self.id),
                }),
            },
        };
        if let (Ok(c), Ok(mut served)) = (&answer, self.served.lock()) {
            *served += c.usage;
        }
        answer
    }
}
