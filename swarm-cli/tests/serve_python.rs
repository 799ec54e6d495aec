//! `swarm serve` under the official Python MCP client (PyPI `mcp`) over
//! Streamable HTTP (`tests/py/mcp_http_client.py`): with a write token it
//! lists the tools, stores a finding and reads it back; with a wrong, a
//! revoked or another namespace's token the server refuses it and nothing is
//! stored.
//!
//! The package lives in a venv: `SWARM_PY_VENV`, else `~/.cache/swarm/py-mcp`
//! (`.ci/run` makes it). Without it the test says so and passes, except in
//! CI (`CI` set), where it fails unless `.ci/run` found PyPI unreachable
//! (`SWARM_PY_SKIP` says why).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod serve_support;

use std::process::Command;

use serde_json::Value;
use serve_support::{RedisServer, Serve, revoke_role, token};

fn python() -> Option<String> {
    let venv = std::env::var("SWARM_PY_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/swarm/py-mcp",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let py = format!("{venv}/bin/python");
    let ok = Command::new(&py)
        .env_remove("LD_PRELOAD")
        .args(["-c", "import mcp.client.streamable_http"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    if let Ok(why) = std::env::var("SWARM_PY_SKIP") {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: no venv with the PyPI mcp package at {venv} (.ci/run makes it)"
    );
    eprintln!(
        "SKIPPED: no venv with PyPI mcp at {venv} (python3 -m venv {venv} && {venv}/bin/pip install mcp)"
    );
    None
}

/// Runs the client against `base` with `token`: (exit status, its JSON line).
fn client(py: &str, base: &str, token: &str) -> (Option<i32>, Value) {
    // A client from outside: never under the clock check's libfaketime.
    let out = Command::new(py)
        .env_remove("LD_PRELOAD")
        .env_remove("FAKETIME")
        .arg(format!(
            "{}/tests/py/mcp_http_client.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(format!("{base}/mcp"))
        .arg(token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), serde_json::from_str(line).unwrap())
}

fn count(redis: &RedisServer, ns: &str) -> String {
    redis
        .cli(&["ZCARD", &format!("{{{ns}}}:swarm:findings")])
        .trim()
        .to_string()
}

#[test]
fn the_official_python_client_over_streamable_http_with_tokens() {
    let Some(py) = python() else { return };
    let redis = RedisServer::start();
    let url = redis.url();
    let write = token(&url, Some("py"), "write");
    let foreign = token(&url, Some("other"), "write");
    let serve = Serve::start(&url, Some("py"), &["--require-auth"]);

    let (code, v) = client(&py, &serve.base, &write);
    assert_eq!(code, Some(0), "{v}");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "put_finding",
        "get_finding",
        "search_findings",
        "swarm_status",
        "ask_librarian",
        "halt_swarm",
    ] {
        assert!(tools.contains(&t), "{t} missing from {tools:?}");
    }
    assert!(
        v["protocol"].as_str().unwrap().starts_with("20"),
        "negotiated a protocol version: {v}"
    );
    assert_eq!(v["get"]["title"], "from python");
    assert_eq!(v["get"]["worker"], "py-1");
    assert_eq!(v["get"]["id"], v["put"]["id"]);
    assert_eq!(count(&redis, "py"), "1");

    // Refused: a wrong token, another namespace's, then the revoked one.
    let mut wrong = write.clone();
    wrong.pop();
    wrong.push(if write.ends_with('0') { '1' } else { '0' });
    for (what, t) in [("wrong", wrong.as_str()), ("other namespace", &foreign)] {
        let (code, v) = client(&py, &serve.base, t);
        assert_eq!(code, Some(3), "{what}: {v}");
        assert_eq!(v["ok"], false, "{what}: {v}");
    }
    revoke_role(&url, Some("py"), "write");
    let (code, v) = client(&py, &serve.base, &write);
    assert_eq!(code, Some(3), "revoked: {v}");
    assert_eq!(count(&redis, "py"), "1", "refused clients stored nothing");
    assert_eq!(count(&redis, "other"), "0");
}
