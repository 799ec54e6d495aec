//! The example session runs on a real Redis and leaves keys of the types the
//! brief's Python tools read (`KEYS finding:*`, `GET finding:<uuid>`,
//! `GET worker:status:<id>`, `GET cost:<tier>`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use swarm_examples::example_session;
use swarmbus_redis::{RedisBus, RedisConfig};

/// A redis-server on a free loopback port, stopped on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it: apt-get install redis-server")
            });
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = redis::Client::open(server.url()).and_then(|c| c.get_connection())
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_leaves_keys_the_briefs_tools_can_read() {
    let server = RedisServer::start();
    let bus = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    let status = example_session(bus).await.unwrap();

    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    // What context_indicator.py does: KEYS finding:* and GET each.
    let keys: Vec<String> = redis::cmd("KEYS").arg("finding:*").query(&mut c).unwrap();
    assert_eq!(keys.len() as u64, status.findings, "{keys:?}");
    assert!(keys.len() >= 3, "{keys:?}");
    for k in &keys {
        let kind: String = redis::cmd("TYPE").arg(k).query(&mut c).unwrap();
        assert_eq!(kind, "string", "{k}");
        let v: String = redis::cmd("GET").arg(k).query(&mut c).unwrap();
        let json: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert!(
            json["title"].is_string() && json["worker"].is_string(),
            "{v}"
        );
    }
}
