//! The parsers on what Claude Code 2.1.332 itself wrote (see
//! fixtures/SOURCES.md): every call once, with the mock's exact usage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use serde_json::Value;
use swarmbus_claude_code::{CallUsage, HookPayload, Source, Usage, otlp, transcript};

const COORD: &str = include_str!("fixtures/coordinator_A.jsonl");
const AGENT: &str = include_str!("fixtures/agent_A.jsonl");
const META: &str = include_str!("fixtures/agent_A.meta.json");
const RESPONSES: &str = include_str!("fixtures/responses.jsonl");

/// (request id, role, model, usage) of the mock's answers.
fn mock() -> Vec<(String, String, String, Usage)> {
    RESPONSES
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let u = &v["usage"];
            let n = |k: &str| u[k].as_u64().unwrap();
            let usage = Usage::new(n("input_tokens"), n("output_tokens"))
                .with_cache_read(n("cache_read_input_tokens"))
                .with_cache_write(
                    u["cache_creation"]["ephemeral_5m_input_tokens"]
                        .as_u64()
                        .unwrap(),
                    u["cache_creation"]["ephemeral_1h_input_tokens"]
                        .as_u64()
                        .unwrap(),
                );
            (
                v["request_id"].as_str().unwrap().to_owned(),
                v["role"].as_str().unwrap().to_owned(),
                v["model"].as_str().unwrap().to_owned(),
                usage,
            )
        })
        .collect()
}

