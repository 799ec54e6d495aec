//! Shared by the `swarm serve` tests: tokens made with the built
//! `swarm token create`, a running `swarm serve` (its address read from its
//! first line on stderr), scripted spend through `swarm cost record`, and a
//! small WebDriver client for headless Chromium (Debian's `chromium` and
//! `chromium-driver`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
pub(crate) use swarmbus_redis::testing::RedisServer;

/// `swarm …` with a clean environment pointing at `url` (`ns`: namespace).
pub(crate) fn swarm(url: &str, ns: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarm"));
    c.env("REDIS_URL", url)
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_MEMORY")
        .env_remove("SWARM_NOW")
        .env_remove("GEMINI_API_KEY_SHARD1");
    if let Some(ns) = ns {
        c.env("SWARM_NAMESPACE", ns);
    }
    c
}

/// Creates a token with `role` and returns it.
pub(crate) fn token(url: &str, ns: Option<&str>, role: &str) -> String {
    let out = swarm(url, ns)
        .args(["token", "create", "--role", role, "--label", "test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(t.starts_with("swm_"), "{t}");
    t
}

/// Revokes every token of `role` in `ns` (by the ids `swarm token list`
/// shows).
pub(crate) fn revoke_role(url: &str, ns: Option<&str>, role: &str) {
    let list = swarm(url, ns).args(["token", "list"]).output().unwrap();
    let listing = String::from_utf8(list.stdout).unwrap();
    for id in listing
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(1) == Some(role))
        .filter_map(|l| l.split_whitespace().next())
    {
        let out = swarm(url, ns)
            .args(["token", "revoke", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{listing}");
    }
}

/// A scripted session's calls: (tier, model, input, output, cache read).
pub(crate) const SESSION: &[(&str, &str, u64, u64, u64)] = &[
    ("sonnet", "claude-sonnet-5-5", 1510, 123, 0),
    ("haiku", "claude-haiku-5-5", 707, 29, 211),
    ("haiku", "claude-haiku-5-5", 811, 63, 0),
    ("haiku", "claude-haiku-5-5", 953, 47, 100),
    ("gemini", "gemini-3.5-flash-lite", 4000, 300, 0),
];

/// Records [`SESSION`] in the ledger with `swarm cost record` (at a fixed
/// time: the prices in force then, whatever day the test runs).
pub(crate) fn record_session(url: &str, ns: Option<&str>) {
    for (i, (tier, model, input, output, cache)) in SESSION.iter().enumerate() {
        let out = swarm(url, ns)
            .args(["cost", "record", "--tier", tier, "--model", model])
            .args(["--input-tokens", &input.to_string()])
            .args(["--output-tokens", &output.to_string()])
            .args(["--cache-read-tokens", &cache.to_string()])
            .args(["--worker", &format!("{tier}-{i}")])
            .args(["--at", &format!("2026-11-20T10:0{i}:00Z")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A running `swarm serve`, killed on drop.
pub(crate) struct Serve {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

impl Serve {
    /// `swarm serve --offline --listen 127.0.0.1:0 <extra>`.
    pub(crate) fn start(url: &str, ns: Option<&str>, extra: &[&str]) -> Serve {
        let mut child = swarm(url, ns)
            .args(["serve", "--offline", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("swarm serve exited: {:?}", child.try_wait()))
                .unwrap();
            if let Some(rest) = line.strip_prefix("swarm serve: ") {
                break rest
                    .split(' ')
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Serve { child, base }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this test must run (CI) rather than skip when a tool is missing.
pub(crate) fn required() -> bool {
    std::env::var_os("CI").is_some()
}

/// The Chromium and ChromeDriver binaries, when installed.
pub(crate) fn chromium() -> Option<(String, String)> {
    let browser = std::env::var("SWARM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver =
        std::env::var("SWARM_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    if std::path::Path::new(&browser).exists() && std::path::Path::new(&driver).exists() {
        return Some((browser, driver));
    }
    assert!(
        !required(),
        "CI: {browser} or {driver} is missing (.ci/run installs Debian's chromium and chromium-driver)"
    );
    eprintln!(
        "SKIPPED: headless Chromium needs {browser} and {driver} (apt-get install chromium chromium-driver)"
    );
    None
}

/// A headless Chromium driven over WebDriver (W3C, plain HTTP + JSON).
pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session of `width`×`height`.
    pub(crate) fn start(browser: &str, driver: &str, width: u32, height: u32) -> Browser {
        let port = free_port();
        // The browser is a client from outside: never under the clock
        // check's libfaketime (scripts/clock-check.sh).
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .env_remove("LD_PRELOAD")
            .env_remove("FAKETIME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Browser {
            driver: child,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self.http.request(
            method,
            format!("{}/session/{}{path}", self.base, self.session),
        );
        if !body.is_null() {
            req = req.json(&body);
        }
        let r: Value = req.send().unwrap().json().unwrap();
        assert!(r["value"]["error"].is_null(), "WebDriver {path}: {r}");
        r["value"].clone()
    }

    /// Opens `url`.
    pub(crate) fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `return` its value) in the page.
    pub(crate) fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Runs `script`, which calls `done(value)` (the last argument) when done.
    pub(crate) fn eval_async(&self, script: &str) -> Value {
        let body = format!("const done = arguments[arguments.length - 1]; {script}");
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": body, "args": []}),
        )
    }

    /// Polls `script` until it returns `true`; how long that took.
    pub(crate) fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.eval(script) == Value::Bool(true) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "{what}: not within {timeout:?}; page: {}",
                self.eval("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page as a PNG.
    pub(crate) fn screenshot_png(&self) -> Vec<u8> {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", Value::Null);
        base64_decode(b64.as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (WebDriver's screenshots), padding and whitespace ignored.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
