//! `swarm otlp serve` and `swarm otlp import FILE…`: book the `api_request`
//! events Claude Code exports over OpenTelemetry (`OTEL_LOGS_EXPORTER=otlp`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), each call once: a call a hook
//! already booked from a transcript is not booked again (same dedup key,
//! [`crate::cc_book`]), and where both report it and disagree, that is said.
//!
//! `serve` is a local OTLP/HTTP receiver (JSON encoding):
//!
//! - `POST /v1/logs`: booked; 200 with an empty `ExportLogsServiceResponse`
//!   (`{}`), or `{"partialSuccess": {...}}` naming the records not booked;
//! - `POST /v1/metrics`, `POST /v1/traces`: accepted (200) and dropped: the
//!   log events already give every call once, and metric sums are DELTA;
//! - protobuf bodies or `Content-Encoding: gzip` on `/v1/logs`: 415 saying
//!   which `OTEL_*` variable to set; invalid JSON: 400; a body over
//!   `--max-body-bytes`: 413;
//! - Redis unreachable while booking: 503 with `Retry-After: 5` (OTLP
//!   exporters retry that, so nothing is lost; a body half booked when Redis
//!   went away is booked whole by the retry, the booked part once).
//!
//! The bus is opened lazily ([`crate::lazy_bus`]): the receiver starts and
//! answers with Redis down and books once Redis is back, without a restart.
//! It listens on loopback only, unless `--allow-remote`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use swarmbus_claude_code::otlp;
use swarmbus_core::bus::{Bus, Counters};

use crate::cc_book::{Booked, Booker};
use crate::ctx::{BusUse, Ctx, fail};

/// The OTLP/HTTP default address (loopback).
const DEFAULT_LISTEN: &str = "127.0.0.1:4318";

/// `swarm otlp`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum OtlpCmd {
    /// Book the api_request events of OTLP/HTTP JSON logs bodies (files).
    Import {
        /// The files (`POST /v1/logs` bodies).
        files: Vec<std::path::PathBuf>,
    },
    /// Receive Claude Code's OpenTelemetry (OTLP/HTTP JSON) and book its
    /// api_request events as they arrive (`swarm init claude-code --otel`
    /// points Claude Code here).
    Serve(ServeArgs),
}

/// Options of `swarm otlp serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed
    /// on stderr as `listening on http://ADDR`).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The largest request body read; a larger one is answered 413.
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_body_bytes: u32,
    /// Listen on a non-loopback address too (anyone who reaches it can book
    /// calls in the ledger: there is no auth).
    #[arg(long)]
    allow_remote: bool,
}

/// Runs `swarm otlp`.
pub(crate) async fn run(cmd: OtlpCmd, ctx: Ctx) -> ExitCode {
    match cmd {
        OtlpCmd::Import { files } => import(files, &ctx).await,
        OtlpCmd::Serve(args) => serve(args, ctx).await,
    }
}

/// `swarm otlp import FILE…`.
async fn import(files: Vec<std::path::PathBuf>, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    let booker = match Booker::new(bus, ctx) {
        Ok(b) => b,
        Err(e) => return fail("otlp import", e),
    };
    let mut all = Booked::default();
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => return fail("otlp import", format!("{}: {e}", f.display())),
        };
        let events = match otlp::parse_logs(&text) {
            Ok(e) => e,
            Err(e) => return fail("otlp import", format!("{}: {e}", f.display())),
        };
        for s in &events.skipped {
            eprintln!("swarm: otlp import: {}: skipped an event: {s}", f.display());
        }
        match booker.book(&events.calls).await {
            Ok(b) => all.merge(b),
            Err(e) => return fail("otlp import", e),
        }
    }
    all.warn();
    println!(
        "booked {} calls (${}), {} already booked, {} without a request id",
        all.booked, all.usd, all.already, all.unkeyed
    );
    ExitCode::SUCCESS
}

/// What the receiver's handlers share.
struct Receiver {
    booker: Booker,
    max_body: usize,
    /// Calls booked since the start.
    booked: AtomicU64,
    /// Calls seen already booked since the start.
    already: AtomicU64,
}

