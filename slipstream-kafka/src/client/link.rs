//! What a client knows of its brokers, from librdkafka's callbacks: whether any broker is up
//! (its statistics, every second), the last connection failure (named when start-up fails), an
//! authentication or TLS handshake failure (start-up fails at once), and whether deliveries keep
//! failing. It is
//! the client's health probe, and it logs librdkafka's warnings and errors without flooding the
//! log: one repeated is logged once per [`REPEAT_WINDOW`], with how many times it came.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use slipstream_core::__component::{HealthProbe, lock};

/// What a failed authentication is called.
const AUTHENTICATION: &str = "authentication failed";

/// How often one error is logged at most (the others are counted).
pub(crate) const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// How recent a delivery failure must be to count as still failing (when the grace is shorter).
const RECENT: Duration = Duration::from_secs(10);

/// How often librdkafka reports statistics, unless `statistics.interval.ms` is set: they say
/// whether a broker is up.
pub(crate) const STATISTICS_INTERVAL_MS: &str = "1000";

/// One client's view of its brokers.
pub(crate) struct Link {
    /// What the client is for: `topic `x``, `sink `x``.
    what: String,
    /// How long no broker may be up, or deliveries keep failing, before health says so.
    grace: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Since when no broker has been up, per the statistics (`None` while one is).
    down_since: Option<Instant>,
    /// The last connection failure or error librdkafka reported.
    last_error: Option<String>,
    /// A failure retrying cannot help (what failed, and librdkafka's message): an
    /// authentication, a TLS handshake (a certificate that cannot be verified, say).
    refused: Option<(&'static str, String)>,
    /// Deliveries failing (none has succeeded since): since when, the last failure and when.
    failing: Option<Failing>,
    /// Warnings and errors logged lately: when each was logged, and how many times it came
    /// since without being logged.
    logged: HashMap<String, (Instant, u64)>,
}

struct Failing {
    since: Instant,
    last: Instant,
    error: String,
}

impl State {
    /// Whether to log `key` now, and how many times it came unlogged before.
    fn admit(&mut self, key: &str, now: Instant) -> Option<u64> {
        if let Some((at, count)) = self.logged.get_mut(key) {
            if now - *at < REPEAT_WINDOW {
                *count += 1;
                return None;
            }
            let repeated = *count;
            *at = now;
            *count = 0;
            return Some(repeated);
        }
        if self.logged.len() >= 64 {
            self.logged.retain(|_, (at, _)| now - *at < REPEAT_WINDOW);
        }
        self.logged.insert(key.to_owned(), (now, 0));
        Some(0)
    }
}

/// What identifies a log line among its repeats: librdkafka ends connection failures with how
/// long they took (`(after 3ms in state CONNECT)`) and how many it suppressed.
fn log_key(message: &str) -> &str {
    message.split(" (after ").next().unwrap_or(message)
}

impl Link {
    pub(crate) fn new(what: String, grace: Duration) -> Link {
        Link {
            what,
            grace,
            state: Mutex::default(),
        }
    }

    /// An error librdkafka reported: recorded, and logged unless it was logged just before.
    pub(crate) fn error(&self, error: &KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            // The end of a partition (a consumer asked to be told): not a failure.
            return;
        }
        let key = format!("{error}: {}", log_key(reason));
        let mut state = lock(&self.state);
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Authentication) {
            state.refused = Some((AUTHENTICATION, reason.to_owned()));
        }
        state.last_error = Some(reason.to_owned());
        let admitted = state.admit(&key, Instant::now());
        drop(state);
        match admitted {
            None => {}
            Some(0) => {
                tracing::warn!(target: "librdkafka", client = %self.what, %error, "{reason}")
            }
            Some(repeated) => {
                tracing::warn!(target: "librdkafka", client = %self.what, %error, repeated, "{reason} (and {repeated} more like it since it was last logged)")
            }
        }
    }

    /// A line librdkafka logs. Warnings and errors are limited as [`error`](Self::error)s are;
    /// a broker connection failure (facility `FAIL`) is recorded as the last error, and one in
    /// authentication or a TLS handshake as the reason start-up fails.
    pub(crate) fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Debug | RDKafkaLogLevel::Info | RDKafkaLogLevel::Notice
        ) {
            return super::log::log(level, facility, message);
        }
        let mut state = lock(&self.state);
        if facility == "FAIL" {
            state.last_error = Some(message.to_owned());
            // Not librdkafka's hint after a disconnection ("broker might require SASL
            // authentication"): only an authentication that failed.
            if message.contains("SASL authentication error") {
                state.refused = Some((AUTHENTICATION, message.to_owned()));
            } else if message.contains("SSL handshake failed") {
                state.refused = Some(("the TLS handshake failed", message.to_owned()));
            }
        }
        let admitted = state.admit(log_key(message), Instant::now());
        drop(state);
        match admitted {
            None => {}
            Some(0) => super::log::log(level, facility, message),
            Some(repeated) => super::log::log(
                level,
                facility,
                &format!("{message} (and {repeated} more like it since it was last logged)"),
            ),
        }
    }

    /// librdkafka's statistics: is any broker up?
    pub(crate) fn statistics(&self, statistics: &Statistics) {
        let up = statistics
            .brokers
            .values()
            .any(|b| b.state == "UP" && matches!(b.source.as_str(), "learned" | "configured"));
        let mut state = lock(&self.state);
        if up {
            state.down_since = None;
        } else if state.down_since.is_none() {
            state.down_since = Some(Instant::now());
        }
    }

    /// A delivery succeeded.
    pub(crate) fn delivered(&self) {
        let mut state = lock(&self.state);
        if state.failing.is_some() {
            state.failing = None;
        }
    }

    /// A delivery failed.
    pub(crate) fn delivery_failed(&self, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let since = state.failing.as_ref().map_or(now, |f| f.since);
        state.failing = Some(Failing {
            since,
            last: now,
            error: error.to_string(),
        });
    }

    /// The last error librdkafka reported, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.state).last_error.clone()
    }

    /// A failure retrying cannot help, if librdkafka reported one: what failed (`authentication
    /// failed`, `the TLS handshake failed`) and its message.
    pub(crate) fn refusal(&self) -> Option<(&'static str, String)> {
        lock(&self.state).refused.clone()
    }
}

