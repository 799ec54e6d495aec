//! Bytes to answers: the unary body decoder, the server-sent-events decoder
//! of `streamGenerateContent?alt=sse`, and the accumulator that turns a
//! stream of chunks into one [`Generation`].
//!
//! Neither decoder panics on any input (a property test feeds them arbitrary
//! bytes). The SSE decoder accepts:
//!
//! - LF, CRLF and CR line endings, split anywhere across reads;
//! - multi-line `data:` fields, comments, `event:`/`id:`/`retry:` fields;
//! - a usage-only last chunk (no candidates);
//! - an API error as a `data:` event, or as plain JSON text between events
//!   (the API sends `{"error": …}` unframed in the middle of a stream, and as
//!   the whole body when the stream endpoint refuses a request).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use swarmbus_core::llm::{Completion, ContentBlock, Usage};

use crate::convert::{blocks_from_parts, stop_reason};
use crate::error::{ApiErrorEnvelope, BlockCause, Error, Redactor, classify, classify_api_error};
use crate::wire::{FinishReason, GenerateContentResponse, UsageMetadata};

/// The default cap on a body, and on one event of a stream: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Decodes a 2xx `generateContent` body and checks it is an answer
/// ([`GenerateContentResponse::check`]). An `{"error": …}` body is
/// classified by its `code`. `now` dates a per-day quota error.
pub fn decode_response(body: &[u8], now: DateTime<Utc>) -> Result<GenerateContentResponse, Error> {
    decode_response_with(body, now, &Redactor::none())
}

pub(crate) fn decode_response_with(
    body: &[u8],
    now: DateTime<Utc>,
    redact: &Redactor,
) -> Result<GenerateContentResponse, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::MalformedResponse {
            reason: format!("body is not JSON ({})", e.classify_kind()),
        })?;
    if let Some(env) = ApiErrorEnvelope::from_value(value.clone()) {
        let status = error_code(&env);
        return Err(classify_api_error(status, &env.error, now, redact));
    }
    if !value.is_object() {
        return Err(Error::MalformedResponse {
            reason: "body is not a JSON object".into(),
        });
    }
    let response: GenerateContentResponse =
        serde_json::from_value(value).map_err(|e| Error::MalformedResponse {
            reason: format!("body is not a generateContent response ({e})"),
        })?;
    response.check()?;
    Ok(response)
}

/// The status to classify an in-body error with: its `code` when it is an
/// HTTP-like number, else 500.
fn error_code(env: &ApiErrorEnvelope) -> u16 {
    env.error
        .code
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=599).contains(c))
        .unwrap_or(500)
}

trait ClassifyKind {
    fn classify_kind(&self) -> &'static str;
}

impl ClassifyKind for serde_json::Error {
    fn classify_kind(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// An incremental decoder of a `streamGenerateContent?alt=sse` body.
///
/// Feed it bytes as they arrive ([`SseDecoder::feed`]) and call
/// [`SseDecoder::finish`] at the end of the body. Each complete event gives
/// one chunk or one error; after an error the decoder yields nothing more.
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The current event's `data:` lines, joined with `\n`.
    data: Vec<u8>,
    has_data: bool,
    /// Lines that are not SSE fields (plain JSON between events).
    raw: Vec<u8>,
    /// A CR ended the last line; a following LF belongs to it.
    after_cr: bool,
    max_event_bytes: usize,
    total: usize,
    max_total: usize,
    done: bool,
    now: DateTime<Utc>,
    redact: Redactor,
}

impl SseDecoder {
    /// A decoder with the default caps, dating errors at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self::with_limits(now, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES)
    }

