//! `swarm serve`: the swarm over HTTP, for agents on other machines and for
//! the operator's browser.
//!
//! - `/mcp`: the MCP server of `swarm mcp` (same tools) over the protocol's
//!   Streamable HTTP transport (rmcp), behind bearer-token auth ([`auth`])
//!   and a per-token rate limit ([`limit`]).
//! - `/`: the dashboard ([`dashboard`]), its data under `/api/`.
//! - `/metrics`: Prometheus text ([`metrics`]).
//! - `/healthz` (the process is up) and `/readyz` (the bus answers).
//!
//! Auth is required on every listen address that is not loopback (the server
//! refuses to start without a token in its namespace) and, on loopback, with
//! `--require-auth`. Tokens are never logged: a request is known by its
//! token's id.

pub(crate) mod auth;
mod dashboard;
mod limit;
mod metrics;
mod token_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use swarmbus_core::bus::Bus;
use swarmbus_redis::RedisBus;

use crate::ctx::{BusUse, Ctx, fail};
use crate::mcp::{McpArgs, SwarmMcp};

pub(crate) use token_cmd::{TokenCmd, run as token_run};

use auth::{Role, TokenRecord};

/// The largest MCP request body read (bulk writes included).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Options of `swarm serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Anything but loopback requires tokens.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Require a bearer token on loopback too (other users of a shared
    /// machine reach loopback).
    #[arg(long)]
    require_auth: bool,
    /// Requests per second allowed to one token (or, without auth, to one
    /// client address); bursts up to twice that.
    #[arg(long, default_value_t = 50.0)]
    rate_limit: f64,
    /// PEM certificate chain: serve HTTPS (with `--tls-key`).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Host names (or host:port) clients use to reach this server, checked
    /// against the `Host` header (DNS-rebinding protection). Default: the
    /// loopback names, plus any host when listening on a non-loopback
    /// address with auth on.
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    #[command(flatten)]
    mcp: McpArgs,
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    bus: Arc<dyn Bus>,
    redis: Option<RedisBus>,
    auth: bool,
    namespace: String,
    limiter: Arc<limit::Limiter>,
    metrics: Arc<metrics::Metrics>,
    ctx: Arc<Ctx>,
    /// Host names `/api/` answers (DNS-rebinding protection of a loopback
    /// server); `None`: any.
    api_hosts: Option<Arc<Vec<String>>>,
}

/// The caller of a request, once authenticated.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Who: the token's id, or `anonymous` without auth.
    pub(crate) who: String,
    /// What it may do.
    pub(crate) role: Role,
}