impl HealthProbe for Link {
    fn problem(&self) -> Option<String> {
        let state = lock(&self.state);
        let late = |since: Instant| {
            let elapsed = since.elapsed();
            (elapsed >= self.grace).then_some(elapsed.as_secs())
        };
        if let Some(secs) = state.down_since.and_then(late) {
            let why = state.last_error.as_deref().unwrap_or("no error reported");
            return Some(format!(
                "{}: no broker reachable for {secs} s (last error: {why})",
                self.what
            ));
        }
        // Failing for the grace period, and still failing lately: one failure followed by
        // silence does not keep the application unhealthy.
        if let Some(failing) = &state.failing
            && failing.last.elapsed() < self.grace.max(RECENT)
            && let Some(secs) = late(failing.since)
        {
            return Some(format!(
                "{}: deliveries failing for {secs} s (last: {})",
                self.what, failing.error
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_repeat_whatever_their_timings() {
        assert_eq!(
            log_key(
                "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)"
            ),
            log_key(
                "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 3ms in state CONNECT, 4 identical error(s) suppressed)"
            ),
        );
        let link = Link::new("topic `in`".to_owned(), Duration::ZERO);
        let fail = "sasl_ssl://b:9/bootstrap: SASL authentication error: invalid-proof (after 8ms in state AUTH_REQ)";
        link.log(RDKafkaLogLevel::Error, "FAIL", fail);
        link.log(RDKafkaLogLevel::Error, "FAIL", fail);
        assert_eq!(
            lock(&link.state).logged.get(log_key(fail)).map(|l| l.1),
            Some(1)
        );
        assert_eq!(link.refusal(), Some((AUTHENTICATION, fail.to_owned())));
        let tls = "ssl://b:9/bootstrap: SSL handshake failed: certificate verify failed (after 3ms in state SSL_HANDSHAKE)";
        link.log(RDKafkaLogLevel::Error, "FAIL", tls);
        assert_eq!(
            link.refusal(),
            Some(("the TLS handshake failed", tls.to_owned()))
        );
        let hint = "b:9/bootstrap: Disconnected: verify that security.protocol is correctly configured, broker might require SASL authentication (after 5ms in state UP)";
        let other = Link::new("topic `in`".to_owned(), Duration::ZERO);
        other.log(RDKafkaLogLevel::Error, "FAIL", hint);
        assert_eq!(other.refusal(), None);
    }

    #[test]
    fn failing_deliveries_are_a_problem_only_past_the_grace_and_until_one_succeeds() {
        let link = Link::new("sink `out`".to_owned(), Duration::ZERO);
        assert_eq!(link.problem(), None);
        link.delivery_failed(&"refused");
        let problem = link.problem().expect("a problem");
        assert!(
            problem.contains("sink `out`") && problem.contains("refused"),
            "{problem}"
        );
        link.delivered();
        assert_eq!(link.problem(), None);

        let patient = Link::new("sink `out`".to_owned(), Duration::from_secs(3600));
        patient.delivery_failed(&"refused");
        assert_eq!(patient.problem(), None);
    }

    #[test]
    fn an_error_repeated_is_recorded_each_time_and_authentication_is_remembered() {
        let link = Link::new("topic `in`".to_owned(), Duration::ZERO);
        let refused = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        for _ in 0..3 {
            link.error(&refused, "connection refused");
        }
        let key = format!("{refused}: connection refused");
        assert_eq!(lock(&link.state).logged.get(&key).map(|l| l.1), Some(2));
        assert!(link.last_error().unwrap().contains("connection refused"));
        assert_eq!(link.refusal(), None);
        link.error(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error",
        );
        assert_eq!(
            link.refusal(),
            Some((AUTHENTICATION, "SASL authentication error".to_owned()))
        );
    }

    #[test]
    fn the_end_of_a_partition_is_not_an_error() {
        let link = Link::new("topic `in`".to_owned(), Duration::ZERO);
        link.error(
            &KafkaError::Global(RDKafkaErrorCode::PartitionEOF),
            "Fetch from broker 1 reached end of partition at offset 0",
        );
        assert_eq!(link.last_error(), None);
        assert!(lock(&link.state).logged.is_empty());
    }
}