    /// A decoder that fails with [`Error::BodyTooLarge`] when one event is
    /// over `max_event_bytes` or the whole stream over `max_total_bytes`.
    pub fn with_limits(now: DateTime<Utc>, max_event_bytes: usize, max_total_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            raw: Vec::new(),
            after_cr: false,
            max_event_bytes,
            total: 0,
            max_total: max_total_bytes,
            done: false,
            now,
            redact: Redactor::none(),
        }
    }

    pub(crate) fn redacting(mut self, redact: Redactor) -> Self {
        self.redact = redact;
        self
    }

    /// Whether the decoder has stopped (after an error).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds bytes; returns the chunks (or the error) they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<GenerateContentResponse, Error>> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.total = self.total.saturating_add(bytes.len());
        if self.total > self.max_total {
            return self.fail(Error::BodyTooLarge {
                limit: self.max_total,
            });
        }
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, &mut out);
                    if self.done {
                        return out;
                    }
                }
                _ => {
                    self.line.push(b);
                    if self.line.len() > self.max_event_bytes {
                        out.extend(self.fail(Error::BodyTooLarge {
                            limit: self.max_event_bytes,
                        }));
                        return out;
                    }
                }
            }
        }
        out
    }

    /// Ends the body: dispatches the last event and reports text that was
    /// neither an event nor an API error.
    pub fn finish(&mut self) -> Vec<Result<GenerateContentResponse, Error>> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out);
        }
        if !self.done {
            self.dispatch(&mut out);
        }
        if !self.done && !self.raw.iter().all(u8::is_ascii_whitespace) {
            let raw = std::mem::take(&mut self.raw);
            out.extend(
                self.fail(
                    self.raw_error(&raw)
                        .unwrap_or_else(|| Error::MalformedResponse {
                            reason: "stream holds text that is neither an event nor an API error"
                                .into(),
                        }),
                ),
            );
        }
        self.done = true;
        out
    }

    fn fail(&mut self, error: Error) -> Vec<Result<GenerateContentResponse, Error>> {
        self.done = true;
        self.line.clear();
        self.data.clear();
        self.raw.clear();
        vec![Err(error)]
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Result<GenerateContentResponse, Error>>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.first() == Some(&b':') {
            return; // a comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                if self.data.len() > self.max_event_bytes {
                    out.extend(self.fail(Error::BodyTooLarge {
                        limit: self.max_event_bytes,
                    }));
                }
            }
            b"event" | b"id" | b"retry" => {}
            _ => {
                // Not an SSE field: plain text between events, which the API
                // uses for an unframed `{"error": …}` object.
                self.raw.extend_from_slice(line);
                self.raw.push(b'\n');
                if self.raw.len() > self.max_event_bytes {
                    out.extend(self.fail(Error::BodyTooLarge {
                        limit: self.max_event_bytes,
                    }));
                    return;
                }
                if line.trim_ascii_end().ends_with(b"}") {
                    let raw = std::mem::take(&mut self.raw);
                    match self.raw_error(&raw) {
                        Some(e) => out.extend(self.fail(e)),
                        None => self.raw = raw,
                    }
                }
            }
        }
    }

    /// The API error the raw text holds, if it is one complete error object.
    fn raw_error(&self, raw: &[u8]) -> Option<Error> {
        let env = ApiErrorEnvelope::parse(raw)?;
        Some(classify_api_error(
            error_code(&env),
            &env.error,
            self.now,
            &self.redact,
        ))
    }

    fn dispatch(&mut self, out: &mut Vec<Result<GenerateContentResponse, Error>>) {
        if !self.has_data {
            return;
        }
        let data = std::mem::take(&mut self.data);
        self.has_data = false;
        if data.trim_ascii() == b"[DONE]" {
            return;
        }
        match self.decode_event(&data) {
            Ok(chunk) => out.push(Ok(chunk)),
            Err(e) => out.extend(self.fail(e)),
        }
    }

    fn decode_event(&self, data: &[u8]) -> Result<GenerateContentResponse, Error> {
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| Error::MalformedResponse {
                reason: format!("stream event is not JSON ({})", e.classify_kind()),
            })?;
        if let Some(env) = ApiErrorEnvelope::from_value(value.clone()) {
            return Err(classify_api_error(
                error_code(&env),
                &env.error,
                self.now,
                &self.redact,
            ));
        }
        let chunk: GenerateContentResponse =
            serde_json::from_value(value).map_err(|e| Error::MalformedResponse {
                reason: format!("stream event is not a generateContent chunk ({e})"),
            })?;
        if chunk.candidates.is_none()
            && chunk.prompt_feedback.is_none()
            && chunk.usage_metadata.is_none()
        {
            return Err(Error::MalformedResponse {
                reason: "stream event is not a generateContent chunk".into(),
            });
        }
        Ok(chunk)
    }
}

