//! A TCP fault proxy for tests (feature `testing`): sits on a loopback port
//! between a client and a real `redis-server` and, when armed, breaks the
//! next request that contains a marker (for example `EVALSHA`):
//!
//! - [`Fault::DropReply`]: the request reaches the server and runs; the
//!   proxy reads the start of the reply, throws it away and cuts both
//!   connections. The client cannot tell whether its write applied.
//! - [`Fault::CutRequest`]: only the first half of the request's bytes
//!   reach the server, then both connections are cut (a pipeline cut in the
//!   middle). Nothing of the cut command runs.
//!
//! Every other byte is passed through unchanged, in both directions. The
//! proxy listens on 127.0.0.1 only and stops when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to the next request that contains the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Forward the request, let it run, drop the reply and cut the
    /// connection.
    DropReply,
    /// Forward half of the request's bytes, then cut the connection.
    CutRequest,
}

#[derive(Debug, Default)]
struct Armed {
    fault: Option<(Fault, Vec<u8>, u32)>,
}

#[derive(Debug, Default)]
struct Shared {
    armed: Mutex<Armed>,
    injected: AtomicU64,
    connections: AtomicU64,
}

impl Shared {
    /// Takes the armed fault if `chunk` contains its marker.
    fn take_for(&self, chunk: &[u8]) -> Option<Fault> {
        let mut armed = self.armed.lock().unwrap();
        let (fault, marker, left) = armed.fault.as_mut()?;
        if !contains(chunk, marker) {
            return None;
        }
        let fault = *fault;
        *left -= 1;
        if *left == 0 {
            armed.fault = None;
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A loopback TCP proxy in front of one Redis server that injects
/// [`Fault`]s on demand.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to
    /// `127.0.0.1:<upstream>`. Must be called inside a Tokio runtime.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        Self::serve(listener, upstream)
    }

    /// Like [`FaultProxy::start`], from synchronous code running inside a
    /// Tokio runtime (for [`crate::testing::RedisCluster::start_behind`]).
    pub fn start_now(upstream: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Self::serve(
            TcpListener::from_std(listener).expect("tokio listener"),
            upstream,
        )
    }

    /// Another proxy (to `upstream`) that shares this one's armed fault and
    /// counters: a fault armed on either hits the first matching request
    /// through any of them (the nodes of one Cluster).
    pub fn sibling(&self, upstream: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Self::serve_shared(
            TcpListener::from_std(listener).expect("tokio listener"),
            upstream,
            Arc::clone(&self.shared),
        )
    }

    /// Starts a proxy on an already bound listener.
    pub fn serve(listener: TcpListener, upstream: u16) -> Self {
        Self::serve_shared(listener, upstream, Arc::new(Shared::default()))
    }

    fn serve_shared(listener: TcpListener, upstream: u16, shared: Arc<Shared>) -> Self {
        let port = listener.local_addr().expect("local addr").port();
        let accept_shared = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        shared.connections.fetch_add(1, Ordering::SeqCst);
                        pump(client, server, &shared).await;
                    }
                });
            }
        });
        Self {
            port,
            shared,
            accept,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Arms `fault` for the next `times` requests containing `marker`.
    pub fn arm(&self, fault: Fault, marker: &[u8], times: u32) {
        let mut armed = self.shared.armed.lock().unwrap();
        armed.fault = (times > 0).then(|| (fault, marker.to_vec(), times));
    }

    /// Disarms a fault not yet injected.
    pub fn disarm(&self) {
        self.shared.armed.lock().unwrap().fault = None;
    }

    /// Whether an armed fault still waits for its request.
    pub fn is_armed(&self) -> bool {
        self.shared.armed.lock().unwrap().fault.is_some()
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// How many client connections were opened through the proxy.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Passes bytes both ways until one side closes or a fault cuts both.
async fn pump(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                let chunk = &up[..n];
                match shared.take_for(chunk) {
                    None => {
                        if server.write_all(chunk).await.is_err() { return; }
                    }
                    Some(Fault::DropReply) => {
                        if server.write_all(chunk).await.is_err() { return; }
                        // Wait until the server answers (so the request
                        // ran), then drop the answer with the connection.
                        let _ = tokio::time::timeout(
                            Duration::from_secs(5),
                            server.read(&mut down),
                        ).await;
                        return;
                    }
                    Some(Fault::CutRequest) => {
                        let _ = server.write_all(&chunk[..n / 2]).await;
                        let _ = server.flush().await;
                        return;
                    }
                }
            }
            read = server.read(&mut down) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                if client.write_all(&down[..n]).await.is_err() { return; }
            }
        }
    }
}
