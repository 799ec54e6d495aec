//! The findings as MCP resources, with subscriptions: an agent that waits
//! for another's findings is told, instead of polling.
//!
//! - `swarm://findings`: the feed, the newest [`LISTED`] findings, newest
//!   first, as `{"findings": [...]}` with each finding as `search_findings`
//!   lists it (bodies cut to the listing length, `truncated` when cut).
//! - `swarm://findings/{id}`: one finding (JSON, as `get_finding` gives it),
//!   listed for the newest [`LISTED`] and readable for any id.
//!
//! A URI that names no finding (an unknown id, or not one of these) is
//! `-32002` "resource not found" with `data.uri`, as the protocol asks
//! (rmcp turns it into `-32602` for peers of protocol 2026-07-28).
//!
//! Both can be subscribed to, whichever protocol the client speaks:
//! `resources/subscribe` (protocol 2025-11-25 and before, what Claude Code
//! and the official clients negotiate today) sends
//! `notifications/resources/updated` on the session; `subscriptions/listen`
//! (2026-07-28) sends the same on the listen stream. `swarm://findings` is
//! updated by every new finding (put, batch, raw key adopted) and every new
//! version; `swarm://findings/{id}` by a new version of that one (and by a
//! raw key of that id adopted). Notifications come from `channel:findings`,
//! so a finding written by any process is seen; like the channel they are
//! at-most-once (read the resource, or `wait_for_findings` with a cursor, to
//! catch up). A deletion (or an expiry) is not announced on the channel
//! ([`swarmbus_core::lifecycle::FindingLifecycle::delete_finding`]), so it
//! sends nothing: a subscriber learns of it when a read is "not found".
//!
//! `resources/subscribe` answers once the server listens on the channel
//! (when the bus is up): a finding stored after the answer is notified. A
//! `subscriptions/listen` stream starts listening right after its
//! acknowledgment (the SDK sends it before the handler runs), so a finding
//! stored in that instant can be missed: read the resource after the
//! acknowledgment. Subscriptions belong to one session: a server cloned for
//! another session (Streamable HTTP makes one per session) starts with none.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use rmcp::ErrorData;
use rmcp::RoleServer;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam, SubscriptionFilter,
};
use rmcp::service::{Peer, SubscriptionSink};
use serde_json::json;
use swarmbus_core::Finding;
use swarmbus_core::bus::{Bus, Subscription};
use swarmbus_core::keys::{Channel, FindingId};
use swarmbus_core::search::SearchQuery;

use crate::ctx::Ctx;
use crate::ops;

/// The feed resource.
pub(crate) const FEED_URI: &str = "swarm://findings";

/// How many findings `resources/list` names, and the feed holds.
pub(crate) const LISTED: usize = 50;

/// One finding's resource.
pub(crate) fn finding_uri(id: &FindingId) -> String {
    format!("{FEED_URI}/{id}")
}

/// What a URI names.
enum Target {
    Feed,
    Finding(FindingId),
}

/// The protocol's "resource not found" (`-32002`), naming the URI in `data`.
fn not_found(uri: &str, message: String) -> ErrorData {
    ErrorData::resource_not_found(message, Some(json!({ "uri": uri })))
}

fn parse(uri: &str) -> Result<Target, ErrorData> {
    if uri == FEED_URI {
        return Ok(Target::Feed);
    }
    let Some(id) = uri.strip_prefix(FEED_URI).and_then(|r| r.strip_prefix('/')) else {
        return Err(not_found(
            uri,
            format!("unknown resource {uri:?}: this server has {FEED_URI} and {FEED_URI}/{{id}}"),
        ));
    };
    FindingId::new(id)
        .map(Target::Finding)
        .map_err(|e| not_found(uri, format!("{uri:?} names no finding: {e}")))
}

/// Whether `uri` is one of ours (for subscriptions).
pub(crate) fn known(uri: &str) -> Result<(), ErrorData> {
    parse(uri).map(drop)
}

fn bus_error(what: &str, e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(
        format!(
            "{what}: {} (is Redis up? see swarm_status)",
            crate::ctx::one_line(&e.to_string())
        ),
        None,
    )
}

