//! Hostile input: every decoder answers any bytes with a value or a typed
//! error, never a panic; the SSE parser gives the same events however the
//! bytes are split.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use swarmbus_anthropic::client::decode_response;
use swarmbus_anthropic::error::{Redactor, spend_limit_until};
use swarmbus_anthropic::sse::decode_stream;
use swarmbus_anthropic::{Error, SseParser, StreamAccumulator};

fn events(body: &[u8], chunk: usize) -> Result<Vec<(String, String)>, String> {
    let mut p = SseParser::new(1 << 20);
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        p.push(c, &mut out).map_err(|e| e.to_string())?;
    }
    p.finish(&mut out).map_err(|e| e.to_string())?;
    Ok(out.into_iter().map(|e| (e.event, e.data)).collect())
}

const EVENT_NAMES: [&str; 8] = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "error",
    "ping",
];

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_typed(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_response(&body, 200);
        let _ = decode_stream(&body, 4096);
        let now = chrono::DateTime::from_timestamp(1_798_000_000, 0).unwrap();
        for status in [400u16, 404, 429, 500, 529, 302] {
            let e = Error::from_http(status, &HeaderMap::new(), &body, "m", now, &Redactor::none());
            let _ = (e.kind(), e.action(), e.to_string());
        }
    }

    #[test]
    fn any_text_gives_a_spend_limit_stop_after_now_or_a_retry(text in ".{0,200}", secs in 0i64..8_000_000_000) {
        let now = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        // A stop is always ahead of now; no stop (a named moment already
        // passed) means retry.
        if let Some(until) = spend_limit_until(&text, now) {
            prop_assert!(until > now);
        }
    }

    #[test]
    fn hostile_headers_never_panic(remaining in ".{0,20}", reset in ".{0,40}", retry in ".{0,20}") {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("anthropic-ratelimit-tokens-remaining", &remaining),
            ("anthropic-ratelimit-tokens-reset", &reset),
            ("retry-after", &retry),
        ] {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(k, v);
            }
        }
        let e = Error::from_http(429, &h, b"{}", "m", chrono::Utc::now(), &Redactor::none());
        let _ = (e.retry_after(), e.rate_limits().map(|r| r.exhausted_until(chrono::Utc::now())));
    }

    #[test]
    fn events_do_not_depend_on_how_the_bytes_are_split(
        parts in proptest::collection::vec((0usize..8, "[ -~]{0,40}"), 0..12),
        sep in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        chunk in 1usize..64,
    ) {
        let body: String = parts
            .iter()
            .map(|(i, data)| format!("event: {}{sep}data: {data}{sep}{sep}", EVENT_NAMES[*i]))
            .collect();
        let whole = events(body.as_bytes(), body.len().max(1));
        prop_assert_eq!(whole.clone(), events(body.as_bytes(), chunk));
        let whole = whole.unwrap();
        prop_assert_eq!(whole.len(), parts.len());
        // Feeding arbitrary events to the accumulator never panics.
        let mut acc = StreamAccumulator::new();
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        p.push(body.as_bytes(), &mut out).unwrap();
        for ev in &out {
            let _ = acc.apply(ev);
        }
        let _ = acc.finish();
    }
}
