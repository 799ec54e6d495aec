//! Property tests: the response decoder, the SSE decoder, the error
//! classifier and the stream accumulator never panic, whatever the bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use swarmbus_gemini::Error;
use swarmbus_gemini::decode::{SseDecoder, StreamAccumulator, decode_response, decode_stream_body};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_770_000_000, 0).unwrap()
}

/// Bytes that look a little like SSE and JSON, so the parsers get past their
/// first check more often than with uniform noise.
fn sse_like() -> impl Strategy<Value = Vec<u8>> {
    let atoms = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b":comment\n".to_vec()),
        Just(br#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#.to_vec()),
        Just(br#"{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"PerDay","quotaValue":"9"}]}]}}"#.to_vec()),
        Just(br#"{"promptFeedback":{"blockReason":"X"}}"#.to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        any::<Vec<u8>>(),
    ];
    prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_response_decoder_never_panics(body in any::<Vec<u8>>()) {
        let _ = decode_response(&body, now());
    }

    #[test]
    fn the_response_decoder_never_panics_on_json_like_input(body in sse_like()) {
        let _ = decode_response(&body, now());
    }

    #[test]
    fn the_error_classifier_never_panics(status in 0u16..1000, body in sse_like()) {
        let e = Error::from_http(status, &body, now());
        let _ = (e.action(), e.kind(), e.to_string(), e.retry_delay());
    }

    #[test]
    fn the_sse_decoder_never_panics_and_stops_after_an_error(
        body in sse_like(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut d = SseDecoder::with_limits(now(), 4096, 1 << 20);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([body.len()]) {
            out.extend(d.feed(&body[last..p]));
            last = p;
        }
        out.extend(d.finish());
        // Nothing follows an error.
        if let Some(i) = out.iter().position(Result::is_err) {
            prop_assert_eq!(i, out.len() - 1);
        }
        let mut acc = StreamAccumulator::new();
        for chunk in out.into_iter().flatten() {
            let _ = acc.push(&chunk);
        }
        let _ = acc.finish();
    }

    #[test]
    fn whole_stream_decoding_never_panics(body in any::<Vec<u8>>()) {
        let _ = decode_stream_body(&body, now());
    }
}