/// The newest findings, newest first (two round trips).
async fn newest(bus: &dyn Bus) -> Result<Vec<Finding>, ErrorData> {
    let page = bus
        .search_findings(&SearchQuery::listing().limit(LISTED))
        .await
        .map_err(|e| bus_error("cannot list findings", e))?;
    let ids: Vec<FindingId> = page.hits.iter().map(|h| h.id.clone()).collect();
    let found = bus
        .get_findings(&ids)
        .await
        .map_err(|e| bus_error("cannot read findings", e))?;
    Ok(found.into_iter().flatten().collect())
}

/// `resources/list`: the feed and the newest findings.
pub(crate) async fn list(bus: &dyn Bus) -> Result<ListResourcesResult, ErrorData> {
    let mut resources = vec![
        Resource::new(FEED_URI, "findings")
            .with_title("The swarm's newest findings")
            .with_description(
                "The newest findings, newest first. Subscribe to be told of every new one.",
            )
            .with_mime_type("application/json"),
    ];
    for f in newest(bus).await? {
        resources.push(
            Resource::new(finding_uri(&f.id), f.id.to_string())
                .with_title(f.title.clone())
                .with_mime_type("application/json"),
        );
    }
    Ok(ListResourcesResult::with_all_items(resources))
}

/// `resources/templates/list`: one finding by id.
pub(crate) fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(format!("{FEED_URI}/{{id}}"), "finding")
            .with_title("One finding by id")
            .with_mime_type("application/json"),
    ])
}

/// `resources/read`.
pub(crate) async fn read(
    bus: &dyn Bus,
    ctx: &Ctx,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    let text = match parse(uri)? {
        Target::Feed => {
            let findings: Vec<_> = newest(bus)
                .await?
                .into_iter()
                .map(|f| ops::listed_json(&f, &ctx.finding_key(&f.id)))
                .collect();
            json!({ "findings": findings }).to_string()
        }
        Target::Finding(id) => {
            let found = bus
                .get_finding(&id)
                .await
                .map_err(|e| bus_error("cannot read the finding", e))?;
            match found {
                Some(f) => ops::finding_json(&f, &ctx.finding_key(&f.id)).to_string(),
                None => {
                    return Err(not_found(
                        uri,
                        format!("no finding {id} (list them: {FEED_URI})"),
                    ));
                }
            }
        }
    };
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type("application/json"),
    ]))
}

/// The URIs a `channel:findings` message updates, of those in `wanted`.
fn updated_by(message: &str, wanted: &HashSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    if wanted.contains(FEED_URI) {
        out.push(FEED_URI.to_owned());
    }
    if let Some(at) = message.rfind("finding:")
        && let Ok(id) = FindingId::new(&message[at + "finding:".len()..])
    {
        let uri = finding_uri(&id);
        if wanted.contains(&uri) {
            out.push(uri);
        }
    }
    out
}

/// Where notifications go.
enum Sender {
    /// The session (`resources/subscribe`).
    Peer(Peer<RoleServer>),
    /// A `subscriptions/listen` stream.
    Listen(SubscriptionSink),
}

impl Sender {
    /// False when the client is gone.
    async fn send(&self, uri: String) -> bool {
        match self {
            Sender::Peer(p) => p
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await
                .is_ok(),
            Sender::Listen(s) => s.notify_resource_updated(uri).await.is_ok(),
        }
    }
}