/// Runs the server until interrupted.
pub(crate) async fn run(args: ServeArgs, ctx: Ctx) -> ExitCode {
    let loopback = args.listen.ip().is_loopback();
    let auth = !loopback || args.require_auth;
    if ctx.is_memory() && auth {
        eprintln!(
            "swarm: serve: tokens live in Redis; with --memory serve only on loopback without --require-auth"
        );
        return ExitCode::from(2);
    }
    let bus = match ctx.bus(BusUse::SERVER).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    // The tokens live in Redis (none on the in-process bus).
    let redis: Option<RedisBus> = ctx.redis();
    let namespace = ctx.namespace_name();
    if auth {
        let Some(r) = &redis else {
            return ExitCode::from(2);
        };
        match r.auth_tokens().await {
            Ok(t) if t.is_empty() => {
                eprintln!(
                    "swarm: serve: {} needs tokens and namespace {:?} has none; make one with `swarm token create --role write` (same --namespace)",
                    if loopback {
                        "--require-auth"
                    } else {
                        "a non-loopback address"
                    },
                    namespace
                );
                return ExitCode::from(2);
            }
            Ok(_) => {}
            Err(e) => return fail("cannot read the tokens", e),
        }
    }
    let ctx = Arc::new(ctx);
    let server = SwarmMcp::new(
        bus.clone(),
        Arc::clone(&ctx),
        args.mcp.offline,
        args.mcp.model.clone(),
    );
    let api_hosts = if !args.allowed_hosts.is_empty() {
        Some(Arc::new(args.allowed_hosts.clone()))
    } else if loopback {
        Some(Arc::new(
            ["localhost", "127.0.0.1", "[::1]", "::1"]
                .map(String::from)
                .to_vec(),
        ))
    } else {
        None
    };
    let mut config = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_BODY);
    config = if !args.allowed_hosts.is_empty() {
        config.with_allowed_hosts(args.allowed_hosts.clone())
    } else if !loopback {
        // Tokens guard every request; the Host check guards loopback
        // servers against DNS rebinding, which does not apply here.
        config.disable_allowed_hosts()
    } else {
        config
    };
    let mcp_service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    let state = AppState {
        bus,
        redis,
        auth,
        namespace,
        limiter: Arc::new(limit::Limiter::new(args.rate_limit)),
        metrics: Arc::new(metrics::Metrics::new()),
        ctx: Arc::clone(&ctx),
        api_hosts,
    };
    let app = router(state, mcp_service);
    tracing::info!(listen = %args.listen, auth, "swarm serve");
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = match axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await {
                Ok(t) => t,
                Err(e) => return fail("cannot read the TLS certificate or key", e),
            };
            eprintln!("swarm serve: https://{}/ (mcp at /mcp)", args.listen);
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                h.graceful_shutdown(Some(Duration::from_secs(5)));
            });
            match axum_server::bind_rustls(args.listen, tls)
                .handle(handle)
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail("serve", e),
            }
        }
        _ => {
            let listener = match tokio::net::TcpListener::bind(args.listen).await {
                Ok(l) => l,
                Err(e) => return fail(&format!("cannot listen on {}", args.listen), e),
            };
            let shown = listener.local_addr().unwrap_or(args.listen);
            eprintln!("swarm serve: http://{shown}/ (mcp at /mcp)");
            match axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail("serve", e),
            }
        }
    }
}

/// The routes.
fn router(state: AppState, mcp: StreamableHttpService<SwarmMcp, LocalSessionManager>) -> Router {
    let guarded = Router::new()
        .nest_service("/mcp", mcp)
        .route("/metrics", get(metrics::scrape))
        .route("/api/state", get(dashboard::state))
        .route("/api/feed", get(dashboard::feed))
        .route("/api/halt", axum::routing::post(dashboard::halt))
        .route("/api/resume", axum::routing::post(dashboard::resume))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/", get(dashboard::page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(guarded)
        .with_state(state)
}

/// `/readyz`: 200 when the bus answers, else 503 with why.
async fn ready(State(state): State<AppState>) -> Response {
    match state.bus.count_findings().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", crate::ctx::one_line(&e.to_string())),
        )
            .into_response(),
    }
}

/// An error answer with a JSON body `{"error": …}`.
fn refuse(status: StatusCode, message: &str) -> Response {
    let mut r = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"swarm\""),
        );
    }
    r
}

