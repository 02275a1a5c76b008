//! Reports on a running application: its health, its handlers, its Prometheus metrics. On top
//! of the monitor (board, stats, probe). Must not name the controls, context or runtime.

use std::fmt::Write as _;

use serde::Serialize;

use super::board::Monitor;
use super::probe::PartitionReport;
use super::stats::{BOUNDS, ErrorKind, HandlerState, HandlerStats};

/// Whether a running application is healthy, and if not, why.
///
/// It is healthy while every handler runs (none has stopped with an error or drained its
/// source), every topic consumer has partitions assigned, and no shutdown has started. It is a
/// readiness check: an instance is unavailable during a consumer group's rebalance and while
/// its group has no partition left for it, so use it for readiness probes and alerts rather
/// than to restart the process. Get it with [`AppHandle::health`](crate::AppHandle::health).
///
/// ```
/// let app = slipstream::App::new();
/// let health = app.handle().health();
/// assert!(!health.is_ok());
/// assert_eq!(health.reasons(), ["the application is not running"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    status: &'static str,
    reasons: Vec<String>,
}

impl Health {
    /// Whether the application is healthy.
    pub fn is_ok(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Why it is not (empty when it is).
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }
}

/// What a running application reports about one of its handlers (the JSON of the admin
/// server's `GET /handlers`). Get them with
/// [`AppHandle::handler_status`](crate::AppHandle::handler_status).
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct HandlerStatus {
    /// The handler's name.
    pub name: &'static str,
    /// The module it is declared in.
    pub module: &'static str,
    /// Its `source` expressions, as written.
    pub sources: &'static [&'static str],
    /// Its `sink` expressions, as written.
    pub sinks: &'static [&'static str],
    /// Its error policy: `"stop"`, `"skip"` or `"dead_letter"`.
    pub on_error: &'static str,
    /// Where it is in its life.
    pub state: HandlerState,
    /// Whether its input is paused.
    pub paused: bool,
    /// The error it stopped with.
    pub error: Option<String>,
    /// Items received, outputs produced and failures, when metrics are enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<HandlerCounters>,
}

/// The counters of a handler, when metrics are enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HandlerCounters {
    /// Items received.
    pub messages: u64,
    /// Outputs produced.
    pub outputs: u64,
    /// Failures: errors returned, panics and sink failures.
    pub errors: u64,
}

impl Monitor {
    /// The application's health; `shutting_down` when a shutdown has started, `failure` the
    /// error stopping the application, if any. It never blocks.
    pub(crate) fn health(&self, shutting_down: bool, failure: Option<String>) -> Health {
        let mut reasons = Vec::new();
        if !self.started() {
            reasons.push("the application is not running".to_owned());
        } else if shutting_down {
            reasons.push("the application is shutting down".to_owned());
        }
        let handlers = self.handlers();
        // A failure outside a handler's loop (a topic that cannot be read, say).
        if let Some(failure) = failure
            && !handlers.iter().any(|h| h.state() == HandlerState::Failed)
        {
            reasons.push(format!(
                "the application is stopping on an error: {failure}"
            ));
        }
        for handler in handlers {
            let name = handler.info.name;
            match handler.state() {
                HandlerState::Starting => {
                    reasons.push(format!("handler `{name}` has not started yet"))
                }
                HandlerState::Failed => reasons.push(format!(
                    "handler `{name}` stopped with an error: {}",
                    handler.failure().unwrap_or_default()
                )),
                // While shutting down every handler finishes: that reason says it all.
                HandlerState::Finished if !shutting_down => reasons.push(format!(
                    "handler `{name}` is no longer running: its source has ended"
                )),
                HandlerState::Running | HandlerState::Finished => {}
            }
        }
        for consumer in self.consumer_statuses() {
            if !consumer.is_finished() && consumer.assignment().is_empty() {
                reasons.push(format!(
                    "topic `{}` has no partitions assigned",
                    consumer.topic()
                ));
            }
        }
        reasons.extend(self.problems());
        Health {
            status: if reasons.is_empty() {
                "ok"
            } else {
                "unavailable"
            },
            reasons,
        }
    }

