//! Asking the librarian through the bus and waiting for its answer: the one
//! way to do it ([`ask`], [`wait_for`]).
//!
//! - It subscribes to `channel:responses` BEFORE it puts the question on
//!   the desk, so a librarian that answers at once cannot be missed.
//! - Pub/sub is at-most-once (a notification can be lost, a subscription can
//!   drop or fail to start), so it also reads the durable
//!   `response:archive:<uuid>` key: on every notification and at least every
//!   [`POLL`]. A lost notification only delays the answer by up to one poll.
//! - It waits at most the given time, measured from when the question was
//!   put on the desk (`Duration::MAX` waits for ever).
//! - Failures are an [`AskError`] that names the query and says whether the
//!   question is on the desk (then wait again with [`wait_for`], do not ask
//!   again) and whether a retry can help ([`AskError::retry`]).
//!
//! A response that reports a failure (`status: error`) is an answer, not an
//! [`AskError`]: the caller reads its `error`.

use std::time::Duration;

use futures::StreamExt;
use swarmbus_core::bus::{ArchiveDesk, Channels, Subscription};
use swarmbus_core::{ArchiveQuery, ArchiveResponse, Channel, QueryId, Retry};

/// The longest time between two reads of the response key while waiting.
pub const POLL: Duration = Duration::from_millis(250);

/// Why no answer could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// The bus failed putting the question on the desk or reading the
    /// answer.
    #[error("query:archive:{query}: {source}")]
    Bus {
        /// The query.
        query: QueryId,
        /// Whether the question is on the desk: when true, wait for it again
        /// ([`wait_for`]) rather than asking again.
        asked: bool,
        /// The bus's error.
        #[source]
        source: swarmbus_core::Error,
    },
    /// The question is on the desk and no answer came in time: no
    /// librarian is serving, or it is busy.
    #[error("no answer to query:archive:{query} within {after:?}")]
    Timeout {
        /// The query.
        query: QueryId,
        /// How long it waited.
        after: Duration,
    },
}

impl AskError {
    /// The query it is about.
    pub fn query(&self) -> QueryId {
        match self {
            AskError::Bus { query, .. } | AskError::Timeout { query, .. } => *query,
        }
    }

    /// Whether the question is on the desk (a librarian may still answer it).
    pub fn asked(&self) -> bool {
        match self {
            AskError::Bus { asked, .. } => *asked,
            AskError::Timeout { .. } => true,
        }
    }

    /// Whether no answer came in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AskError::Timeout { .. })
    }

    /// Whether trying again can help: the bus error's own answer, and
    /// [`Retry::Retry`] after a timeout (waiting again is safe: the question
    /// stays on the desk and its answer is kept).
    pub fn retry(&self) -> Retry {
        match self {
            AskError::Bus { source, .. } => source.retry(),
            AskError::Timeout { .. } => Retry::Retry,
        }
    }
}

/// Puts `query` on the archive desk and waits up to `timeout` for its
/// answer (see the [module docs](self)).
pub async fn ask<B>(
    bus: &B,
    query: &ArchiveQuery,
    timeout: Duration,
) -> Result<ArchiveResponse, AskError>
where
    B: Channels + ArchiveDesk + ?Sized,
{
    let notes = subscribe(bus).await;
    bus.ask(query).await.map_err(|source| AskError::Bus {
        query: query.id,
        asked: false,
        source,
    })?;
    wait(bus, query.id, notes, timeout).await
}

/// Waits up to `timeout` for the answer to a question already on the desk
/// (asked elsewhere, or after an [`AskError`] whose question was asked).
pub async fn wait_for<B>(
    bus: &B,
    query: QueryId,
    timeout: Duration,
) -> Result<ArchiveResponse, AskError>
where
    B: Channels + ArchiveDesk + ?Sized,
{
    let notes = subscribe(bus).await;
    wait(bus, query, notes, timeout).await
}

/// A subscription to `channel:responses`, or none when it cannot be had:
/// the response key is read every [`POLL`] anyway.
async fn subscribe<B: Channels + ?Sized>(bus: &B) -> Option<Subscription> {
    match bus.subscribe(Channel::Responses).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, "no response notifications; polling the response key");
            None
        }
    }
}