fn check_against_mock(calls: &[CallUsage], requests: std::ops::RangeInclusive<usize>) {
    let mock = mock();
    let want: Vec<_> = mock
        .iter()
        .filter(|(id, ..)| {
            let n: usize = id.trim_start_matches("req_mock_").parse().unwrap();
            requests.contains(&n)
        })
        .collect();
    assert_eq!(calls.len(), want.len(), "{calls:#?}");
    for (id, role, model, usage) in want {
        let c = calls
            .iter()
            .find(|c| c.request_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(&c.model, model, "{id}");
        assert_eq!(&c.usage, usage, "{id}");
        assert_eq!(c.is_subagent(), role == "subagent", "{id}");
    }
}

#[test]
fn the_coordinator_transcript_gives_each_call_once_though_blocks_repeat_the_usage() {
    let t = transcript::parse(COORD, None);
    assert!(t.skipped.is_empty(), "{:?}", t.skipped);
    // The first answer had text + tool_use: two entries, one call.
    assert_eq!(t.repeated, 1);
    assert!(t.calls.iter().all(|c| c.source == Source::Transcript));
    assert!(t.calls.iter().all(|c| c.agent_id.is_none()));
    assert!(
        t.calls
            .iter()
            .all(|c| c.session.as_deref() == Some("8170940d-e053-491d-9284-1988c8ae3842"))
    );
    let coordinator: Vec<_> = [1usize, 5, 6, 7].into_iter().collect();
    let mock = mock();
    assert_eq!(t.calls.len(), coordinator.len());
    for n in coordinator {
        let (id, _, model, usage) = &mock[n - 1];
        let c = t
            .calls
            .iter()
            .find(|c| c.request_id.as_deref() == Some(id))
            .unwrap();
        assert_eq!((&c.model, &c.usage), (model, usage));
    }
    // Read twice (two hooks): the same keys, so a booker keyed on them books once.
    let again = transcript::parse(COORD, None);
    let keys: Vec<_> = t.calls.iter().map(CallUsage::dedup_key).collect();
    let keys2: Vec<_> = again.calls.iter().map(CallUsage::dedup_key).collect();
    assert_eq!(keys, keys2);
    assert!(
        keys.iter()
            .all(|k| k.as_deref().is_some_and(|k| k.starts_with("req:")))
    );
}

#[test]
fn the_subagent_transcript_names_the_agent_and_its_type() {
    let meta = transcript::AgentMeta::parse(META).unwrap();
    assert_eq!(meta.model.as_deref(), Some("haiku"));
    let t = transcript::parse(AGENT, meta.agent_type.as_deref());
    check_against_mock(&t.calls, 2..=4);
    for c in &t.calls {
        assert_eq!(c.agent_id.as_deref(), Some("a8d671a305efa9d2a"));
        assert_eq!(c.agent_type.as_deref(), Some("general-purpose"));
        assert_eq!(c.model, "claude-haiku-5-5");
    }
    // The first subagent call wrote 113 tokens to the 5-minute cache, none to the 1-hour one.
    assert_eq!(t.calls[0].usage.cache_write_5m_tokens, 113);
    assert_eq!(t.calls[0].usage.cache_write_1h_tokens, 0);
}

#[test]
fn otlp_api_request_events_give_run_b_calls_with_claude_codes_cost() {
    let mut calls = Vec::new();
    for body in [
        include_str!("fixtures/0002-logs.json"),
        include_str!("fixtures/0003-logs.json"),
    ] {
        let events = otlp::parse_logs(body).unwrap();
        assert!(events.skipped.is_empty(), "{:?}", events.skipped);
        assert!(events.other > 0);
        calls.extend(events.calls);
    }
    check_against_mock(&calls, 8..=14);
    let sub: Vec<_> = calls.iter().filter(|c| c.is_subagent()).collect();
    assert_eq!(sub.len(), 3);
    assert!(
        sub.iter()
            .all(|c| c.agent_type.as_deref() == Some("general-purpose"))
    );
    assert!(calls.iter().all(|c| c.cost_usd.is_some_and(|x| x > 0.0)));
    let first = calls
        .iter()
        .find(|c| c.request_id.as_deref() == Some("req_mock_0008"))
        .unwrap();
    assert_eq!(first.cost_usd, Some(0.0050175));
    assert_eq!(first.dedup_key().as_deref(), Some("req:req_mock_0008"));
}

#[test]
fn hostile_input_is_skipped_and_reported_never_a_panic() {
    let text = "not json\n{\"type\":\"assistant\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":-1}}}\n{\"type\":\"assistant\",\"message\":{\"model\":\"claude-haiku-5-5\",\"usage\":{\"input_tokens\":3}}}\n\n{\"type\":\"assistant\",\"message\":{\"model\":\"<synthetic>\",\"id\":\"x\",\"usage\":{}}}";
    let t = transcript::parse(text, None);
    assert!(t.calls.is_empty());
    assert_eq!(t.skipped.len(), 3, "{:?}", t.skipped);
    assert!(otlp::parse_logs("[").is_err());
    let e = otlp::parse_logs(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[{"key":"event.name","value":{"stringValue":"api_request"}},{"key":"model","value":{"stringValue":"claude-haiku-5-5"}}]}]}]}]}"#).unwrap();
    assert_eq!((e.calls.len(), e.skipped.len()), (0, 1));
    // 64-bit integers as strings, as OTLP/JSON allows.
    let e = otlp::parse_logs(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[{"key":"event.name","value":{"stringValue":"api_request"}},{"key":"model","value":{"stringValue":"claude-haiku-5-5"}},{"key":"request_id","value":{"stringValue":"req_1"}},{"key":"input_tokens","value":{"intValue":"12"}},{"key":"cache_creation_tokens","value":{"intValue":"5"}}]}]}]}]}"#).unwrap();
    assert_eq!(e.calls[0].usage.input_tokens, 12);
    assert_eq!(e.calls[0].usage.cache_write_5m_tokens, 5);
    assert!(HookPayload::parse("{").is_err());
}

#[test]
fn hook_payloads_carry_the_agent_and_the_subagent_tools_input() {
    let stop = HookPayload::parse(include_str!("fixtures/SubagentStop.json")).unwrap();
    assert_eq!(stop.hook_event_name.as_deref(), Some("SubagentStop"));
    assert_eq!(stop.agent_id.as_deref(), Some("a8d671a305efa9d2a"));
    assert!(
        stop.agent_transcript_path
            .unwrap()
            .ends_with("agent-a8d671a305efa9d2a.jsonl")
    );
    let start = HookPayload::parse(include_str!("fixtures/SubagentStart.json")).unwrap();
    assert_eq!(start.agent_type.as_deref(), Some("general-purpose"));
    let pre = HookPayload::parse(include_str!("fixtures/PreToolUse_Agent.json")).unwrap();
    assert_eq!(
        pre.subagent_request(),
        Some((Some("haiku"), Some("general-purpose")))
    );
    assert_eq!(start.subagent_request(), None);
}

#[test]
fn two_reports_of_one_call_that_disagree_say_where() {
    let t = transcript::parse(AGENT, None);
    let a = t.calls[0].clone();
    let mut b = a.clone();
    assert_eq!(a.disagreement(&b), None);
    b.usage.output_tokens += 1;
    assert_eq!(a.disagreement(&b).as_deref(), Some("output 29 vs 30"));
}
