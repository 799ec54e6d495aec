//! The example session runs on a real Redis and leaves keys of the types the
//! brief's Python tools read (`KEYS finding:*`, `GET finding:<uuid>`,
//! `GET worker:status:<id>`, `GET cost:<tier>`).

use swarm_examples::example_session;
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

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
    assert_eq!(Some(keys.len() as u64), status.findings, "{keys:?}");
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
