//! Core's provider-neutral request and completion ↔ Gemini's wire format.
//!
//! Requests ([`to_gemini`]):
//!
//! | core | Gemini |
//! |---|---|
//! | `system` | `systemInstruction` |
//! | `Role::User` / `Role::Assistant` | `user` / `model` contents |
//! | `Text` | a text part |
//! | `Thinking { thinking, signature }` | a `thought: true` part with its `thoughtSignature` |
//! | `Thinking` with empty text and a signature | the signature on the NEXT part (how Gemini sends a signature on a `functionCall`) |
//! | `ToolUse { id, name, input }` | `functionCall { name, args, id }` (`id` only when Gemini gave one) |
//! | `ToolResult { tool_use_id, content, is_error }` | `functionResponse { name, response: {"output" or "error": content}, id }`, the name taken from the call it answers |
//! | `tools` | `tools: [{"functionDeclarations": [{name, description, parametersJsonSchema}]}]` |
//! | `tool_choice` | `toolConfig.functionCallingConfig` (`AUTO`, `ANY`, `NONE`, `ANY` + `allowedFunctionNames`) |
//! | `json_schema` | `responseMimeType: application/json` + `responseJsonSchema` |
//! | `max_output_tokens`, `stop_sequences`, `temperature` | `generationConfig` |
//! | `thinking: Enabled { budget_tokens }` / `Adaptive` / `Disabled` | `thinkingConfig { thinkingBudget: n / -1 / 0 }`, thought summaries asked for when thinking is on |
//! | `effort` (when no budget is given) | `thinkingConfig.thinkingLevel` |
//!
//! Cache breakpoints have no Gemini counterpart (Gemini caches implicitly)
//! and `RedactedThinking` blocks are Anthropic's: both are left out.
//!
//! Responses (`Generation::into_completion`): a `thought: true` part is a
//! [`ContentBlock::Thinking`] (never text); a `thoughtSignature` on any
//! other part comes as an empty `Thinking` block carrying the signature,
//! just before that part's block, so sending the completion back as the
//! next turn returns the signature where Gemini put it; a `functionCall` is
//! a [`ContentBlock::ToolUse`] (Gemini often gives no call id: one is made
//! up, `gemini-call-<n>-<name>`, and never sent back as an id); any other
//! part (code execution, inline data …) is a [`ContentBlock::Other`] of
//! kind `gemini.<field>` holding the part, which is sent back unchanged.

use std::collections::HashMap;

use serde_json::{Value, json};
use swarmbus_core::llm::{
    CompletionRequest, ContentBlock, Message, Role, StopReason, Thinking, ToolChoice, ToolSpec,
};

use crate::wire::{
    Content, FinishReason, GenerateContentRequest, GenerationConfig, Part, ThinkingConfig,
};

/// The prefix of call ids made up for `functionCall`s that came without one.
pub const SYNTHETIC_CALL_ID_PREFIX: &str = "gemini-call-";

fn is_synthetic(id: &str) -> bool {
    id.starts_with(SYNTHETIC_CALL_ID_PREFIX)
}

/// The Gemini request for `request` (see the module's table).
pub fn to_gemini(request: &CompletionRequest) -> GenerateContentRequest {
    let mut out = GenerateContentRequest {
        contents: encode_messages(&request.messages),
        ..GenerateContentRequest::default()
    };
    if let Some(system) = &request.system {
        out = out.system(system.clone());
    }
    if !request.tools.is_empty() {
        let decls: Vec<Value> = request.tools.iter().map(declaration).collect();
        out.tools.push(json!({ "functionDeclarations": decls }));
    }
    if let Some(choice) = &request.tool_choice {
        out.tool_config = tool_config(choice);
    }
    let mut config = match &request.json_schema {
        Some(schema) => GenerationConfig::json_schema(schema.clone()),
        None => GenerationConfig::default(),
    };
    config.max_output_tokens = request.max_output_tokens;
    config.temperature = request.temperature;
    config.stop_sequences = request.stop_sequences.clone();
    config.thinking_config = thinking_config(request);
    if config != GenerationConfig::default() {
        out.generation_config = Some(config);
    }
    out
}

fn declaration(tool: &ToolSpec) -> Value {
    json!({
        "name": tool.name,
        "description": tool.description,
        "parametersJsonSchema": tool.input_schema,
    })
}

fn tool_config(choice: &ToolChoice) -> Option<Value> {
    let config = match choice {
        ToolChoice::Auto => json!({"mode": "AUTO"}),
        ToolChoice::Any => json!({"mode": "ANY"}),
        ToolChoice::None => json!({"mode": "NONE"}),
        ToolChoice::Tool { name } => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        _ => return None,
    };
    Some(json!({ "functionCallingConfig": config }))
}

