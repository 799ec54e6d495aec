//! OTLP/HTTP JSON log exports (`POST /v1/logs`): `resourceLogs[] →
//! scopeLogs[] → logRecords[]`, each record's `attributes` a list of
//! `{key, value: {stringValue | intValue | doubleValue | boolValue}}`
//! (`intValue` may be a JSON string, as OTLP encodes 64-bit integers).
//! Claude Code logs one `api_request` event per model call with its model,
//! tokens per bucket, `request_id`, `cost_usd` and, for a subagent's calls,
//! `agent_id` and `agent.name`. Metrics sums are DELTA: they are not read
//! here (the events already give every call once).

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use swarmbus_core::llm::Usage;

use crate::call::{CallUsage, Source};
use crate::error::Error;

/// The `api_request` events of one logs body.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Events {
    /// One per `api_request` event.
    pub calls: Vec<CallUsage>,
    /// Log records of other events.
    pub other: u64,
    /// `api_request` events that could not be used, with why.
    pub skipped: Vec<String>,
}

/// Parses a logs body's text.
pub fn parse_logs(text: &str) -> Result<Events, Error> {
    let body: Value = serde_json::from_str(text).map_err(|e| Error::Json {
        what: "OTLP logs body",
        reason: e.to_string(),
    })?;
    Ok(api_requests(&body))
}

/// The `api_request` events of a decoded logs body.
pub fn api_requests(body: &Value) -> Events {
    let mut out = Events::default();
    for rl in array(body, "resourceLogs") {
        for sl in array(rl, "scopeLogs") {
            for record in array(sl, "logRecords") {
                let attrs = attributes(record);
                if attrs.get("event.name").and_then(|v| v.as_str()) != Some("api_request") {
                    out.other += 1;
                    continue;
                }
                match call(&attrs, record) {
                    Ok(c) => out.calls.push(c),
                    Err(why) => out.skipped.push(why),
                }
            }
        }
    }
    out
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
enum Attr {
    Str(String),
    Int(i64),
    Double(f64),
    Other,
}

impl Attr {
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Int(i) => u64::try_from(*i).ok(),
            Self::Str(s) => s.parse().ok(),
            Self::Double(d) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 => Some(*d as u64),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Double(d) if d.is_finite() => Some(*d),
            Self::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

fn attributes(record: &Value) -> HashMap<String, Attr> {
    let mut out = HashMap::new();
    for a in array(record, "attributes") {
        let Some(key) = a.get("key").and_then(Value::as_str) else {
            continue;
        };
        let v = a.get("value");
        let attr = if let Some(s) = v.and_then(|v| v.get("stringValue")).and_then(Value::as_str) {
            Attr::Str(s.to_owned())
        } else if let Some(i) = v.and_then(|v| v.get("intValue")) {
            match i {
                Value::Number(n) => n.as_i64().map_or(Attr::Other, Attr::Int),
                Value::String(s) => s.parse().map_or(Attr::Other, Attr::Int),
                _ => Attr::Other,
            }
        } else if let Some(d) = v.and_then(|v| v.get("doubleValue")).and_then(Value::as_f64) {
            Attr::Double(d)
        } else {
            Attr::Other
        };
        out.insert(key.to_owned(), attr);
    }
    out
}

fn call(attrs: &HashMap<String, Attr>, record: &Value) -> Result<CallUsage, String> {
    let s = |k: &str| {
        attrs
            .get(k)
            .and_then(Attr::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let n = |k: &str| attrs.get(k).and_then(Attr::as_u64).unwrap_or(0);
    let model = s("model").ok_or("api_request without model")?;
    let request_id = s("request_id");
    if request_id.is_none() {
        return Err(format!("api_request of {model} without request_id"));
    }
    let total_write = n("cache_creation_tokens");
    let (five, hour) = match (
        attrs.get("cache_creation_5m_tokens").and_then(Attr::as_u64),
        attrs.get("cache_creation_1h_tokens").and_then(Attr::as_u64),
    ) {
        (None, None) => (total_write, 0),
        (f, h) => (f.unwrap_or(0), h.unwrap_or(0)),
    };
    let usage = Usage::new(n("input_tokens"), n("output_tokens"))
        .with_cache_read(n("cache_read_tokens"))
        .with_cache_write(five, hour);
    let at = s("event.timestamp")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            let nanos = match record.get("timeUnixNano") {
                Some(Value::String(s)) => s.parse::<i64>().ok(),
                Some(Value::Number(n)) => n.as_i64(),
                _ => None,
            }?;
            Utc.timestamp_opt(
                nanos.div_euclid(1_000_000_000),
                nanos.rem_euclid(1_000_000_000) as u32,
            )
            .single()
        });
    let agent_id = s("agent_id");
    Ok(CallUsage {
        source: Source::Otel,
        request_id,
        message_id: None,
        model,
        session: s("session.id"),
        agent_type: agent_id.as_ref().and_then(|_| s("agent.name")),
        agent_id,
        usage,
        at,
        cost_usd: attrs.get("cost_usd").and_then(Attr::as_f64),
    })
}
