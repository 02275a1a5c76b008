//! `Conf`: Kafka client configuration — global defaults, per-topic settings, environment
//! overrides.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::RwLock;

use slipstream_core::Error;

static GLOBAL: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());

/// The prefix of environment variables that override every conf: `SLIPSTREAM_BOOTSTRAP_SERVERS`
/// sets `bootstrap.servers`.
pub const ENV_PREFIX: &str = "SLIPSTREAM_";

/// Kafka client settings, keyed by librdkafka property name (`bootstrap.servers`).
///
/// [`Conf::set`] merges global defaults that every [`Topic`](crate::Topic) starts from; a topic's
/// own `.conf([..])` overrides them; `SLIPSTREAM_<KEY>` environment variables (for example
/// `SLIPSTREAM_BOOTSTRAP_SERVERS`) override both. The Python original's underscore spellings
/// (`bootstrap_servers`, `sasl_plain_password`) are accepted and translated. Displaying a conf
/// hides secrets.
///
/// ```
/// use slipstream::Conf;
///
/// let conf = Conf::new().with([("bootstrap_servers", "localhost:29091"), ("sasl_plain_password", "hunter2")]);
/// assert_eq!(conf.get("bootstrap.servers"), Some("localhost:29091"));
/// assert_eq!(conf.to_string(), r#"{bootstrap.servers: "localhost:29091", sasl.password: "********"}"#);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Conf {
    entries: BTreeMap<String, String>,
}

impl Conf {
    /// An empty conf.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges `entries` into the global defaults (later calls override earlier ones).
    ///
    /// ```
    /// slipstream::Conf::set([("bootstrap_servers", "localhost:29091"), ("group_id", "demo")]);
    /// assert_eq!(slipstream::Conf::global().get("group.id"), Some("demo"));
    /// ```
    pub fn set<I, K, V>(entries: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: ToString,
    {
        let mut global = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
        for (key, value) in entries {
            global.insert(normalize_key(key.as_ref()), value.to_string());
        }
    }

    /// The global defaults set so far.
    pub fn global() -> Conf {
        Conf {
            entries: GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// This conf with `entries` added (overriding keys it already has).
    pub fn with<I, K, V>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: ToString,
    {
        for (key, value) in entries {
            self.entries
                .insert(normalize_key(key.as_ref()), value.to_string());
        }
        self
    }

    /// The value of `key` (any accepted spelling).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(&normalize_key(key)).map(String::as_str)
    }

    /// Every setting, by librdkafka property name, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether it holds no setting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.entries.insert(normalize_key(key), value.into());
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<String> {
        self.entries.remove(&normalize_key(key))
    }

    /// `overrides` over this conf, then the `SLIPSTREAM_*` environment variables over both.
    pub fn effective(&self, overrides: &Conf) -> Conf {
        let mut conf = self.clone();
        conf.entries.extend(overrides.entries.clone());
        conf.entries.extend(env_overrides());
        conf
    }

    /// Checks what every Kafka client needs.
    pub(crate) fn require_servers(&self, topic: &str) -> Result<(), Error> {
        match self.get("bootstrap.servers") {
            Some(servers) if !servers.trim().is_empty() => Ok(()),
            _ => Err(Error::Conf {
                topic: topic.to_owned(),
                key: "bootstrap.servers".to_owned(),
                message: "missing: set it with Conf::set, the topic's conf, or SLIPSTREAM_BOOTSTRAP_SERVERS"
                    .to_owned(),
            }),
        }
    }
}

/// The librdkafka name of a setting: lower case, dots for underscores, and the names the
/// Python original (aiokafka) uses for a few settings mapped to librdkafka's.
pub fn normalize_key(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase().replace('_', ".");
    match key.as_str() {
        "sasl.plain.username" => "sasl.username".to_owned(),
        "sasl.plain.password" => "sasl.password".to_owned(),
        "ssl.cafile" => "ssl.ca.location".to_owned(),
        "ssl.certfile" => "ssl.certificate.location".to_owned(),
        "ssl.keyfile" => "ssl.key.location".to_owned(),
        "ssl.password" => "ssl.key.password".to_owned(),
        "sasl.mechanisms" => "sasl.mechanism".to_owned(),
        _ => key,
    }
}

/// The `SLIPSTREAM_*` environment variables that name Kafka settings (other variables with
/// the prefix, such as `SLIPSTREAM_HTTP_ADDR`, are not Kafka's and are left alone).
fn env_overrides() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let (name, value) = (name.into_string().ok()?, value.into_string().ok()?);
            let key = normalize_key(name.strip_prefix(ENV_PREFIX)?);
            is_kafka_setting(&key, &value).then_some((key, value))
        })
        .collect()
}

/// Whether librdkafka knows the setting (an invalid value still counts: it is reported when a
/// client is created, naming the key).
fn is_kafka_setting(key: &str, value: &str) -> bool {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaConfRes;
    match rdkafka::ClientConfig::new()
        .set(key, value)
        .create_native_config()
    {
        Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..)) => false,
        _ => !key.is_empty(),
    }
}

/// Whether a setting holds a secret that must not be displayed.
fn is_secret(key: &str) -> bool {
    [
        "password",
        "secret",
        ".pem",
        "sasl.oauthbearer.config",
        "sasl.kerberos.keytab",
    ]
    .iter()
    .any(|s| key.contains(s))
}

impl fmt::Display for Conf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let shown = if is_secret(key) { "********" } else { value };
            write!(f, "{key}: {shown:?}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Conf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Conf {self}")
    }
}

impl<K: AsRef<str>, V: ToString> FromIterator<(K, V)> for Conf {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Conf::new().with(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_translated() {
        assert_eq!(normalize_key("bootstrap_servers"), "bootstrap.servers");
        assert_eq!(normalize_key("AUTO_OFFSET_RESET"), "auto.offset.reset");
        assert_eq!(normalize_key("sasl_plain_username"), "sasl.username");
        assert_eq!(normalize_key("group.id"), "group.id");
    }

    #[test]
    fn secrets_are_redacted_in_display_and_debug() {
        let conf: Conf = [
            ("sasl_plain_password", "p"),
            ("ssl.key.password", "q"),
            ("group_id", "g"),
        ]
        .into_iter()
        .collect();
        let shown = format!("{conf} {conf:?}");
        assert!(
            !shown.contains("\"p\"") && !shown.contains("\"q\""),
            "{shown}"
        );
        assert!(shown.contains(r#"group.id: "g""#));
    }

    #[test]
    fn only_kafka_settings_count_as_environment_overrides() {
        assert!(is_kafka_setting("bootstrap.servers", "x:1"));
        assert!(is_kafka_setting("session.timeout.ms", "not a number"));
        assert!(!is_kafka_setting("http.addr", "127.0.0.1:8080"));
    }

    #[test]
    fn a_missing_bootstrap_server_is_an_error() {
        let err = Conf::new().require_servers("emoji").unwrap_err();
        assert!(err.to_string().contains("bootstrap.servers"), "{err}");
        assert!(err.to_string().contains("emoji"), "{err}");
    }
}
