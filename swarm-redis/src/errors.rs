//! From redis-rs's errors to the core [`Error`]: what happened, whether a
//! retry can help, and never a secret.

use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};
use swarmbus_core::error::{Error, Retry};

/// The backend name in [`Error::Backend`].
pub(crate) const BACKEND: &str = "redis";

/// Whether the same request may succeed if made again: the connection was
/// lost or refused, a command timed out, or the server (or cluster) is
/// starting, failing over or resharding.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    matches!(
        e.kind(),
        ErrorKind::Io
            | ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(ServerErrorKind::BusyLoading)
            | ErrorKind::Server(ServerErrorKind::TryAgain)
            | ErrorKind::Server(ServerErrorKind::ClusterDown)
            | ErrorKind::Server(ServerErrorKind::MasterDown)
            | ErrorKind::Server(ServerErrorKind::ReadOnly)
    )
}

/// Whether the request certainly never reached the server, so that even a
/// write that is not idempotent may be sent again.
pub(crate) fn surely_not_sent(e: &RedisError) -> bool {
    e.is_connection_refusal()
}

/// Whether Redis said WRONGTYPE (also from inside a script).
pub(crate) fn is_wrong_type(e: &RedisError) -> bool {
    e.code() == Some("WRONGTYPE")
        || e.detail().is_some_and(|d| d.contains("WRONGTYPE"))
        || e.to_string().contains("WRONGTYPE")
}

/// Whether a consumer group or stream does not exist (NOGROUP).
pub(crate) fn is_no_group(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

/// Maps a redis-rs error. `secret` is removed from the message should the
/// error text ever carry it.
pub(crate) fn map_error(
    e: &RedisError,
    operation: &'static str,
    response_timeout: Duration,
    secret: Option<&str>,
) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            operation,
            after: response_timeout,
        };
    }
    let retry = if is_transient(e) {
        Retry::Retry
    } else {
        Retry::Never
    };
    let mut message = format!("{operation}: {e}");
    // redis-rs's error is kept as the source (its kind and code), unless
    // its text would show the secret.
    let mut source: Option<Box<dyn std::error::Error + Send + Sync>> = Some(Box::new(e.clone()));
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        if message.contains(secret) || format!("{e:?}").contains(secret) {
            source = None;
        }
        message = message.replace(secret, "<redacted>");
    }
    Error::Backend {
        backend: BACKEND,
        message,
        retry,
        source,
    }
}

/// A reply that does not have the shape this crate's scripts return.
pub(crate) fn unexpected_reply(operation: &'static str, what: &str) -> Error {
    Error::backend(
        BACKEND,
        format!("{operation}: unexpected reply from Redis: {what}"),
        Retry::Never,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_transient_and_unsent() {
        let e = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(is_transient(&e));
        assert!(surely_not_sent(&e));
        let mapped = map_error(&e, "put_finding", Duration::from_secs(1), None);
        assert_eq!(mapped.retry(), Retry::Retry);
    }

    #[test]
    fn a_timeout_maps_to_timeout() {
        let e = RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        let mapped = map_error(&e, "get_finding", Duration::from_millis(250), None);
        assert!(matches!(
            mapped,
            Error::Timeout {
                operation: "get_finding",
                ..
            }
        ));
        assert!(!surely_not_sent(&e));
    }

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let e = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "auth",
            "pw=hunter2".to_owned(),
        ));
        let mapped = map_error(&e, "connect", Duration::from_secs(1), Some("hunter2"));
        assert!(!mapped.to_string().contains("hunter2"), "{mapped}");
        assert!(!format!("{mapped:?}").contains("hunter2"), "{mapped:?}");
        assert_eq!(mapped.retry(), Retry::Never);
    }

    #[test]
    fn the_redis_error_kind_and_code_survive_as_the_source() {
        let e = RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "readonly"));
        let mapped = map_error(&e, "push_task", Duration::from_secs(1), None);
        let source = std::error::Error::source(&mapped).expect("a source");
        let redis = source.downcast_ref::<RedisError>().expect("a redis error");
        assert_eq!(redis.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly));
        assert_eq!(mapped.retry(), Retry::Retry);
    }
}