    /// The status of every handler of the run.
    pub(crate) fn statuses(&self) -> Vec<HandlerStatus> {
        self.handlers().iter().map(|h| status(h)).collect()
    }

    /// Every metric, in Prometheus' text format (version 0.0.4). It blocks while it asks the
    /// broker about topic partitions (five seconds at most).
    pub(crate) fn prometheus(&self) -> String {
        let mut out = String::new();
        let handlers = self.handlers();
        gauge_family(
            &mut out,
            "slipstream_handler_up",
            "Whether a handler is running (1) or not (0: starting, finished or failed).",
            handlers.iter().map(|h| {
                let up = h.state() == HandlerState::Running;
                (labels(&[("handler", h.info.name)]), i64::from(up))
            }),
        );
        let measured: Vec<_> = handlers
            .iter()
            .filter_map(|h| Some((h.info.name, h.counters()?)))
            .collect();
        if !measured.is_empty() {
            family(
                &mut out,
                "slipstream_handler_messages_total",
                "counter",
                "Items a handler has received.",
            );
            for (name, c) in &measured {
                sample(
                    &mut out,
                    "slipstream_handler_messages_total",
                    &labels(&[("handler", name)]),
                    c.messages(),
                );
            }
            family(
                &mut out,
                "slipstream_handler_outputs_total",
                "counter",
                "Outputs a handler has produced (returned or emitted).",
            );
            for (name, c) in &measured {
                sample(
                    &mut out,
                    "slipstream_handler_outputs_total",
                    &labels(&[("handler", name)]),
                    c.outputs(),
                );
            }
            family(
                &mut out,
                "slipstream_handler_errors_total",
                "counter",
                "Failures of a handler: errors it returned, panics, and sinks failing to take its outputs.",
            );
            for (name, c) in &measured {
                for kind in ErrorKind::ALL {
                    let labels = labels(&[("handler", name), ("kind", kind.label())]);
                    sample(
                        &mut out,
                        "slipstream_handler_errors_total",
                        &labels,
                        c.errors(kind),
                    );
                }
            }
            let histogram = "slipstream_handler_processing_seconds";
            family(
                &mut out,
                histogram,
                "histogram",
                "Time to handle an item and deliver its outputs to every sink.",
            );
            for (name, c) in &measured {
                let (buckets, sum) = c.histogram().snapshot();
                for (bound, count) in BOUNDS
                    .iter()
                    .map(|b| b.to_string())
                    .chain(["+Inf".to_owned()])
                    .zip(buckets)
                {
                    let labels = labels(&[("handler", name), ("le", &bound)]);
                    sample(&mut out, &format!("{histogram}_bucket"), &labels, count);
                }
                let labels = labels(&[("handler", name)]);
                sample(&mut out, &format!("{histogram}_sum"), &labels, sum);
                sample(
                    &mut out,
                    &format!("{histogram}_count"),
                    &labels,
                    buckets[BOUNDS.len()],
                );
            }
        }
        self.partition_metrics(&mut out);
        out
    }