/// `swarm otlp serve`: runs the receiver until Ctrl-C or SIGTERM.
async fn serve(args: ServeArgs, ctx: Ctx) -> ExitCode {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        eprintln!(
            "swarm: otlp serve: refusing to listen on {}: not a loopback address, and the receiver \
             has no auth (anyone who reaches it books calls in the ledger). Listen on 127.0.0.1 \
             or [::1], or pass --allow-remote to mean it.",
            args.listen
        );
        return ExitCode::from(2);
    }
    // Never `ride_outages`: a request waits at most the bus's retry window
    // (5 s, `--redis-give-up`), then is answered 503 and retried by the
    // exporter.
    let ctx = Arc::new(ctx);
    let bus: Arc<dyn Bus> = if ctx.is_memory() {
        match ctx.bus(BusUse::SERVER).await {
            Ok(b) => b,
            Err(e) => return fail("cannot open the bus", e),
        }
    } else {
        let lazy = crate::lazy_bus::LazyBus::new(Arc::clone(&ctx));
        if let Err(e) = lazy.counters(&[]).await {
            eprintln!(
                "swarm: otlp serve: {}; receiving anyway: logs are answered 503 (retried by the \
                 exporter) until Redis answers",
                crate::ctx::one_line(&e.to_string())
            );
        }
        Arc::new(lazy)
    };
    let booker = match Booker::new(bus, &ctx) {
        Ok(b) => b,
        Err(e) => return fail("otlp serve", e),
    };
    let receiver = Arc::new(Receiver {
        booker,
        max_body: args.max_body_bytes as usize,
        booked: AtomicU64::new(0),
        already: AtomicU64::new(0),
    });
    let app = router(Arc::clone(&receiver));
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("otlp serve: cannot listen on {}", args.listen), e),
    };
    let shown = listener.local_addr().unwrap_or(args.listen);
    eprintln!(
        "swarm otlp serve: listening on http://{shown} (POST /v1/logs books api_request events)"
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    eprintln!(
        "swarm otlp serve: stopped; {} calls booked, {} already booked",
        receiver.booked.load(Ordering::Relaxed),
        receiver.already.load(Ordering::Relaxed)
    );
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("otlp serve", e),
    }
}

/// Resolves on Ctrl-C or (Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The routes.
fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(accepted))
        .route("/v1/traces", post(accepted))
        .fallback(unknown)
        .with_state(receiver)
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Protobuf,
    Other,
}

fn encoding(headers: &HeaderMap) -> Encoding {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        // OTLP requires the header; a body without one is tried as JSON.
        return Encoding::Json;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Encoding::Json,
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        _ => Encoding::Other,
    }
}

/// The `Content-Encoding` of a request other than `identity`, if any.
fn compression(headers: &HeaderMap) -> Option<String> {
    let ce = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())?;
    (!ce.is_empty() && ce != "identity").then_some(ce)
}

/// Anything else: 404, said on stderr (a misconfigured exporter shows here).
async fn unknown(request: Request) -> Response {
    status(
        StatusCode::NOT_FOUND,
        &format!(
            "{} {}: not an OTLP/HTTP path (POST /v1/logs, /v1/metrics, /v1/traces)",
            request.method(),
            request.uri().path()
        ),
    )
}

/// An OTLP error answer: a JSON `google.rpc.Status` (`code`, `message`),
/// also said on stderr (an exporter may log it nowhere the user looks).
fn status(code: StatusCode, message: &str) -> Response {
    eprintln!("swarm otlp serve: answered {}: {message}", code.as_u16());
    let rpc = match code {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
        StatusCode::PAYLOAD_TOO_LARGE => 8,                                // RESOURCE_EXHAUSTED
        StatusCode::SERVICE_UNAVAILABLE => 14,                             // UNAVAILABLE
        _ => 2,                                                            // UNKNOWN
    };
    (code, axum::Json(json!({ "code": rpc, "message": message }))).into_response()
}

