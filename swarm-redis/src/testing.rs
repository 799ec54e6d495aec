//! Test support (feature `testing`): real `redis-server` processes on free
//! loopback ports, started by a test and stopped when dropped (like
//! redis-rs's own tests). Every crate of the workspace runs its Redis tests
//! on these.
//!
//! - [`RedisServer::start`]: one throw-away server (`--save "" --appendonly no`).
//! - [`RedisServer::start_persistent`]: `--appendonly yes` in a temp dir, so
//!   [`RedisServer::restart`] brings the same data back.
//! - [`RedisCluster::start`]: three masters joined with `redis-cli --cluster create`.
//! - [`single_node_url`]: `REDIS_URL` when set (an existing server), else a
//!   server started here.
//!
//! A missing `redis-server` fails the test with the command that installs it:
//! the suite never skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use swarmbus_core::keys::Namespace;

pub use crate::fault_proxy::{Fault, FaultProxy};
use crate::{RedisBus, RedisConfig};

const INSTALL_HINT: &str = "redis-server is required by the swarmbus-redis tests: \
     install it with `apt-get install redis-server` (it provides redis-server and redis-cli)";

/// A command for one of Redis's own programs, on the real clock: a test run
/// under `libfaketime` (the clock check in `scripts/clock-check.sh` runs the
/// suite at other "today"s) fakes only the tests, never `redis-server` or
/// `redis-cli`, whose event loop hangs on a faked clock.
pub fn redis_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "LD_PRELOAD",
        "FAKETIME",
        "FAKETIME_DONT_FAKE_MONOTONIC",
        "FAKETIME_SKIP_CMDS",
        "FAKETIME_NO_CACHE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn require(binary: &str) {
    match redis_command(binary).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("{binary} --version failed ({}): {INSTALL_HINT}", out.status),
        Err(e) => panic!("{binary} not found ({e}): {INSTALL_HINT}"),
    }
}

/// Ports handed out by this process, so parallel tests never pick the same.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A free loopback port whose cluster-bus twin (port + 10000) is free too.
pub fn free_port() -> u16 {
    if NEXT_PORT.load(Ordering::Relaxed) == 0 {
        // Spread test binaries running at the same time over the range.
        let seed = (std::process::id() as u16 % 200) * 40;
        let _ = NEXT_PORT.compare_exchange(0, 20_000 + seed, Ordering::SeqCst, Ordering::SeqCst);
    }
    for _ in 0..10_000 {
        let mut port = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        if port >= 29_999 {
            NEXT_PORT.store(20_000, Ordering::SeqCst);
            port = 20_000;
        }
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// Sends one inline command over a raw socket and returns the reply (its
/// first 2 KiB), trimmed.
fn raw_command(port: u16, command: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 2048];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl RedisServer {
    /// A throw-away server: nothing saved.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server that keeps its data in an append-only file in its own temp
    /// dir (fsync every write), so a restart brings it back.
    pub fn start_persistent() -> Self {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    /// A server with extra arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        require("redis-server");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--dir".into(), dir.path().display().to_string()]);
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            args,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    fn spawn(&mut self) -> bool {
        let child = redis_command("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--protected-mode")
            .arg("no")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): {INSTALL_HINT}"));
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until the server answers PING (false if it exited).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return false;
            }
            if raw_command(self.port, "PING").as_deref() == Some("+PONG") {
                // Another test process may have started a server on the same
                // port a moment earlier (ours then exits): only the server
                // running in our own directory counts.
                let ours = raw_command(self.port, "CONFIG GET dir")
                    .is_some_and(|reply| reply.contains(&self.dir.path().display().to_string()));
                if !ours && let Some(mut child) = self.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return ours;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its working directory (append-only file, cluster config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `redis-cli -p <port> <args…>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// Shuts the server down cleanly (the append-only file is flushed) and
    /// waits for the process to end.
    pub fn stop(&mut self) {
        let _ = raw_command(self.port, "SHUTDOWN");
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Shuts the server down and starts it again on the same port and dir.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped server again on the same port and dir.
    pub fn start_again(&mut self) {
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            // The port may linger for a moment after the old process.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `redis-cli -p <port> <args…>`.
pub fn cli(port: u16, args: &[&str]) -> String {
    require("redis-cli");
    let out = redis_command("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): {INSTALL_HINT}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A local Redis Cluster of three masters (no replicas).
#[derive(Debug)]
pub struct RedisCluster {
    /// The three masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters, joins them with `redis-cli --cluster create`
    /// and waits for `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_behind(|port| port)
    }

    /// Starts three masters that announce another client port to the
    /// Cluster (`cluster-announce-port`): `front(real port)` returns the
    /// port clients are sent to, typically a [`FaultProxy`] in front of the
    /// node. The nodes still talk to each other on their real bus ports.
    pub fn start_behind(mut front: impl FnMut(u16) -> u16) -> Self {
        require("redis-cli");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
            })
            .collect();
        for node in &nodes {
            let announced = front(node.port);
            if announced != node.port {
                let port = announced.to_string();
                let bus = (u32::from(node.port) + 10_000).to_string();
                for (name, value) in [
                    ("cluster-announce-ip", "127.0.0.1"),
                    ("cluster-announce-port", port.as_str()),
                    ("cluster-announce-bus-port", bus.as_str()),
                ] {
                    let out = node.cli(&["config", "set", name, value]);
                    assert!(out.contains("OK"), "config set {name}: {out}");
                }
            }
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = cli(nodes[0].port, &args);
        assert!(
            out.contains("[OK] All 16384 slots covered"),
            "cluster create failed:\n{out}"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = nodes
                .iter()
                .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"));
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cluster never reached cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { nodes }
    }

    /// The nodes' URLs (seed nodes for [`RedisConfig::cluster`]).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// A random namespace, so tests sharing a server never see each other's keys.
pub fn random_namespace() -> Namespace {
    Namespace::new(format!("t{}", uuid::Uuid::new_v4().simple())).unwrap()
}

/// Where the single-node suite runs: `REDIS_URL` if set, else a server
/// started here (returned so that it lives as long as the test).
pub fn single_node() -> (String, Option<RedisServer>) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = RedisServer::start();
            (server.url(), Some(server))
        }
    }
}

/// A bus on `url` in a fresh namespace.
pub async fn namespaced_bus(url: &str) -> RedisBus {
    RedisBus::connect(
        RedisConfig::from_url(url)
            .unwrap()
            .namespace(random_namespace()),
    )
    .await
    .expect("connect")
}

/// A test's own connection to `url`, for seeding and inspecting the server
/// beside the bus under test: no response timeout, since redis-rs's default
/// (500 ms) is shorter than a 10,000-command pipeline or a long `SLOWLOG GET`
/// can take on a loaded two-core CI machine, and a test must fail on what it
/// checks, not on its own tooling.
pub async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}
