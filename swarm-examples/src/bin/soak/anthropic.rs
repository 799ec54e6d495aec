//! The soak's mock Anthropic Messages API on wiremock: streamed (or plain)
//! recorded-shaped messages after a random latency, with 429
//! (`retry-after`), 529 and mid-stream `error` events at a fault rate; it
//! counts the usage of every message it served in full, per API key (one
//! key per worker process), for the final check against the ledger.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use wiremock::matchers::any;
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::{AnyError, lock};

/// What the mock served.
#[derive(Debug, Default)]
pub(crate) struct MockStats {
    pub(crate) requests: AtomicU64,
    pub(crate) served: AtomicU64,
    pub(crate) injected_429: AtomicU64,
    pub(crate) injected_529: AtomicU64,
    pub(crate) injected_midstream: AtomicU64,
    /// Tokens (input + output) of every message served in full, per API key.
    pub(crate) usage_by_key: Mutex<HashMap<String, u64>>,
}

/// A fault the mock injects into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    RateLimited429,
    Overloaded529,
    /// A stream that breaks off with an `error` event after the first delta.
    Midstream,
}

/// Starts the mock on a loopback port; `fault_rate` of the requests get a
/// fault, a third each of 429, 529 and a mid-stream break.
pub(crate) async fn start(fault_rate: f64) -> Result<(MockServer, Arc<MockStats>), AnyError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    // Recording would keep every request body of the run in memory.
    let server = MockServer::builder()
        .listener(listener)
        .disable_request_recording()
        .start()
        .await;
    let stats = Arc::new(MockStats::default());
    let rate = fault_rate.clamp(0.0, 1.0);
    // A plain (not streamed) answer's mid-stream fault: the connection is
    // dropped without an answer, which the client sees as a cut
    // connection, as when the body breaks off halfway.
    Mock::given(CutPlain {
        stats: Arc::clone(&stats),
        rate: rate / 3.0,
    })
    .respond_with_err(|_: &Request| {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "soak: connection cut mid-answer",
        )
    })
    .with_priority(1)
    .mount(&server)
    .await;
    Mock::given(any())
        .respond_with(Messages {
            stats: Arc::clone(&stats),
            rate,
        })
        .mount(&server)
        .await;
    Ok((server, stats))
}

/// Whether the request asked for a stream (`"stream": true`).
fn streamed(body: &serde_json::Value) -> bool {
    body["stream"].as_bool().unwrap_or(false)
}

/// Matches a plain request that gets the mid-stream fault (drawn with
/// `rate`), counting it.
struct CutPlain {
    stats: Arc<MockStats>,
    rate: f64,
}

impl Match for CutPlain {
    fn matches(&self, request: &Request) -> bool {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        if streamed(&body) || !rand::rng().random_bool(self.rate) {
            return false;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats
            .injected_midstream
            .fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Answers every request [`CutPlain`] left: a message, or a fault.
struct Messages {
    stats: Arc<MockStats>,
    rate: f64,
}

impl Messages {
    /// The fault of one request: `rate` in all, a third of each kind. A
    /// plain request's mid-stream break was drawn by [`CutPlain`]; the
    /// others are drawn here with the odds given that it was not.
    fn draw(&self, stream: bool) -> Fault {
        let mut rng = rand::rng();
        if stream {
            if !rng.random_bool(self.rate) {
                return Fault::None;
            }
            return match rng.random_range(0..3u8) {
                0 => Fault::RateLimited429,
                1 => Fault::Overloaded529,
                _ => Fault::Midstream,
            };
        }
        let third = self.rate / 3.0;
        let each = if third < 1.0 {
            third / (1.0 - third)
        } else {
            0.5
        };
        if !rng.random_bool((2.0 * each).clamp(0.0, 1.0)) {
            return Fault::None;
        }
        if rng.random_bool(0.5) {
            Fault::RateLimited429
        } else {
            Fault::Overloaded529
        }
    }
}

impl Respond for Messages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let key = request
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let n = self.stats.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let stream = streamed(&body);
        let fault = self.draw(stream);
        let (latency, input, output) = {
            let mut rng = rand::rng();
            (
                rng.random_range(5..60u64),
                rng.random_range(200..1200u64),
                rng.random_range(20..200u64),
            )
        };
        let delay = Duration::from_millis(latency);
        let model = body["model"].as_str().unwrap_or("claude");
        match fault {
            Fault::RateLimited429 => {
                self.stats.injected_429.fetch_add(1, Ordering::Relaxed);
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .insert_header("request-id", "req_soak429")
                    .set_body_raw(
                        r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
                        "application/json",
                    )
                    .set_delay(delay)
            }
            Fault::Overloaded529 => {
                self.stats.injected_529.fetch_add(1, Ordering::Relaxed);
                ResponseTemplate::new(529)
                    .insert_header("request-id", "req_soak529")
                    .set_body_raw(
                        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                        "application/json",
                    )
                    .set_delay(delay)
            }
            Fault::None | Fault::Midstream => {
                let midstream = fault == Fault::Midstream;
                if midstream {
                    self.stats
                        .injected_midstream
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.served.fetch_add(1, Ordering::Relaxed);
                    *lock(&self.stats.usage_by_key).entry(key).or_default() += input + output;
                }
                let text = format!(
                    "Soak finding {n}\nThe mock model looked at the task and found what it asked for (request {n})."
                );
                let (mime, payload) = if stream {
                    (
                        "text/event-stream",
                        sse_message(model, n, &text, input, output, midstream),
                    )
                } else {
                    (
                        "application/json",
                        serde_json::json!({
                            "id": format!("msg_soak{n}"), "type": "message", "role": "assistant",
                            "model": model, "content": [{"type": "text", "text": text}],
                            "stop_reason": "end_turn", "stop_sequence": null,
                            "usage": {"input_tokens": input, "output_tokens": output}
                        })
                        .to_string(),
                    )
                };
                ResponseTemplate::new(200)
                    .insert_header("request-id", format!("req_soak{n}").as_str())
                    .set_body_raw(payload, mime)
                    .set_delay(delay)
            }
        }
    }
}

/// A recorded-shaped Messages stream; with `midstream` it breaks off with an
/// `error` event after the first delta (as the API does when overloaded).
fn sse_message(
    model: &str,
    n: u64,
    text: &str,
    input: u64,
    output: u64,
    midstream: bool,
) -> String {
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let (first, rest) = text.split_at(text.len() / 2);
    let mut s = ev(
        "message_start",
        serde_json::json!({"type":"message_start","message":{"id":format!("msg_soak{n}"),"type":"message","role":"assistant","model":model,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":input,"output_tokens":1}}}),
    );
    s += &ev(
        "content_block_start",
        serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    s += &ev("ping", serde_json::json!({"type":"ping"}));
    s += &ev(
        "content_block_delta",
        serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":first}}),
    );
    if midstream {
        s += &ev(
            "error",
            serde_json::json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        );
        return s;
    }
    s += &ev(
        "content_block_delta",
        serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":rest}}),
    );
    s += &ev(
        "content_block_stop",
        serde_json::json!({"type":"content_block_stop","index":0}),
    );
    s += &ev(
        "message_delta",
        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":output}}),
    );
    s += &ev("message_stop", serde_json::json!({"type":"message_stop"}));
    s
}