/// Decodes a whole SSE body at once into its chunks (stopping at the first
/// error). For tests and for bodies already in memory.
pub fn decode_sse(body: &[u8], now: DateTime<Utc>) -> Vec<Result<GenerateContentResponse, Error>> {
    let mut d = SseDecoder::new(now);
    let mut out = d.feed(body);
    out.extend(d.finish());
    out
}

/// A finished answer: the text, why it stopped, and every token count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Generation {
    /// The answer text (thoughts excluded).
    pub text: String,
    /// The thought summaries, when asked for.
    pub thoughts: String,
    /// Every part of the answer as core content blocks, in order: text,
    /// thinking (with signatures), tool calls, other parts (see
    /// [`crate::convert`]).
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Why generation stopped.
    pub finish_reason: Option<FinishReason>,
    /// The finish message, when given.
    pub finish_message: Option<String>,
    /// Token counts as the API reports them.
    pub usage: UsageMetadata,
    /// The model version that answered.
    pub model_version: Option<String>,
    /// The response id.
    pub response_id: Option<String>,
}

impl Generation {
    /// The answer of a checked unary response.
    pub fn from_response(response: &GenerateContentResponse) -> Result<Self, Error> {
        response.check()?;
        let candidate = response.candidate();
        let mut content = Vec::new();
        if let Some(parts) = candidate
            .and_then(|c| c.content.as_ref())
            .and_then(|c| c.parts.as_ref())
        {
            blocks_from_parts(parts, &mut 0, &mut content);
        }
        Ok(Self {
            text: response.text(),
            thoughts: response.thoughts(),
            content,
            finish_reason: candidate.and_then(|c| c.finish_reason.clone()),
            finish_message: candidate.and_then(|c| c.finish_message.clone()),
            usage: response.usage_metadata.clone().unwrap_or_default(),
            model_version: response.model_version.clone(),
            response_id: response.response_id.clone(),
        })
    }

    /// The provider-neutral usage.
    pub fn usage(&self) -> Usage {
        self.usage.usage()
    }

    /// The provider-neutral completion: the content blocks (thinking apart
    /// from text, tool calls), the stop reason (`STOP` with a tool call is
    /// `tool_use`; `MAX_TOKENS` is `max_tokens`, even with no text), usage
    /// and the model version that answered.
    pub fn into_completion(self, model: &str, served_by: Option<String>) -> Completion {
        let usage = self.usage();
        let reason = stop_reason(self.finish_reason.as_ref(), &self.content);
        let mut c = Completion::from_blocks(
            self.content,
            self.model_version.unwrap_or_else(|| model.to_owned()),
            usage,
        )
        .stop_reason(reason);
        if let Some(s) = served_by {
            c = c.served_by(s);
        }
        c
    }
}

/// Collects stream chunks into one [`Generation`], checking as it goes:
/// a blocked prompt or a blocking finish reason fails at once; a stream
/// that ends without any content part is malformed, unless its finish
/// reason is `MAX_TOKENS` (the cap ended it before any part: a success with
/// no text). Chunks with content but no parts (seen before the final chunk)
/// and a usage-only last chunk are normal.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    generation: Generation,
    chunks: usize,
    parts: usize,
    calls: usize,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a chunk; returns the answer text it adds.
    pub fn push(&mut self, chunk: &GenerateContentResponse) -> Result<String, Error> {
        self.chunks += 1;
        if let Some(feedback) = &chunk.prompt_feedback
            && let Some(reason) = &feedback.block_reason
        {
            return Err(Error::Blocked {
                cause: BlockCause::Prompt(reason.clone()),
                message: feedback.block_reason_message.clone(),
            });
        }
        let g = &mut self.generation;
        if let Some(u) = &chunk.usage_metadata {
            g.usage = u.clone();
        }
        if chunk.model_version.is_some() {
            g.model_version.clone_from(&chunk.model_version);
        }
        if chunk.response_id.is_some() {
            g.response_id.clone_from(&chunk.response_id);
        }
        let mut added = String::new();
        if let Some(candidate) = chunk.candidate() {
            if let Some(content) = &candidate.content
                && let Some(parts) = &content.parts
                && !parts.is_empty()
            {
                self.parts += parts.len();
                blocks_from_parts(parts, &mut self.calls, &mut g.content);
                added = content.text();
                g.text.push_str(&added);
                g.thoughts.push_str(&content.thoughts());
            }
            if let Some(reason) = &candidate.finish_reason {
                if reason.is_block() {
                    return Err(Error::Blocked {
                        cause: BlockCause::Candidate(reason.clone()),
                        message: candidate.finish_message.clone(),
                    });
                }
                g.finish_reason = Some(reason.clone());
            }
            if candidate.finish_message.is_some() {
                g.finish_message.clone_from(&candidate.finish_message);
            }
        }
        Ok(added)
    }

    /// What was collected so far, unchecked (for telemetry).
    pub(crate) fn into_generation(self) -> Generation {
        self.generation
    }

    /// Ends the stream.
    pub fn finish(self) -> Result<Generation, Error> {
        if self.chunks == 0 {
            return Err(Error::MalformedResponse {
                reason: "the stream ended without any chunk".into(),
            });
        }
        let capped = self.generation.finish_reason == Some(FinishReason::MaxTokens);
        if self.parts == 0 && !capped {
            let finish = self
                .generation
                .finish_reason
                .as_ref()
                .map(|r| format!(" (finishReason {r})"))
                .unwrap_or_default();
            return Err(Error::MalformedResponse {
                reason: format!("the stream ended without any content part{finish}"),
            });
        }
        Ok(self.generation)
    }
}