/// `/v1/metrics`, `/v1/traces`: accepted and dropped. The answer is an empty
/// export response in the request's encoding (`{}`, or an empty protobuf
/// message: no bytes).
async fn accepted(headers: HeaderMap) -> Response {
    if encoding(&headers) == Encoding::Protobuf {
        return (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            Vec::<u8>::new(),
        )
            .into_response();
    }
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

/// `/v1/logs`: books the `api_request` events.
async fn logs(State(r): State<Arc<Receiver>>, request: Request) -> Response {
    let headers = request.headers().clone();
    if let Some(ce) = compression(&headers) {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Content-Encoding {ce} is not read here: set OTEL_EXPORTER_OTLP_COMPRESSION=none \
                 and OTEL_EXPORTER_OTLP_PROTOCOL=http/json"
            ),
        );
    }
    match encoding(&headers) {
        Encoding::Json => {}
        Encoding::Protobuf => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "OTLP protobuf is not read here: set OTEL_EXPORTER_OTLP_PROTOCOL=http/json \
                 (swarm init claude-code --otel does)",
            );
        }
        Encoding::Other => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send Content-Type: application/json (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)",
            );
        }
    }
    let too_large = || {
        status(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over {} bytes (--max-body-bytes)", r.max_body),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > r.max_body as u64) {
        return too_large();
    }
    let body: Body = request.into_body();
    let bytes = match axum::body::to_bytes(body, r.max_body).await {
        Ok(b) => b,
        Err(e) => {
            // The one failure a client can still read the answer of is the
            // limit; a broken connection has nobody to answer.
            if std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit")
            {
                return too_large();
            }
            return status(
                StatusCode::BAD_REQUEST,
                &format!("the body could not be read: {e}"),
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return status(StatusCode::BAD_REQUEST, "the body is not UTF-8 JSON");
    };
    let events = match otlp::parse_logs(text) {
        Ok(e) => e,
        Err(e) => return status(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let booked = match r.booker.book(&events.calls).await {
        Ok(b) => b,
        Err(e) => {
            let message = format!(
                "cannot book now: {}; retry later (nothing booked twice)",
                crate::ctx::one_line(&e)
            );
            let mut resp = status(StatusCode::SERVICE_UNAVAILABLE, &message);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    r.booked.fetch_add(booked.booked, Ordering::Relaxed);
    r.already.fetch_add(booked.already, Ordering::Relaxed);
    for s in &events.skipped {
        eprintln!("swarm: otlp serve: skipped an api_request event: {s}");
    }
    booked.warn();
    if !events.calls.is_empty() || !events.skipped.is_empty() {
        eprintln!(
            "swarm otlp serve: {} api_request events: {} booked (${}), {} already booked, {} without a request id, {} skipped",
            events.calls.len(),
            booked.booked,
            booked.usd,
            booked.already,
            booked.unkeyed,
            events.skipped.len()
        );
    }
    (StatusCode::OK, axum::Json(answer(&events, &booked))).into_response()
}

/// The `ExportLogsServiceResponse`: `{}`, or a partial success naming the
/// records not booked (events that could not be read, calls without an id).
fn answer(events: &otlp::Events, booked: &Booked) -> Value {
    let rejected = events.skipped.len() as u64 + booked.unkeyed;
    if rejected == 0 {
        return json!({});
    }
    let mut why: Vec<String> = events.skipped.clone();
    if booked.unkeyed > 0 {
        why.push(format!(
            "{} api_request events without a request id (not booked: a repeat could not be told apart)",
            booked.unkeyed
        ));
    }
    json!({
        "partialSuccess": {
            "rejectedLogRecords": rejected.to_string(),
            "errorMessage": why.join("; "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn encodings_are_told_by_content_type() {
        assert_eq!(encoding(&HeaderMap::new()), Encoding::Json);
        assert_eq!(
            encoding(&headers(&[(
                header::CONTENT_TYPE,
                "Application/JSON; charset=utf-8"
            )])),
            Encoding::Json
        );
        assert_eq!(
            encoding(&headers(&[(
                header::CONTENT_TYPE,
                "application/x-protobuf"
            )])),
            Encoding::Protobuf
        );
        assert_eq!(
            encoding(&headers(&[(header::CONTENT_TYPE, "text/plain")])),
            Encoding::Other
        );
        assert_eq!(
            compression(&headers(&[(header::CONTENT_ENCODING, "gzip")])).as_deref(),
            Some("gzip")
        );
        assert_eq!(
            compression(&headers(&[(header::CONTENT_ENCODING, "identity")])),
            None
        );
    }

    #[test]
    fn a_partial_success_names_what_was_not_booked() {
        let events = otlp::Events::default();
        assert_eq!(answer(&events, &Booked::default()), json!({}));
        let booked = Booked {
            unkeyed: 2,
            ..Booked::default()
        };
        let a = answer(&events, &booked);
        assert_eq!(a["partialSuccess"]["rejectedLogRecords"], "2");
        assert!(
            a["partialSuccess"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("without a request id")
        );
    }
}
