//! The streaming decoder: bytes → server-sent events ([`SseParser`]) →
//! a [`MessagesResponse`] ([`StreamAccumulator`]).
//!
//! - Events are named (`event: content_block_delta`); the name in the data's
//!   `type` wins when both are present. `ping` and unknown events are
//!   skipped; unknown content-block types are kept whole as
//!   [`ContentBlock::Other`] and their deltas skipped: never fatal.
//! - Lines end in `\n`, `\r\n` or `\r`; `:` lines are comments; several
//!   `data:` lines join with `\n`.
//! - `event: error` mid-stream becomes the error of its type
//!   (`overloaded_error` → `overloaded`).
//! - Usage starts from `message_start` and is updated by `message_delta`,
//!   whose counts are cumulative (they replace, never add).
//! - Invalid UTF-8, data that is not the JSON its event calls for, an event
//!   over the size cap, or a stream that ends before `message_stop`: each a
//!   typed [`Error`], never a guess.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Redactor, Result};
use crate::wire::{ContentBlock, MessagesResponse, Role, StopDetails, StopReason, WireUsage};

/// The default cap on one event's bytes (and on a non-streaming body).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SseEvent {
    /// The `event:` name (empty when the event had none).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Splits a byte stream into events.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Bytes of the stream consumed before `buf`.
    offset: usize,
    event: String,
    data: String,
    has_data: bool,
    max_event_bytes: usize,
    /// A `\r` ended the last line: a `\n` right after it is part of it.
    after_cr: bool,
    /// Bytes of `buf` already scanned for a line end (a long line arriving
    /// in many reads is scanned once, not once per read).
    scanned: usize,
}