    fn partition_metrics(&self, out: &mut String) {
        let mut rows = Vec::new();
        let mut undecodable = Vec::new();
        let mut rebalances = Vec::new();
        let mut restored = Vec::new();
        let mut restore_lag = Vec::new();
        let deadline = std::time::Instant::now() + SCRAPE_BUDGET;
        for consumer in self.consumers() {
            let group = consumer.group().unwrap_or("").to_owned();
            let labels = labels(&[("topic", consumer.topic()), ("group", &group)]);
            if !undecodable.iter().any(|(l, _)| *l == labels) {
                undecodable.push((labels.clone(), consumer.undecodable() as i64));
                rebalances.push((labels, consumer.rebalances() as i64));
                for r in consumer.restorations() {
                    let partition = r.partition.to_string();
                    let labels = self::labels(&[
                        ("topic", consumer.topic()),
                        ("changelog", &r.changelog),
                        ("partition", &partition),
                    ]);
                    restored.push((labels.clone(), r.restored as i64));
                    restore_lag.push((labels, r.left));
                }
            }
            for p in consumer.partitions(deadline) {
                rows.push((consumer.topic().to_owned(), group.clone(), p));
            }
        }
        counter_family(
            out,
            "slipstream_topic_undecodable_total",
            "Messages of the topic its codecs could not decode.",
            undecodable.into_iter(),
        );
        counter_family(
            out,
            "slipstream_topic_rebalances_total",
            "Assignments and revocations of the topic consumer's partitions.",
            rebalances.into_iter(),
        );
        counter_family(
            out,
            "slipstream_restore_records_total",
            "Changelog records applied to restore a partition of state that follows the topic.",
            restored.into_iter(),
        );
        gauge_family(
            out,
            "slipstream_restore_lag",
            "Changelog records left to apply before the partition's state is restored.",
            restore_lag.into_iter(),
        );
        // Two consumers of one topic without a group (two `Topic` statics) would report the
        // same series twice, which Prometheus rejects: the first one is reported.
        let mut seen = std::collections::HashSet::new();
        rows.retain(|(topic, group, p)| seen.insert((topic.clone(), group.clone(), p.partition)));
        let families: [(&str, &str, PartitionField); 4] = [
            (
                "slipstream_topic_partition_position",
                "The offset of the next message a topic consumer reads from the partition.",
                |p| p.position,
            ),
            (
                "slipstream_topic_partition_committed_offset",
                "The offset the consumer group has committed for the partition.",
                |p| p.committed,
            ),
            (
                "slipstream_topic_partition_high_watermark",
                "The partition's high watermark (the offset after its last message).",
                |p| p.high_watermark,
            ),
            (
                "slipstream_topic_partition_lag",
                "Messages in the partition after the committed offset (after the read position when the group has committed nothing for it, or without a group).",
                |p| p.lag(),
            ),
        ];
        for (name, help, value) in families {
            gauge_family(
                out,
                name,
                help,
                rows.iter().filter_map(|(topic, group, p)| {
                    let partition = p.partition.to_string();
                    let labels = labels(&[
                        ("topic", topic),
                        ("partition", &partition),
                        ("group", group),
                    ]);
                    Some((labels, value(p)?))
                }),
            );
        }
    }
}

/// How long one report may spend asking brokers about partitions; past it, the last known
/// values are reported.
const SCRAPE_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads one value of a partition's report.
type PartitionField = fn(&PartitionReport) -> Option<i64>;

fn status(handler: &HandlerStats) -> HandlerStatus {
    let info = handler.info;
    HandlerStatus {
        name: info.name,
        module: info.module,
        sources: info.sources,
        sinks: info.sinks,
        on_error: handler.policy.name(),
        state: handler.state(),
        paused: handler.pause.is_paused(),
        error: handler.failure(),
        counters: handler.counters().map(|c| HandlerCounters {
            messages: c.messages(),
            outputs: c.outputs(),
            errors: ErrorKind::ALL.iter().map(|&k| c.errors(k)).sum(),
        }),
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A counter family, written only when it has samples.
fn counter_family(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (String, i64)>,
) {
    samples_family(out, name, "counter", help, samples);
}

/// A gauge family, written only when it has samples.
fn gauge_family(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (String, i64)>,
) {
    samples_family(out, name, "gauge", help, samples);
}

/// A family with its samples, if it has any.
fn samples_family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Iterator<Item = (String, i64)>,
) {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return;
    }
    family(out, name, kind, help);
    for (labels, value) in samples {
        sample(out, name, &labels, value);
    }
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

/// `key="value",...` with the values escaped as the text format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("handler", "a\"b\\c\nd"), ("kind", "x")]),
            r#"handler="a\"b\\c\nd",kind="x""#
        );
    }
}
