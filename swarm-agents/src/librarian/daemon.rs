//! The librarian daemon: answers archive queries from the bus.
//!
//! It takes questions two ways, so that none is missed and none answered
//! twice by one daemon:
//!
//! - the durable queue ([`ArchiveDesk::next_query`]), which survives a
//!   daemon that was down when the question was asked;
//! - `channel:queries` notifications (the key `query:archive:<uuid>`), which
//!   is how the brief's Python tools announce a question they wrote
//!   directly.
//!
//! Each question gets `response:archive:<uuid>` (and a `channel:responses`
//! notification, sent by [`ArchiveDesk::answer`]): the answer with its
//! checked citations, or, when anything fails, an error response
//! ([`ArchiveResponse::failed`]) with a stable kind and a message. Never
//! silence. A question that already has a response is skipped.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use swarmbus_core::accounting::Meter;
use swarmbus_core::bus::{ArchiveDesk, Channels, FindingStore};
use swarmbus_core::keys::{Channel, QueryId, WorkerId};
use swarmbus_core::{ArchiveQuery, ArchiveResponse};

use super::error::Result;
use super::{AnswerSource, Librarian, LibrarianConfig};

/// What a daemon run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaemonStats {
    /// Questions answered.
    pub answered: u64,
    /// Questions that got an error response.
    pub failed: u64,
}

/// Serves archive queries from a bus.
pub struct LibrarianDaemon<B: ArchiveDesk + FindingStore + Channels + ?Sized> {
    bus: Arc<B>,
    librarian: Librarian<B>,
    poll: Duration,
    name: String,
}

impl<B: ArchiveDesk + FindingStore + Channels + ?Sized> fmt::Debug for LibrarianDaemon<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LibrarianDaemon")
            .field("librarian", &self.librarian)
            .field("poll", &self.poll)
            .finish()
    }
}

/// The query id in a `channel:queries` message (a key, possibly
/// namespaced).
pub fn query_id_from_key(key: &str) -> Option<QueryId> {
    let at = key.rfind("query:archive:")?;
    QueryId::parse(&key[at + "query:archive:".len()..]).ok()
}

impl<B: ArchiveDesk + FindingStore + Channels + ?Sized> LibrarianDaemon<B> {
    /// A daemon answering from `bus`'s findings with `source`.
    pub fn new(bus: Arc<B>, source: AnswerSource) -> Self {
        let name = source.name();
        Self {
            librarian: Librarian::new(bus.clone(), source),
            bus,
            poll: Duration::from_secs(1),
            name,
        }
    }

    /// Meters the librarian's model calls (see [`Librarian::with_meter`]),
    /// booked as made by this daemon's `librarian` id.
    pub fn with_meter(mut self, meter: Arc<dyn Meter>, librarian: WorkerId) -> Self {
        self.librarian = self.librarian.with_meter(meter).with_caller(librarian);
        self
    }

    /// Sets the librarian's configuration.
    pub fn with_config(mut self, config: LibrarianConfig) -> Self {
        self.librarian = self.librarian.with_config(config);
        self
    }

    /// How long one wait on the queue lasts (and so how soon a shutdown is
    /// seen); default 1 s.
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The librarian.
    pub fn librarian(&self) -> &Librarian<B> {
        &self.librarian
    }

    /// Answers one question and stores the response (an answer or an error
    /// response). Fails only when the response cannot be stored.
    pub async fn respond(&self, query: &ArchiveQuery) -> Result<ArchiveResponse> {
        let response = match self.librarian.ask(&query.question, &query.filter).await {
            Ok(a) => ArchiveResponse::answered(query.id, a.answer, a.citations)
                .answered_by(a.answered_by),
            Err(e) => {
                tracing::warn!(query = %query.id, kind = %e.kind(), error = %e, "archive query failed");
                ArchiveResponse::failed(query.id, e.kind().as_str(), e.to_string())
                    .answered_by(self.name.clone())
            }
        };
        self.bus.answer(&response).await?;
        Ok(response)
    }

    /// Takes the next queued question (waiting up to `wait`) and answers
    /// it, unless it already has a response.
    pub async fn serve_one(&self, wait: Duration) -> Result<Option<ArchiveResponse>> {
        let Some(query) = self.bus.next_query(wait).await? else {
            return Ok(None);
        };
        if self.bus.get_response(query.id).await?.is_some() {
            return Ok(None);
        }
        self.respond(&query).await.map(Some)
    }

    /// Answers the question a `channel:queries` message names, unless it
    /// already has a response or does not exist.
    pub async fn serve_notification(&self, message: &str) -> Result<Option<ArchiveResponse>> {
        let Some(id) = query_id_from_key(message) else {
            tracing::debug!("ignoring a channel:queries message that names no query");
            return Ok(None);
        };
        if self.bus.get_response(id).await?.is_some() {
            return Ok(None);
        }
        match self.bus.get_query(id).await? {
            Some(q) => self.respond(&q).await.map(Some),
            None => Ok(None),
        }
    }

    /// Serves until `shutdown` completes. Bus errors are logged and the loop
    /// goes on after a pause (a restarted Redis is picked up again).
    pub async fn run<F: Future<Output = ()>>(&self, shutdown: F) -> Result<DaemonStats> {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let mut stats = DaemonStats::default();
        let mut subscription = self.bus.subscribe(Channel::Queries).await?;
        tracing::info!(provider = %self.name, "librarian daemon serving archive queries");
        loop {
            if (&mut shutdown).now_or_never().is_some() {
                break;
            }
            // Notifications first, without waiting.
            loop {
                match subscription.next().now_or_never() {
                    Some(Some(Ok(message))) => {
                        self.tally(self.serve_notification(&message).await, &mut stats)
                            .await;
                    }
                    Some(Some(Err(e))) => {
                        tracing::warn!(error = %e, "channel:queries subscription error");
                    }
                    Some(None) => {
                        tracing::warn!("channel:queries subscription ended; resubscribing");
                        match self.bus.subscribe(Channel::Queries).await {
                            Ok(s) => subscription = s,
                            Err(e) => {
                                tracing::warn!(error = %e, "resubscribe failed");
                                tokio::time::sleep(self.poll).await;
                            }
                        }
                        break;
                    }
                    None => break,
                }
            }
            let served = self.serve_one(self.poll).await;
            self.tally(served, &mut stats).await;
        }
        tracing::info!(
            answered = stats.answered,
            failed = stats.failed,
            "librarian daemon stopped"
        );
        Ok(stats)
    }

    async fn tally(&self, served: Result<Option<ArchiveResponse>>, stats: &mut DaemonStats) {
        match served {
            Ok(Some(r)) if r.error.is_none() => stats.answered += 1,
            Ok(Some(_)) => stats.failed += 1,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "librarian daemon: bus error; pausing");
                tokio::time::sleep(self.poll).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_are_read_from_plain_and_namespaced_keys() {
        let id = QueryId::random();
        assert_eq!(query_id_from_key(&format!("query:archive:{id}")), Some(id));
        assert_eq!(
            query_id_from_key(&format!("{{team}}:query:archive:{id}")),
            Some(id)
        );
        assert_eq!(query_id_from_key("query:archive:nope"), None);
        assert_eq!(query_id_from_key("finding:x"), None);
    }
}
