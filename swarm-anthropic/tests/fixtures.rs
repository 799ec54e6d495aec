//! Every recorded exchange of `tests/fixtures/` (119 real `/v1/messages`
//! interactions and 11 documented error shapes, see SOURCES.md) replayed
//! through a local mock: the request the client sends is the recorded one
//! (minus the sampling parameters API version 2026-10-21 removed), and the
//! answer decodes to what the recorded body says. Each failure names its
//! file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use swarmbus_anthropic::wire::REMOVED_SAMPLING_PARAMETERS;
use swarmbus_anthropic::{ContentBlock, MessagesRequest, MessagesResponse, StopReason};
use swarmbus_core::ModelErrorKind;
use wiremock::MockServer;

use common::*;

fn all_fixtures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [fixtures_dir(), fixtures_dir().join("errors")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// What a recorded SSE body says: text, stop reason, last usage, blocks.
struct StreamFacts {
    text: String,
    thinking: String,
    stop_reason: Option<String>,
    output_tokens: Option<u64>,
    input_tokens: Option<u64>,
    blocks: usize,
}

fn stream_facts(sse: &str) -> StreamFacts {
    let mut f = StreamFacts {
        text: String::new(),
        thinking: String::new(),
        stop_reason: None,
        output_tokens: None,
        input_tokens: None,
        blocks: 0,
    };
    for line in sse.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let v: Value = serde_json::from_str(data.trim()).unwrap();
        match v["type"].as_str().unwrap_or("") {
            "message_start" => {
                f.input_tokens = v["message"]["usage"]["input_tokens"].as_u64();
                f.output_tokens = v["message"]["usage"]["output_tokens"].as_u64();
            }
            "content_block_start" => f.blocks += 1,
            "content_block_delta" => match v["delta"]["type"].as_str() {
                Some("text_delta") => f.text.push_str(v["delta"]["text"].as_str().unwrap()),
                Some("thinking_delta") => f
                    .thinking
                    .push_str(v["delta"]["thinking"].as_str().unwrap()),
                _ => {}
            },
            "message_delta" => {
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    f.stop_reason = Some(r.to_owned());
                }
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    f.output_tokens = Some(n);
                }
                if let Some(n) = v["usage"]["input_tokens"].as_u64() {
                    f.input_tokens = Some(n);
                }
            }
            _ => {}
        }
    }
    f
}

/// The usage buckets the recorded JSON says, computed independently.
fn expected_buckets(u: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let (w5, w1) = match u.get("cache_creation") {
        Some(c) if c.is_object() => (
            c["ephemeral_5m_input_tokens"].as_u64().unwrap_or(0),
            c["ephemeral_1h_input_tokens"].as_u64().unwrap_or(0),
        ),
        _ => (n("cache_creation_input_tokens"), 0),
    };
    (
        n("input_tokens"),
        n("output_tokens"),
        n("cache_read_input_tokens"),
        w5,
        w1,
    )
}

fn check_body(fx: &Value, r: &MessagesResponse) -> Result<(), String> {
    let body = &fx["body"];
    let content = body["content"].as_array().ok_or("no content")?;
    // Every block round-trips exactly (unknown types kept whole).
    let ours = serde_json::to_value(&r.content).map_err(|e| e.to_string())?;
    if ours != Value::Array(content.clone()) {
        return Err("content does not round-trip".into());
    }
    let text: String = content
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap_or(""))
        .collect();
    if r.text() != text {
        return Err(format!("text {:?} != {:?}", r.text(), text));
    }
    let tool_uses = content.iter().filter(|b| b["type"] == "tool_use").count();
    if r.tool_calls().len() != tool_uses {
        return Err("tool calls".into());
    }
    if r.stop().as_str() != body["stop_reason"].as_str().unwrap_or("") {
        return Err(format!("stop reason {}", r.stop()));
    }
    if r.model != body["model"].as_str().unwrap_or("") {
        return Err("model".into());
    }
    let u = r.usage();
    let got = (
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
    );
    let want = expected_buckets(&body["usage"]);
    if got != want {
        return Err(format!("usage {got:?} != {want:?}"));
    }
    let servers: u64 = body["usage"]["server_tool_use"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    if r.usage.server_tool_requests().values().sum::<u64>() != servers {
        return Err("server tool requests".into());
    }
    Ok(())
}

