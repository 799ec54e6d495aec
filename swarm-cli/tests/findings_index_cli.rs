//! `swarm findings export | import | check` on a real Redis: an export
//! imported into another namespace exports the same lines again, the
//! imported findings are searchable, and the index checks clean.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write;
use std::process::{Command, Output, Stdio};

use swarmbus_redis::testing::RedisServer;

fn swarm(url: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .current_dir(dir.path())
        .env("REDIS_URL", url)
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_SESSION")
        .env_remove("SWARM_WORKER")
        .env_remove("GEMINI_API_KEY_SHARD1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn export_then_import_round_trips_and_the_index_checks_clean() {
    let server = RedisServer::start();
    let url = server.url();
    for (title, tag) in [
        ("Redis failover", "redis"),
        ("Gemini quota", "quota"),
        ("Straße", "unicode"),
    ] {
        ok(swarm(
            &url,
            &[
                "--namespace",
                "src",
                "findings",
                "put",
                "--title",
                title,
                "--body",
                "measured",
                "--tag",
                tag,
            ],
            None,
        ));
    }
    let exported = ok(swarm(
        &url,
        &["--namespace", "src", "findings", "export"],
        None,
    ));
    assert_eq!(exported.lines().count(), 3, "{exported}");
    let imported = ok(swarm(
        &url,
        &["--namespace", "dst", "findings", "import", "-"],
        Some(exported.as_bytes()),
    ));
    assert_eq!(imported.trim(), "3 new of 3 read");
    // Again: nothing new, the same content is already there.
    let again = ok(swarm(
        &url,
        &["--namespace", "dst", "findings", "import", "-"],
        Some(exported.as_bytes()),
    ));
    assert_eq!(again.trim(), "0 new of 3 read");
    let round = ok(swarm(
        &url,
        &["--namespace", "dst", "findings", "export"],
        None,
    ));
    assert_eq!(round, exported);
    let found = ok(swarm(
        &url,
        &[
            "--namespace",
            "dst",
            "findings",
            "list",
            "--query",
            "STRASSE",
            "--json",
        ],
        None,
    ));
    let page: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["findings"][0]["title"], "Straße");
    let check = ok(swarm(
        &url,
        &["--namespace", "dst", "findings", "check", "--json"],
        None,
    ));
    let report: serde_json::Value = serde_json::from_str(&check).unwrap();
    assert_eq!(report["findings"], 3);
    assert_eq!(
        report["missing"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    // A line that is not a finding stops the import with its line number.
    let bad = swarm(
        &url,
        &["--namespace", "dst", "findings", "import", "-"],
        Some(b"{\"not\": \"a finding\"}\n"),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 1"));
}
