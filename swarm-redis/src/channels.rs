//! [`Channels`]: the brief's pub/sub channels, as notifications only.
//!
//! Each subscription has a connection of its own (a connection in
//! subscribed mode can send nothing else). On a Cluster, classic PUBLISH
//! reaches every node, so the subscription connects to a seed node.

use async_trait::async_trait;
use futures::StreamExt;
use swarmbus_core::bus::{Channels, Subscription};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::Channel;

use crate::bus::RedisBus;
use crate::scripts;

#[async_trait]
impl Channels for RedisBus {
    async fn publish(&self, channel: Channel, message: &str) -> Result<usize> {
        // A script with an operation id, so that a retry after a lost reply
        // does not notify twice. On a Cluster it runs on the namespace
        // slot's master (its marker key lives there), where the
        // subscriptions listen.
        let name = self.inner.keys.channel(channel);
        let receivers: i64 = self
            .eval_once("publish", &scripts::PUBLISH, &[], &[&name, &message], None)
            .await?;
        Ok(usize::try_from(receivers).unwrap_or(0))
    }

    async fn subscribe(&self, channel: Channel) -> Result<Subscription> {
        let name = self.inner.keys.channel(channel);
        let mut pubsub = self
            .inner
            .connector
            .pubsub(&self.inner.link)
            .await
            .map_err(|e| self.fail(&e, "subscribe"))?;
        // SUBSCRIBE returns once Redis confirmed it: from here on every
        // message published is received.
        match tokio::time::timeout(self.response_timeout(), pubsub.subscribe(&name)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fail(&e, "subscribe")),
            Err(_) => {
                return Err(Error::Timeout {
                    operation: "subscribe",
                    after: self.response_timeout(),
                });
            }
        }
        let messages = pubsub.into_on_message().map(move |msg| {
            msg.get_payload::<String>().map_err(|e| Error::Decode {
                key: msg.get_channel_name().to_owned(),
                reason: format!("message is not UTF-8 text: {}", e.category()),
            })
        });
        // The stream of redis-rs ends when the connection is lost; say so,
        // since messages published meanwhile are gone (at-most-once).
        let lost =
            futures::stream::once(async { Err(Error::Closed("subscription connection lost")) });
        Ok(Box::pin(messages.chain(lost)))
    }
}