/// Sends the updates of `wanted` until the client is gone, from `first`
/// (a live subscription to the channel) if given. Rides out bus outages:
/// the channel is subscribed again after a pause.
async fn forward(
    bus: Arc<dyn Bus>,
    wanted: Arc<Mutex<HashSet<String>>>,
    to: Sender,
    mut first: Option<Subscription>,
) {
    loop {
        let sub = match first.take() {
            Some(sub) => Ok(sub),
            None => bus.subscribe(Channel::Findings).await,
        };
        match sub {
            Ok(mut sub) => {
                while let Some(message) = sub.next().await {
                    let Ok(message) = message else { break };
                    let uris = {
                        let w = wanted.lock().unwrap_or_else(PoisonError::into_inner);
                        updated_by(&message, &w)
                    };
                    for uri in uris {
                        if !to.send(uri).await {
                            return;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "resource updates: cannot subscribe yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A session's `resources/subscribe` subscriptions.
///
/// Cloning gives an empty set: the server is cloned once per session
/// (Streamable HTTP), and one session's subscriptions are not another's.
#[derive(Default)]
pub(crate) struct Subscriptions {
    wanted: Arc<Mutex<HashSet<String>>>,
    /// The forwarding task; locked across the channel subscription so that
    /// concurrent requests start one task.
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Clone for Subscriptions {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Subscriptions {
    /// Adds `uri`; starts forwarding on the first. Returns once the channel
    /// is listened to, so that every finding stored after it is notified;
    /// when the bus is down it returns at once and the forwarding task
    /// subscribes when the bus is back.
    pub(crate) async fn subscribe(&self, bus: &Arc<dyn Bus>, peer: Peer<RoleServer>, uri: &str) {
        let mut task = self.task.lock().await;
        self.wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uri.to_owned());
        if task
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
        {
            let first = match bus.subscribe(Channel::Findings).await {
                Ok(sub) => Some(sub),
                Err(e) => {
                    tracing::debug!(error = %e, "resource updates: cannot subscribe yet");
                    None
                }
            };
            *task = Some(tokio::spawn(forward(
                Arc::clone(bus),
                Arc::clone(&self.wanted),
                Sender::Peer(peer),
                first,
            )));
        }
    }

    /// Removes `uri`; stops forwarding after the last.
    pub(crate) async fn unsubscribe(&self, uri: &str) {
        let mut task = self.task.lock().await;
        let mut wanted = self.wanted.lock().unwrap_or_else(PoisonError::into_inner);
        wanted.remove(uri);
        if wanted.is_empty()
            && let Some(t) = task.take()
        {
            t.abort();
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

/// `subscriptions/listen`: the requested URIs that are ours.
pub(crate) fn accepted(requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
    let uris: Vec<String> = requested
        .resource_subscriptions
        .iter()
        .flatten()
        .filter(|u| known(u).is_ok())
        .cloned()
        .collect();
    Some(
        SubscriptionFilter::builder()
            .resource_subscriptions(uris)
            .build(),
    )
}

/// Runs one `subscriptions/listen` stream until it is cancelled.
pub(crate) async fn listen(bus: Arc<dyn Bus>, context: rmcp::service::SubscriptionContext) {
    let wanted: HashSet<String> = context
        .accepted()
        .resource_subscriptions
        .iter()
        .flatten()
        .cloned()
        .collect();
    let wanted = Arc::new(Mutex::new(wanted));
    let sink = context.sink().clone();
    tokio::select! {
        () = context.cancelled() => {}
        () = forward(bus, wanted, Sender::Listen(sink), None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_parsed_and_strangers_refused() {
        assert!(matches!(parse(FEED_URI), Ok(Target::Feed)));
        assert!(matches!(
            parse("swarm://findings/deepseek_pricing"),
            Ok(Target::Finding(_))
        ));
        for stranger in [
            "swarm://findings/a:b",
            "swarm://findingsX",
            "file:///etc/passwd",
        ] {
            let Err(e) = parse(stranger) else {
                panic!("{stranger} was accepted")
            };
            assert_eq!(
                e.code,
                rmcp::model::ErrorCode::RESOURCE_NOT_FOUND,
                "{stranger}"
            );
            assert_eq!(e.data, Some(json!({ "uri": stranger })));
        }
    }

    #[test]
    fn a_clone_is_another_session_with_no_subscriptions() {
        let s = Subscriptions::default();
        s.wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(FEED_URI.to_owned());
        assert!(
            s.clone()
                .wanted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        );
    }

    #[test]
    fn a_message_updates_the_feed_and_its_own_finding_only() {
        let wanted: HashSet<String> = [FEED_URI.to_owned(), "swarm://findings/a".to_owned()]
            .into_iter()
            .collect();
        assert_eq!(
            updated_by("{team}:finding:a", &wanted),
            vec![FEED_URI.to_owned(), "swarm://findings/a".to_owned()]
        );
        assert_eq!(updated_by("finding:b", &wanted), vec![FEED_URI.to_owned()]);
        let only_a: HashSet<String> = ["swarm://findings/a".to_owned()].into_iter().collect();
        assert!(updated_by("finding:b", &only_a).is_empty());
    }
}