async fn wait<B>(
    bus: &B,
    query: QueryId,
    mut notes: Option<Subscription>,
    timeout: Duration,
) -> Result<ArchiveResponse, AskError>
where
    B: ArchiveDesk + ?Sized,
{
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    loop {
        let response = bus
            .get_response(query)
            .await
            .map_err(|source| AskError::Bus {
                query,
                asked: true,
                source,
            })?;
        if let Some(r) = response {
            return Ok(r);
        }
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(tokio::time::Instant::now())
        });
        if left.is_zero() {
            return Err(AskError::Timeout {
                query,
                after: timeout,
            });
        }
        let nap = left.min(POLL);
        match notes.as_mut() {
            Some(stream) => match tokio::time::timeout(nap, stream.next()).await {
                // A notification (ours or another's) or a quiet poll: read the key.
                Ok(Some(Ok(_))) | Err(_) => {}
                // The subscription failed or ended: poll from here on.
                Ok(Some(Err(_)) | None) => notes = None,
            },
            None => tokio::time::sleep(nap).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use async_trait::async_trait;
    use swarmbus_core::FindingFilter;
    use swarmbus_memory::MemoryBus;

    /// A bus whose notifications never arrive (pub/sub dropped them) or
    /// whose subscription cannot be had; the desk is a MemoryBus's.
    struct Deaf {
        bus: MemoryBus,
        subscribe_fails: bool,
    }

    #[async_trait]
    impl Channels for Deaf {
        async fn publish(&self, channel: Channel, message: &str) -> swarmbus_core::Result<usize> {
            self.bus.publish(channel, message).await
        }

        async fn subscribe(&self, _channel: Channel) -> swarmbus_core::Result<Subscription> {
            if self.subscribe_fails {
                return Err(swarmbus_core::Error::Closed("no subscriptions"));
            }
            Ok(Box::pin(futures::stream::pending()))
        }
    }

    #[async_trait]
    impl ArchiveDesk for Deaf {
        async fn ask(&self, query: &ArchiveQuery) -> swarmbus_core::Result<()> {
            self.bus.ask(query).await
        }
        async fn next_query(&self, wait: Duration) -> swarmbus_core::Result<Option<ArchiveQuery>> {
            self.bus.next_query(wait).await
        }
        async fn get_query(&self, id: QueryId) -> swarmbus_core::Result<Option<ArchiveQuery>> {
            self.bus.get_query(id).await
        }
        async fn answer(&self, response: &ArchiveResponse) -> swarmbus_core::Result<()> {
            self.bus.answer(response).await
        }
        async fn get_response(
            &self,
            id: QueryId,
        ) -> swarmbus_core::Result<Option<ArchiveResponse>> {
            self.bus.get_response(id).await
        }
    }

    /// A librarian on `bus` that answers the next question after `delay`.
    fn answer_next<B: ArchiveDesk + 'static>(bus: Arc<B>, delay: Duration) {
        tokio::spawn(async move {
            let Ok(Some(q)) = bus.next_query(Duration::from_secs(5)).await else {
                return;
            };
            tokio::time::sleep(delay).await;
            bus.answer(&ArchiveResponse::answered(q.id, "42", Vec::new()))
                .await
                .unwrap();
        });
    }

    fn question() -> ArchiveQuery {
        ArchiveQuery::new("what?", FindingFilter::all()).asked_by("test")
    }

    #[tokio::test]
    async fn an_answer_is_had_as_soon_as_it_is_notified() {
        let bus = Arc::new(MemoryBus::new());
        answer_next(Arc::clone(&bus), Duration::ZERO);
        let q = question();
        let started = std::time::Instant::now();
        let r = ask(&*bus, &q, Duration::from_secs(5)).await.unwrap();
        assert_eq!((r.id, r.answer.as_deref()), (q.id, Some("42")));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_lost_notification_only_delays_the_answer_until_the_next_poll() {
        for subscribe_fails in [false, true] {
            let bus = Arc::new(Deaf {
                bus: MemoryBus::new(),
                subscribe_fails,
            });
            answer_next(Arc::clone(&bus), Duration::from_millis(50));
            let q = question();
            let r = ask(&*bus, &q, Duration::from_secs(5)).await.unwrap();
            assert_eq!(r.id, q.id, "subscribe fails: {subscribe_fails}");
        }
    }

    #[tokio::test]
    async fn an_answer_already_stored_is_read_without_waiting() {
        let bus = MemoryBus::new();
        let q = question();
        bus.ask(&q).await.unwrap();
        bus.answer(&ArchiveResponse::failed(
            q.id,
            "quota_exhausted",
            "no shard",
        ))
        .await
        .unwrap();
        let r = wait_for(&bus, q.id, Duration::ZERO).await.unwrap();
        assert_eq!(r.error.map(|e| e.kind).as_deref(), Some("quota_exhausted"));
    }

    #[tokio::test]
    async fn no_answer_in_time_is_a_timeout_naming_the_query_still_on_the_desk() {
        let bus = MemoryBus::new();
        let q = question();
        let e = ask(&bus, &q, Duration::from_millis(300)).await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert_eq!(e.query(), q.id);
        assert!(e.asked());
        assert_eq!(e.retry(), Retry::Retry);
        assert!(e.to_string().contains(&q.id.to_string()), "{e}");
        // The question is still there for a librarian to answer.
        assert_eq!(bus.get_query(q.id).await.unwrap().map(|g| g.id), Some(q.id));
        // Waiting again gets the answer once it comes.
        bus.answer(&ArchiveResponse::answered(q.id, "late", Vec::new()))
            .await
            .unwrap();
        let r = wait_for(&bus, q.id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(r.answer.as_deref(), Some("late"));
    }
}