fn thinking_config(request: &CompletionRequest) -> Option<ThinkingConfig> {
    let mut config = ThinkingConfig::default();
    match request.thinking {
        Some(Thinking::Enabled { budget_tokens }) => {
            config.thinking_budget = Some(i32::try_from(budget_tokens).unwrap_or(i32::MAX));
            config.include_thoughts = Some(true);
        }
        Some(Thinking::Adaptive) => {
            config.thinking_budget = Some(-1);
            config.include_thoughts = Some(true);
        }
        Some(Thinking::Disabled) => config.thinking_budget = Some(0),
        _ => {}
    }
    // Gemini refuses a budget and a level together: the budget wins.
    if config.thinking_budget.is_none()
        && let Some(effort) = &request.effort
    {
        config.thinking_level = Some(effort.as_str().to_owned());
    }
    (config != ThinkingConfig::default()).then_some(config)
}

/// `args` must be a JSON object.
fn args_object(input: &Value) -> Value {
    match input {
        Value::Object(_) => input.clone(),
        Value::Null => json!({}),
        other => json!({ "input": other }),
    }
}

fn encode_messages(messages: &[Message]) -> Vec<Content> {
    // Tool call id → function name, the latest call winning (made-up ids
    // repeat across turns).
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let mut parts: Vec<Part> = Vec::with_capacity(message.content.len());
        let mut pending_signature: Option<String> = None;
        for block in &message.content {
            let mut part = match block {
                ContentBlock::Text { text } => Part::text(text.clone()),
                ContentBlock::Thinking {
                    thinking,
                    signature,
                } => {
                    if thinking.is_empty() {
                        if signature.is_some() {
                            pending_signature.clone_from(signature);
                        }
                        continue;
                    }
                    Part {
                        text: Some(thinking.clone()),
                        thought: Some(true),
                        thought_signature: signature.clone(),
                        ..Part::default()
                    }
                }
                ContentBlock::ToolUse { id, name, input } => {
                    names.insert(id.clone(), name.clone());
                    let mut call = json!({"name": name, "args": args_object(input)});
                    if !is_synthetic(id) {
                        call["id"] = json!(id);
                    }
                    Part {
                        function_call: Some(call),
                        ..Part::default()
                    }
                }
                ContentBlock::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => {
                    let name = names
                        .get(tool_use_id)
                        .cloned()
                        .unwrap_or_else(|| tool_use_id.clone());
                    let key = if *is_error { "error" } else { "output" };
                    let mut response = json!({"name": name, "response": {key: content}});
                    if !is_synthetic(tool_use_id) {
                        response["id"] = json!(tool_use_id);
                    }
                    Part {
                        function_response: Some(response),
                        ..Part::default()
                    }
                }
                ContentBlock::Other { kind, raw } if kind.starts_with("gemini.") => {
                    match serde_json::from_value::<Part>(raw.clone()) {
                        Ok(p) => p,
                        Err(_) => continue,
                    }
                }
                // Anthropic's redacted thinking, other providers' blocks.
                _ => continue,
            };
            if let Some(sig) = pending_signature.take()
                && part.thought_signature.is_none()
            {
                part.thought_signature = Some(sig);
            }
            parts.push(part);
        }
        if let Some(sig) = pending_signature.take() {
            parts.push(Part {
                text: Some(String::new()),
                thought_signature: Some(sig),
                ..Part::default()
            });
        }
        if !parts.is_empty() {
            out.push(Content {
                role: Some(role.to_owned()),
                parts: Some(parts),
            });
        }
    }
    out
}

/// Appends `block`, merging consecutive text (and consecutive unsigned
/// thinking) so a streamed answer reads as one block per kind.
pub(crate) fn push_block(blocks: &mut Vec<ContentBlock>, block: ContentBlock) {
    match (blocks.last_mut(), block) {
        (Some(ContentBlock::Text { text }), ContentBlock::Text { text: more }) => {
            text.push_str(&more);
        }
        (
            Some(ContentBlock::Thinking {
                thinking,
                signature: slot,
            }),
            ContentBlock::Thinking {
                thinking: more,
                signature,
            },
        ) if slot.is_none() && !thinking.is_empty() && !more.is_empty() => {
            thinking.push_str(&more);
            *slot = signature;
        }
        (_, block) => blocks.push(block),
    }
}

