//! The dashboard of `swarm serve` in headless Chromium (Debian's `chromium`,
//! driven over WebDriver by `chromedriver`), against a real redis-server:
//!
//! - the page loads with no external asset and, with a read token, shows the
//!   spend chart with the tiers of a scripted session, a worker that beats
//!   (its tier and last beat) and the shards;
//! - a finding written with `redis-cli` appears in the live feed (server-sent
//!   events) within seconds;
//! - halt and resume work from the page with an admin token; a read token, no
//!   token, and a request without the CSRF header are refused and halt
//!   nothing.
//!
//! `SWARM_DASHBOARD_SCREENSHOT=<file.png>` also saves a screenshot there
//! (docs/dashboard.png is made so). Without Chromium the test says so and
//! passes, except in CI (`CI` set), where `.ci/run` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod serve_support;

use std::time::Duration;

use swarmbus_core::WorkerId;
use swarmbus_core::bus::WorkerRegistry;
use swarmbus_redis::{RedisBus, RedisConfig};

use serde_json::{Value, json};
use serve_support::{Browser, RedisServer, Serve, chromium, record_session, swarm, token};

fn halted(redis: &RedisServer) -> bool {
    redis.cli(&["EXISTS", "halt:reason"]).trim() == "1"
}

#[test]
fn the_dashboard_in_headless_chromium_feed_spend_and_halt() {
    let Some((chrome, driver)) = chromium() else {
        return;
    };
    let redis = RedisServer::start();
    let url = redis.url();
    let read = token(&url, None, "read");
    let admin = token(&url, None, "admin");
    record_session(&url, None);
    for (title, tags) in [
        ("Shard 3 cools down after 14 requests a minute", "gemini"),
        ("Haiku summaries match Sonnet on the 20 test papers", "eval"),
    ] {
        let out = swarm(&url, None)
            .args(["findings", "put", "--title", title, "--body", "b"])
            .args(["--tag", tags, "--worker", "haiku-1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A worker that beats, through the library as `swarm worker run` does.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let bus = RedisBus::connect(RedisConfig::from_url(&url).unwrap())
            .await
            .unwrap();
        bus.heartbeat(&WorkerId::new("haiku-1").unwrap(), Duration::from_secs(600))
            .await
            .unwrap();
    });
    redis.cli(&["SET", "librarian:shard1:quota", "1450"]);
    let serve = Serve::start(&url, None, &["--require-auth"]);
    let base = serve.base.clone();

    // Over plain HTTP first: the page needs no token and names no outside
    // address; its data does.
    let http = reqwest::blocking::Client::new();
    let html = http.get(format!("{base}/")).send().unwrap();
    assert_eq!(html.status(), 200);
    assert!(
        html.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = html.text().unwrap();
    for outside in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(outside), "external asset: {outside}");
    }
    assert_eq!(
        http.get(format!("{base}/api/state"))
            .send()
            .unwrap()
            .status(),
        401
    );
    // An admin token without the CSRF header, or with a form's body: refused.
    let no_csrf = http
        .post(format!("{base}/api/halt"))
        .bearer_auth(&admin)
        .json(&json!({"reason": "x"}))
        .send()
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let form = http
        .post(format!("{base}/api/halt"))
        .bearer_auth(&admin)
        .header("x-swarm-csrf", "1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=x")
        .send()
        .unwrap();
    assert_eq!(form.status(), 403);
    // The DNS-rebinding guard: a foreign Host is refused.
    let rebound = http
        .get(format!("{base}/api/state"))
        .bearer_auth(&admin)
        .header("host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(rebound.status(), 403);
    assert!(!halted(&redis));

    let browser = Browser::start(&chrome, &driver, 1100, 1250);
    // A read token: the chart, the worker, the shards; no halt control.
    browser.goto(&format!("{base}/#token={read}"));
    browser.wait_for(
        "the chart shows the three tiers",
        "const t=[...document.querySelectorAll('#chart text.tier')].map(e=>e.dataset.tier); \
         return ['gemini','haiku','sonnet'].every(x=>t.includes(x))",
        Duration::from_secs(15),
    );
    assert_eq!(
        browser.eval("return location.hash"),
        json!(""),
        "the token left the address bar"
    );
    let text = browser.eval("return document.body.innerText");
    let text = text.as_str().unwrap();
    assert!(text.contains("role: read"), "{text}");
    // 3 haiku calls of 4 haiku + sonnet calls.
    assert_eq!(
        browser.eval("return document.getElementById('shareCalls').textContent"),
        json!("75.0 %")
    );
    assert!(text.contains("claude-haiku-5-5"), "{text}");
    let worker_row = browser
        .eval("return [...document.querySelectorAll('#workers tr')].map(r=>r.innerText).join('|')");
    assert!(
        worker_row.as_str().unwrap().contains("haiku-1\thaiku"),
        "{worker_row}"
    );
    let shard_row = browser
        .eval("return [...document.querySelectorAll('#shards tr')].map(r=>r.innerText).join('|')");
    assert!(shard_row.as_str().unwrap().contains("1450"), "{shard_row}");
    assert_eq!(
        browser.eval("return document.getElementById('haltForm').hidden"),
        json!(true)
    );
    browser.wait_for(
        "the feed starts with the stored findings",
        "return document.querySelectorAll('#feed li.finding').length === 2",
        Duration::from_secs(10),
    );

    // A finding written around the library reaches the open page.
    redis.cli(&[
        "SET",
        "finding:from_redis_cli",
        "Written with redis-cli\nby a shell script on another machine",
    ]);
    let took = browser.wait_for(
        "the redis-cli finding in the feed",
        "return [...document.querySelectorAll('#feed li.finding')].some(l=>l.textContent.includes('Written with redis-cli'))",
        Duration::from_secs(10),
    );
    eprintln!("dashboard: redis-cli finding in the feed after {took:?}");

    // The read token may not halt, even by hand from the page.
    let status = browser.eval_async(
        "fetch('/api/halt',{method:'POST',headers:{'Authorization':'Bearer '+sessionStorage.getItem('swarm-token'),\
         'Content-Type':'application/json','X-Swarm-Csrf':'1'},body:'{\"reason\":\"read\"}'}).then(r=>done(r.status))",
    );
    assert_eq!(status, json!(403));
    let status = browser.eval_async(
        "fetch('/api/halt',{method:'POST',headers:{'Content-Type':'application/json','X-Swarm-Csrf':'1'},\
         body:'{\"reason\":\"none\"}'}).then(r=>done(r.status))",
    );
    assert_eq!(status, json!(401));
    assert!(!halted(&redis), "refused requests halt nothing");

    // An admin token: halt from the page, the banner, resume.
    browser.goto(&format!("{base}/#token={admin}"));
    browser.wait_for(
        "the halt control for an admin",
        "return document.getElementById('haltForm').hidden === false",
        Duration::from_secs(10),
    );
    browser.wait_for(
        "the feed for an admin",
        "return document.querySelectorAll('#feed li.finding').length === 3",
        Duration::from_secs(10),
    );
    if let Ok(path) = std::env::var("SWARM_DASHBOARD_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot_png()).unwrap();
        eprintln!("dashboard: screenshot in {path}");
    }
    browser.eval(
        "document.getElementById('haltReason').value='shard 2 failed during paper generation'; \
         document.getElementById('haltBtn').click(); return null",
    );
    browser.wait_for(
        "the halt banner",
        "return getComputedStyle(document.getElementById('halt')).display === 'block'",
        Duration::from_secs(10),
    );
    assert!(halted(&redis));
    let banner = browser.eval("return document.getElementById('haltText').textContent");
    assert!(
        banner
            .as_str()
            .unwrap()
            .contains("shard 2 failed during paper generation"),
        "{banner}"
    );
    browser.eval("document.getElementById('resume').click(); return null");
    browser.wait_for(
        "the banner gone after resume",
        "return getComputedStyle(document.getElementById('halt')).display === 'none'",
        Duration::from_secs(10),
    );
    assert!(!halted(&redis));
    let state: Value = http
        .get(format!("{base}/api/state"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(state["halted"].is_null(), "{state}");
}
