//! The HTTP server's bearer tokens: one HASH per namespace
//! (`swarm:auth:tokens`), field the SHA-256 of a token (hex), value the
//! caller's JSON record (id, role, label, creation time). The token itself
//! is never stored; a token lives in the namespace it grants, so a server of
//! another namespace never finds it.

use swarmbus_core::error::Result;

use crate::bus::RedisBus;

impl RedisBus {
    /// The key of the token table in this bus's namespace.
    pub fn auth_tokens_key(&self) -> String {
        self.internal("auth:tokens")
    }

    /// Every stored token: (digest, record), in no particular order.
    pub async fn auth_tokens(&self) -> Result<Vec<(String, String)>> {
        let key = self.auth_tokens_key();
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&key);
        match self
            .query_raw::<Vec<(String, String)>>("auth tokens", &cmd)
            .await
        {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail_on_key(&e, "auth tokens", &key, "hash").await),
        }
    }

    /// Stores a token's record under its digest; `false` when that digest
    /// was already there (nothing is overwritten).
    pub async fn put_auth_token(&self, digest: &str, record: &str) -> Result<bool> {
        let key = self.auth_tokens_key();
        let mut cmd = redis::cmd("HSETNX");
        cmd.arg(&key).arg(digest).arg(record);
        match self.query_raw::<i64>("put auth token", &cmd).await {
            Ok(n) => Ok(n == 1),
            Err(e) => Err(self.fail_on_key(&e, "put auth token", &key, "hash").await),
        }
    }

    /// Removes a token by digest; `true` when it was there.
    pub async fn remove_auth_token(&self, digest: &str) -> Result<bool> {
        let key = self.auth_tokens_key();
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(&key).arg(digest);
        match self.query_raw::<i64>("remove auth token", &cmd).await {
            Ok(n) => Ok(n == 1),
            Err(e) => Err(self
                .fail_on_key(&e, "remove auth token", &key, "hash")
                .await),
        }
    }
}