fn check_stream(fx: &Value, r: &MessagesResponse) -> Result<(), String> {
    let f = stream_facts(fx["sse"].as_str().unwrap_or(""));
    if r.text() != f.text {
        return Err(format!("text {:?} != {:?}", r.text(), f.text));
    }
    if r.thinking().replace("\n\n", "") != f.thinking.replace("\n\n", "") {
        return Err("thinking".into());
    }
    if r.content.len() != f.blocks {
        return Err(format!("{} blocks != {}", r.content.len(), f.blocks));
    }
    if Some(r.stop().as_str()) != f.stop_reason.as_deref() {
        return Err(format!("stop reason {}", r.stop()));
    }
    let u = r.usage();
    if Some(u.output_tokens) != f.output_tokens || Some(u.input_tokens) != f.input_tokens {
        return Err(format!(
            "usage in {}/{} out, want {:?}/{:?}",
            u.input_tokens, u.output_tokens, f.input_tokens, f.output_tokens
        ));
    }
    // Tool calls carry their parsed input, never the raw fragments.
    for b in &r.content {
        if let ContentBlock::ToolUse(t) = b
            && !t.input.is_object()
        {
            return Err(format!("tool {} input is not an object", t.name));
        }
    }
    Ok(())
}

fn expected_error(name: &str) -> Option<ModelErrorKind> {
    Some(match name {
        "api_error_500.json" => ModelErrorKind::ServerError,
        "authentication_401.json" => ModelErrorKind::Unauthenticated,
        "billing_402.json" => ModelErrorKind::Billing,
        "invalid_request_400.json" => ModelErrorKind::InvalidRequest,
        "not_found_404.json" => ModelErrorKind::NotFound,
        "overloaded_529.json" => ModelErrorKind::Overloaded,
        "permission_403.json" => ModelErrorKind::PermissionDenied,
        "rate_limit_429_retry_after.json" => ModelErrorKind::RateLimited,
        "rate_limit_429_spend_limit.json" => ModelErrorKind::SpendLimit,
        "request_too_large_413.json" => ModelErrorKind::RequestTooLarge,
        "stream_error_overloaded.json" => ModelErrorKind::Overloaded,
        "test_anthropic_explicit_effort_xhigh_unsupported_model_errors.json" => {
            ModelErrorKind::InvalidRequest
        }
        _ => return None,
    })
}

async fn replay(server: &MockServer, file: &Path) -> Result<(), String> {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let fx = load(file);
    server.reset().await;
    mount(server, response_of(&fx)).await;
    let streaming = fx.get("sse").is_some();
    let recorded = fx.get("request").cloned();
    let request: MessagesRequest = match &recorded {
        Some(r) => serde_json::from_value(r.clone()).map_err(|e| format!("request: {e}"))?,
        None => MessagesRequest::new("claude-haiku-4-5", 64, "hello"),
    };
    let client = client(&server.uri());
    let result = if streaming {
        client.stream_collect(&request).await
    } else {
        client.create_message(&request).await
    };
    // The request on the wire is the recorded one, minus removed parameters.
    let sent = sent_bodies(server).await;
    let [sent] = sent.as_slice() else {
        return Err(format!("{} requests sent", sent.len()));
    };
    if let Some(mut want) = recorded {
        let obj = want.as_object_mut().unwrap();
        for p in REMOVED_SAMPLING_PARAMETERS {
            obj.remove(p);
        }
        obj.insert("stream".into(), Value::Bool(streaming));
        if sent != &want {
            return Err(format!(
                "sent request differs from the recorded one:\n sent {sent}\n want {want}"
            ));
        }
    }
    match (expected_error(&name), result) {
        (Some(kind), Err(e)) if e.kind() == kind => Ok(()),
        (Some(kind), other) => Err(format!("want error {kind}, got {other:?}")),
        (None, Err(e)) => Err(format!("unexpected error {e}")),
        (None, Ok(r)) if streaming => check_stream(&fx, &r),
        (None, Ok(r)) => check_body(&fx, &r),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_recorded_exchange_replays() {
    let files = all_fixtures();
    assert_eq!(files.len(), 130, "119 exchanges + 11 documented errors");
    let server = MockServer::start().await;
    let mut failures = Vec::new();
    for file in &files {
        if let Err(e) = replay(&server, file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_stop_reason_of_the_recordings_is_known() {
    for file in all_fixtures() {
        let fx = load(&file);
        if let Some(r) = fx["body"]["stop_reason"].as_str() {
            assert!(
                !matches!(StopReason::parse(r), StopReason::Other(_)),
                "{}: {r}",
                file.display()
            );
        }
    }
}