impl SseParser {
    /// A parser whose events (and pending lines) may not exceed
    /// `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            offset: 0,
            event: String::new(),
            data: String::new(),
            has_data: false,
            max_event_bytes,
            after_cr: false,
            scanned: 0,
        }
    }

    /// Feeds bytes; appends the events they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        let mut i = self.scanned.min(self.buf.len());
        while i < self.buf.len() {
            let b = self.buf.get(i).copied().unwrap_or(b'\n');
            if self.after_cr && i == start && b == b'\n' {
                // The `\n` of a `\r\n` split across reads.
                self.after_cr = false;
                start = i + 1;
                i += 1;
                continue;
            }
            self.after_cr = false;
            if b == b'\n' || b == b'\r' {
                let line_start = self.offset + start;
                let line = self.buf.get(start..i).unwrap_or_default().to_vec();
                self.line(&line, line_start, out)?;
                if b == b'\r' {
                    if self.buf.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    } else if i + 1 == self.buf.len() {
                        self.after_cr = true;
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buf.drain(..start.min(self.buf.len()));
        self.offset += start;
        self.scanned = self.buf.len();
        if self.buf.len() + self.data.len() > self.max_event_bytes {
            return Err(Error::BodyTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    /// Ends the stream: a last event without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<()> {
        if !self.buf.is_empty() {
            self.scanned = 0;
            let line = std::mem::take(&mut self.buf);
            self.line(&line, self.offset, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn line(&mut self, line: &[u8], at: usize, out: &mut Vec<SseEvent>) -> Result<()> {
        let line = std::str::from_utf8(line).map_err(|_| Error::InvalidUtf8 { offset: at })?;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_event_bytes {
                    return Err(Error::BodyTooLarge {
                        limit: self.max_event_bytes,
                    });
                }
            }
            _ => {} // `id:`, `retry:` and unknown fields mean nothing here.
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data || !self.event.is_empty() {
            out.push(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        }
        self.has_data = false;
        self.data.clear();
    }
}

/// What one event added, for a caller that prints as it goes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamUpdate {
    /// Text of the answer.
    Text(String),
    /// Thinking (not part of the answer text).
    Thinking(String),
    /// A tool call's JSON is complete.
    ToolUse {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
    },
    /// `message_stop`: the answer is complete.
    Done,
    /// Nothing a caller sees (ping, bookkeeping, unknown events).
    Nothing,
}

#[derive(Debug)]
struct BlockState {
    block: ContentBlock,
    /// `input_json_delta` fragments of a tool call.
    json: String,
}

/// Builds a [`MessagesResponse`] from the events of one stream.
#[derive(Debug)]
pub struct StreamAccumulator {
    message: Option<MessagesResponse>,
    blocks: BTreeMap<u64, BlockState>,
    stopped: bool,
    events: usize,
    redact: Redactor,
}

impl Default for StreamAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

fn invalid(event: &str, reason: impl Into<String>) -> Error {
    Error::InvalidEvent {
        event: event.chars().take(64).collect(),
        reason: reason.into(),
    }
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::redacting(Redactor::none())
    }

    /// An accumulator that cleans error text with `redact`.
    pub fn redacting(redact: Redactor) -> Self {
        Self {
            message: None,
            blocks: BTreeMap::new(),
            stopped: false,
            events: 0,
            redact,
        }
    }

    /// Whether `message_stop` arrived.
    pub fn is_complete(&self) -> bool {
        self.stopped
    }

    /// Applies one event.
    pub fn apply(&mut self, ev: &SseEvent) -> Result<StreamUpdate> {
        self.events += 1;
        if ev.event == "ping" {
            return Ok(StreamUpdate::Nothing);
        }
        let data: Value = serde_json::from_str(&ev.data)
            .map_err(|e| invalid(&ev.event, format!("data is not JSON ({e})")))?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(ev.event.as_str())
            .to_owned();
        if self.stopped && kind != "ping" {
            return Ok(StreamUpdate::Nothing);
        }
        match kind.as_str() {
            "ping" => Ok(StreamUpdate::Nothing),
            "error" => Err(Error::from_stream_event(&data, &self.redact)),
            "message_start" => {
                let msg = data
                    .get("message")
                    .cloned()
                    .ok_or_else(|| invalid(&kind, "no message"))?;
                let msg: MessagesResponse = serde_json::from_value(msg)
                    .map_err(|e| invalid(&kind, format!("not a message ({e})")))?;
                self.message = Some(msg);
                Ok(StreamUpdate::Nothing)
            }
            "content_block_start" => {
                let index = index_of(&data, &kind)?;
                let block = data
                    .get("content_block")
                    .cloned()
                    .ok_or_else(|| invalid(&kind, "no content_block"))?;
                let block = ContentBlock::from_value(block)
                    .map_err(|e| invalid(&kind, format!("bad content block ({e})")))?;
                self.started()?;
                self.blocks.insert(
                    index,
                    BlockState {
                        block,
                        json: String::new(),
                    },
                );
                Ok(StreamUpdate::Nothing)
            }
            "content_block_delta" => self.delta(&kind, &data),
            "content_block_stop" => {
                let index = index_of(&data, &kind)?;
                let state = self
                    .blocks
                    .get_mut(&index)
                    .ok_or_else(|| invalid(&kind, format!("no block {index}")))?;
                if let ContentBlock::ToolUse(t) = &mut state.block {
                    if !state.json.is_empty() {
                        t.input = serde_json::from_str(&state.json).map_err(|e| {
                            invalid(
                                &kind,
                                format!("tool input of block {index} is not JSON ({e})"),
                            )
                        })?;
                        state.json.clear();
                    } else if t.input.is_null() {
                        t.input = Value::Object(serde_json::Map::new());
                    }
                    return Ok(StreamUpdate::ToolUse {
                        id: t.id.clone(),
                        name: t.name.clone(),
                    });
                }
                Ok(StreamUpdate::Nothing)
            }
            "message_delta" => {
                let msg = self.started()?;
                if let Some(delta) = data.get("delta") {
                    if let Some(r) = delta.get("stop_reason").and_then(Value::as_str) {
                        msg.stop_reason = Some(StopReason::parse(r));
                    }
                    if let Some(s) = delta.get("stop_sequence").and_then(Value::as_str) {
                        msg.stop_sequence = Some(s.to_owned());
                    }
                    if let Some(d) = delta.get("stop_details").filter(|d| !d.is_null()) {
                        msg.stop_details = Some(
                            serde_json::from_value::<StopDetails>(d.clone())
                                .map_err(|e| invalid(&kind, format!("bad stop_details ({e})")))?,
                        );
                    }
                }
                if let Some(u) = data.get("usage").filter(|u| !u.is_null()) {
                    let u: WireUsage = serde_json::from_value(u.clone())
                        .map_err(|e| invalid(&kind, format!("bad usage ({e})")))?;
                    msg.usage.update(&u);
                }
                Ok(StreamUpdate::Nothing)
            }
            "message_stop" => {
                self.started()?;
                self.stopped = true;
                Ok(StreamUpdate::Done)
            }
            _ => {
                tracing::debug!(event = %kind, "skipping an unknown stream event");
                Ok(StreamUpdate::Nothing)
            }
        }
    }

    fn started(&mut self) -> Result<&mut MessagesResponse> {
        self.message
            .as_mut()
            .ok_or_else(|| invalid("message_start", "an event came before message_start"))
    }

    fn delta(&mut self, kind: &str, data: &Value) -> Result<StreamUpdate> {
        let index = index_of(data, kind)?;
        let delta = data.get("delta").ok_or_else(|| invalid(kind, "no delta"))?;
        let dtype = delta.get("type").and_then(Value::as_str).unwrap_or("");
        let state = self
            .blocks
            .get_mut(&index)
            .ok_or_else(|| invalid(kind, format!("delta for block {index}, never started")))?;
        let text = |field: &str| -> Result<String> {
            delta
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid(kind, format!("{dtype} without {field}")))
        };
        match (&mut state.block, dtype) {
            (ContentBlock::Text(t), "text_delta") => {
                let s = text("text")?;
                t.text.push_str(&s);
                Ok(StreamUpdate::Text(s))
            }
            (ContentBlock::Text(t), "citations_delta") => {
                if let Some(c) = delta.get("citation") {
                    match &mut t.citations {
                        Some(Value::Array(list)) => list.push(c.clone()),
                        slot => *slot = Some(Value::Array(vec![c.clone()])),
                    }
                }
                Ok(StreamUpdate::Nothing)
            }
            (ContentBlock::Thinking(t), "thinking_delta") => {
                let s = text("thinking")?;
                t.thinking.push_str(&s);
                Ok(StreamUpdate::Thinking(s))
            }
            (ContentBlock::Thinking(t), "signature_delta") => {
                t.signature.push_str(&text("signature")?);
                Ok(StreamUpdate::Nothing)
            }
            // A caller's tool call, or a server tool call (`server_tool_use`,
            // `mcp_tool_use`, kept whole): the input is parsed at the end.
            (ContentBlock::ToolUse(_) | ContentBlock::Other { .. }, "input_json_delta") => {
                state.json.push_str(&text("partial_json")?);
                Ok(StreamUpdate::Nothing)
            }
            _ => {
                tracing::debug!(delta = dtype, "skipping an unknown delta type");
                Ok(StreamUpdate::Nothing)
            }
        }
    }

    /// The answer, once `message_stop` has arrived.
    pub fn finish(self) -> Result<MessagesResponse> {
        if !self.stopped {
            return Err(Error::IncompleteStream {
                events: self.events,
            });
        }
        let mut msg = self.message.ok_or(Error::IncompleteStream {
            events: self.events,
        })?;
        if msg.stop_reason.is_none() {
            return Err(Error::MalformedResponse {
                status: None,
                reason: "the stream ended without a stop_reason".into(),
            });
        }
        msg.content = self
            .blocks
            .into_values()
            .map(|mut s| {
                if let ContentBlock::Other { raw, .. } = &mut s.block
                    && !s.json.is_empty()
                    && let (Some(obj), Ok(input)) =
                        (raw.as_object_mut(), serde_json::from_str::<Value>(&s.json))
                {
                    obj.insert("input".into(), input);
                }
                s.block
            })
            .collect();
        if msg.role != Role::Assistant {
            return Err(Error::MalformedResponse {
                status: None,
                reason: "the streamed message is not the assistant's".into(),
            });
        }
        Ok(msg)
    }
}

fn index_of(data: &Value, kind: &str) -> Result<u64> {
    data.get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(kind, "no index"))
}

/// Decodes a whole SSE body at once (tests and benchmarks; the client
/// decodes as bytes arrive).
pub fn decode_stream(body: &[u8], max_event_bytes: usize) -> Result<MessagesResponse> {
    let mut parser = SseParser::new(max_event_bytes);
    let mut acc = StreamAccumulator::new();
    let mut events = Vec::new();
    parser.push(body, &mut events)?;
    parser.finish(&mut events)?;
    for ev in &events {
        acc.apply(ev)?;
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_lf_and_cr_lines_all_end_events() {
        for sep in ["\n", "\r\n", "\r"] {
            let text = format!(
                "event: a{sep}data: 1{sep}data: 2{sep}{sep}: comment{sep}event: b{sep}data: x{sep}{sep}"
            );
            let mut p = SseParser::new(1024);
            let mut out = Vec::new();
            // One byte at a time: a line ending split across reads.
            for b in text.as_bytes() {
                p.push(std::slice::from_ref(b), &mut out).unwrap();
            }
            p.finish(&mut out).unwrap();
            assert_eq!(out.len(), 2, "{sep:?}");
            assert_eq!(out[0].data, "1\n2");
            assert_eq!(out[1].event, "b");
        }
    }

    #[test]
    fn invalid_utf8_is_a_typed_error() {
        let mut p = SseParser::new(1024);
        let mut out = Vec::new();
        let e = p
            .push(b"event: x\ndata: \xff\xfe\n\n", &mut out)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidUtf8 { offset: 9 }), "{e:?}");
    }

    #[test]
    fn an_event_over_the_cap_is_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        let e = p.push(&[b'a'; 64], &mut out).unwrap_err();
        assert!(matches!(e, Error::BodyTooLarge { limit: 16 }));
    }
}
