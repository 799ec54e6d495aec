//! `swarm findings export | import | check` on a real Redis: an export
//! imported into another namespace exports the same lines again, the
//! imported findings are searchable, and the index checks clean; `update`,
//! `delete`, `show --version`, `expire` and an export that carries the
//! versions and tombstones into another namespace.

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
    assert_eq!(
        imported.trim(),
        "3 new of 3 read; 0 of 0 histories restored"
    );
    // Again: nothing new, the same content is already there.
    let again = ok(swarm(
        &url,
        &["--namespace", "dst", "findings", "import", "-"],
        Some(exported.as_bytes()),
    ));
    assert_eq!(again.trim(), "0 new of 3 read; 0 of 0 histories restored");
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

#[test]
fn updates_and_deletes_keep_versions_that_show_and_export_carry() {
    let server = RedisServer::start();
    let url = server.url();
    let ns = |args: &[&str]| {
        let mut all = vec!["--namespace", "src", "findings"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        swarm(&url, &refs, None)
    };
    let put = ok(run(ns(&[
        "put",
        "--title",
        "failover",
        "--body",
        "sentinel 9 s",
        "--json",
    ])));
    let id = serde_json::from_str::<serde_json::Value>(&put).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = ok(run(ns(&[
        "put", "--title", "quota", "--body", "resets", "--json",
    ])));
    let other = serde_json::from_str::<serde_json::Value>(&other).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = ok(run(ns(&["update", &id, "--body", "raft 2 s", "--json"])));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&up).unwrap()["version"],
        2
    );
    let v1 = ok(run(ns(&["show", &id, "--version", "1", "--json"])));
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(
        (v1["body"].as_str(), v1["current"].as_bool()),
        (Some("sentinel 9 s"), Some(false))
    );
    let v2 = ok(run(ns(&["show", &id, "--version", "2", "--json"])));
    assert!(v2.contains("raft 2 s"), "{v2}");
    let none = run(ns(&["show", &id, "--version", "7"]));
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no version 7"));
    let nothing = run(ns(&["update", &id]));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to change"));

    ok(run(ns(&["delete", &other])));
    let listed = ok(run(ns(&["list", "--json"])));
    let page: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(page["total"], 1, "{page}");
    let unknown = run(ns(&["delete", "nosuch"]));
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no finding with id nosuch"));
    let hist = ok(run(ns(&["show", &other, "--history"])));
    assert!(hist.contains("\"reason\":\"deleted\""), "{hist}");

    let exported = ok(run(ns(&["export"])));
    assert_eq!(
        exported.lines().count(),
        3,
        "one finding, two histories: {exported}"
    );
    let imported = ok(swarm(
        &url,
        &["--namespace", "dst", "findings", "import", "-"],
        Some(exported.as_bytes()),
    ));
    assert_eq!(
        imported.trim(),
        "1 new of 1 read; 2 of 2 histories restored"
    );
    let round = ok(swarm(
        &url,
        &["--namespace", "dst", "findings", "export"],
        None,
    ));
    assert_eq!(round, exported);

    // Expiry: past its time the finding is gone from every read.
    ok(run(ns(&["expire", &id, "--at", "2000-01-01T00:00:00Z"])));
    let listed = ok(run(ns(&["list", "--json"])));
    let page: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(page["total"], 0, "{page}");
    let hist = ok(run(ns(&["show", &id, "--history"])));
    assert!(hist.contains("\"reason\":\"expired\""), "{hist}");
}