/// Decodes a whole SSE body into one checked [`Generation`].
pub fn decode_stream_body(body: &[u8], now: DateTime<Utc>) -> Result<Generation, Error> {
    let mut acc = StreamAccumulator::new();
    for chunk in decode_sse(body, now) {
        acc.push(&chunk?)?;
    }
    acc.finish()
}

/// Classifies a non-2xx body of either endpoint (crate-internal, with the
/// key redacted).
pub(crate) fn http_error(status: u16, body: &[u8], now: DateTime<Utc>, redact: &Redactor) -> Error {
    classify(status, body, now, redact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000, 0).unwrap()
    }

    #[test]
    fn crlf_lf_and_cr_framing_give_the_same_chunks() {
        let ev = r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#;
        for sep in ["\n", "\r\n", "\r"] {
            let body = format!("data: {ev}{sep}{sep}data: {ev}{sep}{sep}");
            // Split at every position to exercise line ends across reads.
            for cut in 0..body.len() {
                let mut d = SseDecoder::new(now());
                let mut out = d.feed(&body.as_bytes()[..cut]);
                out.extend(d.feed(&body.as_bytes()[cut..]));
                out.extend(d.finish());
                assert_eq!(out.len(), 2, "sep {sep:?} cut {cut}");
                assert!(out.iter().all(Result::is_ok));
            }
        }
    }

    #[test]
    fn a_usage_only_last_chunk_is_accepted() {
        let body = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"role\":\"model\"},\"finishReason\":\"STOP\"}]}\n\n",
            "data: {\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1,\"totalTokenCount\":4}}\n\n",
        );
        let g = decode_stream_body(body.as_bytes(), now()).unwrap();
        assert_eq!(g.text, "Hi");
        assert_eq!(g.finish_reason, Some(FinishReason::Stop));
        assert_eq!(g.usage.total_token_count, 4);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let body =
            "data: {\"candidates\":[{\"content\":\ndata: {\"parts\":[{\"text\":\"x\"}]}}]}\n\n";
        let g = decode_stream_body(body.as_bytes(), now()).unwrap();
        assert_eq!(g.text, "x");
    }

    #[test]
    fn an_error_event_is_classified() {
        let body =
            "data: {\"error\":{\"code\":503,\"message\":\"busy\",\"status\":\"UNAVAILABLE\"}}\n\n";
        let err = decode_stream_body(body.as_bytes(), now()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
    }

    #[test]
    fn an_oversized_event_stops_the_decoder() {
        let mut d = SseDecoder::with_limits(now(), 16, 1024);
        let out = d.feed(b"data: 0123456789012345678901234");
        assert!(matches!(
            out.as_slice(),
            [Err(Error::BodyTooLarge { limit: 16 })]
        ));
        assert!(d.is_done());
        assert!(d.feed(b"\n\n").is_empty());
    }
}