/// The blocks of a candidate's parts (see the module docs). `calls` counts
/// the calls seen so far in this answer, for made-up call ids.
pub(crate) fn blocks_from_parts(parts: &[Part], calls: &mut usize, out: &mut Vec<ContentBlock>) {
    for part in parts {
        if part.is_thought() {
            push_block(
                out,
                ContentBlock::Thinking {
                    thinking: part.text.clone().unwrap_or_default(),
                    signature: part.thought_signature.clone(),
                },
            );
            continue;
        }
        if let Some(sig) = &part.thought_signature {
            out.push(ContentBlock::Thinking {
                thinking: String::new(),
                signature: Some(sig.clone()),
            });
        }
        if let Some(call) = &part.function_call {
            let name = call
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let id = match call.get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => format!("{SYNTHETIC_CALL_ID_PREFIX}{calls}-{name}"),
            };
            *calls = calls.saturating_add(1);
            let input = call.get("args").cloned().unwrap_or_else(|| json!({}));
            out.push(ContentBlock::ToolUse { id, name, input });
        } else if let Some(text) = &part.text {
            if !text.is_empty() {
                push_block(out, ContentBlock::text(text.clone()));
            }
        } else if let Ok(raw) = serde_json::to_value(part) {
            let field = raw
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "thoughtSignature").cloned())
                .unwrap_or_else(|| "part".into());
            out.push(ContentBlock::Other {
                kind: format!("gemini.{field}"),
                raw,
            });
        }
    }
}

/// The provider-neutral stop reason: `STOP` with a function call is
/// [`StopReason::ToolUse`] (Gemini says `STOP` when it asks for a tool).
pub(crate) fn stop_reason(finish: Option<&FinishReason>, blocks: &[ContentBlock]) -> StopReason {
    let calls = blocks
        .iter()
        .any(|b| matches!(b, ContentBlock::ToolUse { .. }));
    match finish {
        Some(FinishReason::Stop) | None if calls => StopReason::ToolUse,
        Some(r) => r.stop_reason(),
        None => StopReason::EndTurn,
    }
}