/// Authenticates, rate-limits and authorises a request, and times MCP tool
/// calls. Nothing behind it runs for a refused request.
async fn guard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let grant = if state.auth {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::bearer);
        let Some(presented) = presented else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required: Authorization: Bearer <token> (swarm token create)",
            );
        };
        let Some(redis) = &state.redis else {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "no token store");
        };
        let stored = match redis.auth_tokens().await {
            Ok(s) => s,
            Err(e) => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "cannot check the token now: {}",
                        crate::ctx::one_line(&e.to_string())
                    ),
                );
            }
        };
        match auth::find(presented, &stored) {
            Some(TokenRecord {
                id,
                role,
                namespace,
                ..
            }) if namespace == state.namespace => Grant { who: id, role },
            Some(record) => {
                tracing::warn!(token = %record.id, "token of another namespace refused");
                return refuse(StatusCode::FORBIDDEN, "this token grants another namespace");
            }
            None => {
                return refuse(StatusCode::UNAUTHORIZED, "unknown or revoked token");
            }
        }
    } else {
        Grant {
            who: format!("anonymous@{}", peer.ip()),
            role: Role::Admin,
        }
    };
    if let Err(wait) = state.limiter.check(&grant.who, Instant::now()) {
        let secs = wait.as_secs().max(1);
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("rate limit of this token reached; retry in {secs} s"),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let path = request.uri().path().to_string();
    if path == "/metrics" {
        return next.run(request).await;
    }
    if path.starts_with("/api/") {
        if let Some(hosts) = &state.api_hosts {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !host_allowed(host, hosts) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this Host is not served (--allowed-host)",
                );
            }
        }
        let mut request = request;
        request.extensions_mut().insert(grant);
        return next.run(request).await;
    }
    // MCP: read the body once to learn the method and tool.
    let (mut parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {MAX_BODY} bytes"),
            );
        }
    };
    let calls = rpc_calls(&bytes);
    let needed = calls
        .iter()
        .map(|(m, t)| auth::needed_role(m, t.as_deref()))
        .max()
        .unwrap_or(Role::Read);
    if needed > grant.role {
        tracing::info!(token = %grant.who, needed = %needed, "request refused: role");
        return refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "this token's role is {}; {} needs {}",
                grant.role,
                calls
                    .iter()
                    .find_map(|(_, t)| t.clone())
                    .unwrap_or_else(|| "this request".into()),
                needed
            ),
        );
    }
    let tool = calls
        .iter()
        .find(|(m, _)| m == "tools/call")
        .and_then(|(_, t)| t.clone());
    parts.extensions.insert(grant);
    let started = Instant::now();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let Some(tool) = tool else {
        return response;
    };
    if !response.status().is_success() {
        state.metrics.observe_tool(&tool, false, started.elapsed());
        return response;
    }
    // The answer is JSON or, in a session, an SSE stream that ends after it:
    // the call is timed until its body is done, and a tool that failed
    // (HTTP 200 with `isError`, or a JSON-RPC error) is counted as failed.
    let (parts, body) = response.into_parts();
    let mut observed = ToolCall {
        metrics: Arc::clone(&state.metrics),
        tool,
        started,
        failed: false,
    };
    let stream = body.into_data_stream().map(move |chunk| {
        // The whole record lives in the stream (dropped with it).
        let observed = &mut observed;
        if let Ok(bytes) = &chunk
            && (contains(bytes, b"\"isError\":true") || contains(bytes, b",\"error\":{"))
        {
            observed.failed = true;
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// One MCP tool call being answered; recorded when its answer is done.
struct ToolCall {
    metrics: Arc<metrics::Metrics>,
    tool: String,
    started: Instant,
    failed: bool,
}

impl Drop for ToolCall {
    fn drop(&mut self) {
        self.metrics
            .observe_tool(&self.tool, !self.failed, self.started.elapsed());
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a `Host` header (`name` or `name:port`) names an allowed host
/// (given as `name` or `name:port`).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(n, _)| n)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    allowed.iter().any(|a| {
        let a = a.as_str();
        a.eq_ignore_ascii_case(host)
            || a.eq_ignore_ascii_case(name)
            || a.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(name)
    })
}

/// The (method, tool name) of each JSON-RPC message in a body; nothing for a
/// body that is not JSON (the MCP layer answers it).
fn rpc_calls(body: &[u8]) -> Vec<(String, Option<String>)> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let one = |v: &Value| {
        let method = v.get("method").and_then(Value::as_str)?.to_string();
        let tool = v
            .get("params")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Some((method, tool))
    };
    match &value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        v => one(v).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_of_loopback() {
        let allowed: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .map(String::from)
            .to_vec();
        assert!(host_allowed("127.0.0.1:8787", &allowed));
        assert!(host_allowed("localhost", &allowed));
        assert!(host_allowed("[::1]:8787", &allowed));
        assert!(!host_allowed("evil.example:8787", &allowed));
        assert!(!host_allowed("", &allowed));
    }
}
