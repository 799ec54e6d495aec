//! `rediss://` (feature `tls`): a redis-server with a certificate from a CA
//! made here (openssl), an ACL password, the conformance suite over TLS.
//!
//! `cargo test -p swarmbus-redis --features tls --test tls`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
#![cfg(feature = "tls")]

mod common;

use std::process::Command;

use common::{RedisServer, free_port};
use swarmbus_redis::{RedisBus, RedisConfig};

/// Makes a CA and a server certificate for 127.0.0.1 in `dir`.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=swarm test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_over_tls_with_an_acl_password() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tls_port = free_port();
    let path = |f: &str| certs.path().join(f).display().to_string();
    let (tls, cert, key, ca) = (
        tls_port.to_string(),
        path("server.pem"),
        path("server.key"),
        path("ca.pem"),
    );
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--tls-port",
        &tls,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let password = "tls-pw-0b7c";
    server.cli(&[
        "ACL",
        "SETUSER",
        "swarm",
        "on",
        &format!(">{password}"),
        "~*",
        "&*",
        "+@all",
    ]);
    let url = format!("rediss://swarm:{password}@127.0.0.1:{tls_port}");
    let config = RedisConfig::from_url(&url)
        .unwrap()
        .tls_root_cert(std::fs::read(certs.path().join("ca.pem")).unwrap())
        .namespace(common::random_namespace());
    assert!(config.uses_tls());
    assert!(!format!("{config:?}").contains(password));
    let bus = RedisBus::connect(config).await.unwrap();
    bus.ping().await.unwrap();
    swarmbus_memory::conformance::run_all(&bus).await;

    // Without the CA the server's certificate is not trusted.
    let untrusted = RedisConfig::from_url(&url)
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(1));
    assert!(RedisBus::connect(untrusted).await.is_err());
}