/// The provider-neutral request a Gemini request stands for: the inverse
/// of [`to_gemini`] for what core can say (a `functionResponse` without an
/// id answers the latest call of that name).
pub fn from_gemini(request: &GenerateContentRequest) -> CompletionRequest {
    let mut messages = Vec::with_capacity(request.contents.len());
    let mut calls = 0usize;
    let mut last_call: HashMap<String, String> = HashMap::new();
    for content in &request.contents {
        let role = match content.role.as_deref() {
            Some("model") => Role::Assistant,
            _ => Role::User,
        };
        let mut blocks = Vec::new();
        for part in content.parts.iter().flatten() {
            if let Some(response) = &part.function_response {
                let name = response
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let id = response
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| last_call.get(name).cloned())
                    .unwrap_or_else(|| name.to_owned());
                let body = response.get("response").cloned().unwrap_or(Value::Null);
                let (content, is_error) = match (body.get("error"), body.get("output")) {
                    (Some(e), _) => (value_text(e), true),
                    (None, Some(o)) => (value_text(o), false),
                    (None, None) => (value_text(&body), false),
                };
                blocks.push(ContentBlock::ToolResult {
                    tool_use_id: id,
                    content,
                    is_error,
                });
                continue;
            }
            let before = blocks.len();
            blocks_from_parts(std::slice::from_ref(part), &mut calls, &mut blocks);
            for b in &blocks[before..] {
                if let ContentBlock::ToolUse { id, name, .. } = b {
                    last_call.insert(name.clone(), id.clone());
                }
            }
        }
        messages.push(Message::new(role, blocks));
    }
    let mut out = CompletionRequest::from_messages(messages);
    if let Some(system) = &request.system_instruction {
        let text = system.text();
        if !text.is_empty() {
            out = out.system(text);
        }
    }
    if let Some(config) = &request.generation_config {
        out.max_output_tokens = config.max_output_tokens;
        out.temperature = config.temperature;
        out.stop_sequences = config.stop_sequences.clone();
        out.json_schema = config
            .response_json_schema
            .clone()
            .or_else(|| config.response_schema.clone())
            .or_else(|| {
                (config.response_mime_type.as_deref() == Some("application/json"))
                    .then(|| json!({"type": "object"}))
            });
        if let Some(t) = &config.thinking_config {
            out.thinking = match t.thinking_budget {
                Some(0) => Some(Thinking::Disabled),
                Some(n) if n < 0 => Some(Thinking::Adaptive),
                Some(n) => Some(Thinking::Enabled {
                    budget_tokens: u32::try_from(n).unwrap_or(0),
                }),
                None => None,
            };
        }
    }
    out.tools = request
        .tools
        .iter()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .map(|d| {
            let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
            ToolSpec::new(
                s("name"),
                s("description"),
                d.get("parametersJsonSchema")
                    .or_else(|| d.get("parameters"))
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
            )
        })
        .collect();
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmbus_core::llm::Effort;

    #[test]
    fn a_tool_conversation_maps_to_function_calls_and_responses() {
        let request = CompletionRequest::from_messages(vec![
            Message::user("What time is it?"),
            Message::new(
                Role::Assistant,
                vec![
                    ContentBlock::Thinking {
                        thinking: "I need the clock.".into(),
                        signature: None,
                    },
                    ContentBlock::Thinking {
                        thinking: String::new(),
                        signature: Some("sig-1".into()),
                    },
                    ContentBlock::ToolUse {
                        id: format!("{SYNTHETIC_CALL_ID_PREFIX}0-now"),
                        name: "now".into(),
                        input: json!({}),
                    },
                ],
            ),
            Message::new(
                Role::User,
                vec![ContentBlock::tool_result(
                    format!("{SYNTHETIC_CALL_ID_PREFIX}0-now"),
                    "12:00",
                )],
            ),
        ])
        .system("be brief")
        .tools(vec![ToolSpec::new(
            "now",
            "The time",
            json!({"type": "object"}),
        )])
        .tool_choice(ToolChoice::Tool { name: "now".into() })
        .max_output_tokens(100)
        .stop_sequences(vec!["END".into()])
        .thinking(Thinking::Enabled { budget_tokens: 64 });
        let v = serde_json::to_value(to_gemini(&request)).unwrap();
        assert_eq!(v["systemInstruction"]["parts"][0]["text"], "be brief");
        assert_eq!(v["contents"][1]["role"], "model");
        assert_eq!(v["contents"][1]["parts"][0]["thought"], true);
        let call = &v["contents"][1]["parts"][1];
        assert_eq!(call["functionCall"]["name"], "now");
        assert!(call["functionCall"].get("id").is_none(), "made-up id sent");
        assert_eq!(call["thoughtSignature"], "sig-1");
        let resp = &v["contents"][2]["parts"][0]["functionResponse"];
        assert_eq!(resp["name"], "now");
        assert_eq!(resp["response"]["output"], "12:00");
        assert_eq!(
            v["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["type"],
            "object"
        );
        assert_eq!(
            v["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"][0],
            "now"
        );
        let g = &v["generationConfig"];
        assert_eq!(g["maxOutputTokens"], 100);
        assert_eq!(g["stopSequences"][0], "END");
        assert_eq!(g["thinkingConfig"]["thinkingBudget"], 64);
        assert_eq!(g["thinkingConfig"]["includeThoughts"], true);

        // And back: the fallback sees the same conversation.
        let back = from_gemini(&to_gemini(&request));
        assert_eq!(back.system.as_deref(), Some("be brief"));
        assert_eq!(back.tools.len(), 1);
        assert_eq!(back.messages[1].role, Role::Assistant);
        let ContentBlock::ToolResult { tool_use_id, .. } = &back.messages[2].content[0] else {
            panic!("{:?}", back.messages[2]);
        };
        let ContentBlock::ToolUse { id, .. } = &back.messages[1].content[2] else {
            panic!("{:?}", back.messages[1]);
        };
        assert_eq!(tool_use_id, id);
    }

    #[test]
    fn effort_is_a_thinking_level_only_without_a_budget() {
        let r = CompletionRequest::new("x").effort(Effort::Low);
        let v = serde_json::to_value(to_gemini(&r)).unwrap();
        assert_eq!(
            v["generationConfig"]["thinkingConfig"]["thinkingLevel"],
            "low"
        );
        let r = r.thinking(Thinking::Disabled);
        let v = serde_json::to_value(to_gemini(&r)).unwrap();
        assert_eq!(v["generationConfig"]["thinkingConfig"]["thinkingBudget"], 0);
        assert!(
            v["generationConfig"]["thinkingConfig"]
                .get("thinkingLevel")
                .is_none()
        );
    }

    #[test]
    fn thought_parts_are_thinking_and_signatures_ride_before_their_part() {
        let parts: Vec<Part> = serde_json::from_value(json!([
            {"text": "hmm", "thought": true},
            {"functionCall": {"name": "now", "args": {}}, "thoughtSignature": "S"},
            {"text": "a"}, {"text": "b"},
            {"executableCode": {"language": "PYTHON", "code": "1"}}
        ]))
        .unwrap();
        let mut blocks = Vec::new();
        blocks_from_parts(&parts, &mut 0, &mut blocks);
        assert!(matches!(&blocks[0], ContentBlock::Thinking { thinking, .. } if thinking == "hmm"));
        assert!(
            matches!(&blocks[1], ContentBlock::Thinking { thinking, signature: Some(s) } if thinking.is_empty() && s == "S")
        );
        assert!(matches!(&blocks[2], ContentBlock::ToolUse { name, .. } if name == "now"));
        assert!(matches!(&blocks[3], ContentBlock::Text { text } if text == "ab"));
        assert!(
            matches!(&blocks[4], ContentBlock::Other { kind, .. } if kind == "gemini.executableCode")
        );
        assert_eq!(
            stop_reason(Some(&FinishReason::Stop), &blocks),
            StopReason::ToolUse
        );
    }
}
