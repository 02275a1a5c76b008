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
/// `SLIPSTREAM_BOOTSTRAP_SERVERS`) override both; a `SLIPSTREAM_*` variable that names no setting
/// fails client creation with the closest one. The Python original's underscore spellings
/// (`bootstrap_servers`, `sasl_plain_password`) are accepted and translated. Displaying a conf
/// hides secrets (anything that may be one, including unknown `sasl.`/`ssl.` keys).
///
/// Two settings are slipstream's own, set the same ways and never passed to librdkafka:
/// `processing.guarantee` (`at_least_once`, the default, or `exactly_once`: see the README's
/// "Exactly-once") and `commit.interval.ms` (how often exactly-once commits a transaction, 100 by
/// default).
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

/// Settings slipstream reads itself, kept in a [`Conf`] like librdkafka's and never passed to a
/// client: the processing guarantee (`at_least_once`, the default, or `exactly_once`), how
/// often exactly-once commits its transaction, and whether state may start empty where the
/// group has committed positions already.
pub(crate) const OWN_SETTINGS: [&str; 3] = [GUARANTEE, COMMIT_INTERVAL, FRESH_STATE];
/// The processing guarantee: `at_least_once` (the default) or `exactly_once`.
pub(crate) const GUARANTEE: &str = "processing.guarantee";
/// How often (milliseconds) exactly-once commits a transaction; 100 by default.
pub(crate) const COMMIT_INTERVAL: &str = "commit.interval.ms";
/// `true`: a changelog created while the group has committed positions in the topic it
/// follows is not an error (the state starts empty on purpose). `false` by default.
pub(crate) const FRESH_STATE: &str = "state.fresh";

/// `SLIPSTREAM_*` variables that are not Kafka settings.
const OTHER_VARIABLES: [&str; 1] = ["SLIPSTREAM_HTTP_ADDR"];

/// Checks that every `SLIPSTREAM_*` environment variable names a Kafka setting (or another
/// variable slipstream reads): a misspelled one is an error naming the closest known setting,
/// not an override silently ignored.
pub(crate) fn check_environment(topic: &str) -> Result<(), Error> {
    let variables = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    check_variables(topic, variables)
}

/// [`check_environment`] over these variables.
fn check_variables(
    topic: &str,
    variables: impl IntoIterator<Item = (String, String)>,
) -> Result<(), Error> {
    for (name, value) in variables {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = normalize_key(rest);
        if OTHER_VARIABLES.contains(&name.as_str()) || is_kafka_setting(&key, &value) {
            continue;
        }
        let suggestion = closest_setting(&key)
            .map(|known| {
                format!(
                    "; did you mean {ENV_PREFIX}{} (`{known}`)?",
                    known.replace('.', "_").to_ascii_uppercase()
                )
            })
            .unwrap_or_default();
        return Err(Error::Conf {
            topic: topic.to_owned(),
            key: name.clone(),
            message: format!("the environment variable names no Kafka setting{suggestion}"),
        });
    }
    Ok(())
}

/// The known setting nearest to `key` (by edit distance), if any is near.
fn closest_setting(key: &str) -> Option<&'static str> {
    known_settings()
        .iter()
        .map(|known| (edit_distance(key, known), known.as_str()))
        .filter(|(distance, known)| *distance <= (known.len() / 3).max(2))
        .min()
        .map(|(_, known)| known)
}

/// Every setting librdkafka knows with a default value, and the common ones without.
fn known_settings() -> &'static [String] {
    static KNOWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known: Vec<String> = [
            GUARANTEE,
            COMMIT_INTERVAL,
            FRESH_STATE,
            "bootstrap.servers",
            "group.id",
            "group.instance.id",
            "sasl.username",
            "sasl.password",
            "sasl.oauthbearer.client.id",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.token.endpoint.url",
            "ssl.ca.location",
            "ssl.certificate.location",
            "ssl.key.location",
            "ssl.key.password",
            "transactional.id",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        known.extend(dumped_settings());
        known.sort();
        known.dedup();
        known
    })
}

/// The settings librdkafka's default global and topic configurations hold.
fn dumped_settings() -> Vec<String> {
    use rdkafka::bindings as rd;
    let mut names = Vec::new();
    // SAFETY: each configuration is created, dumped, and destroyed here; the dump is an array
    // of `count` C strings (names and values alternating) freed with its own function.
    unsafe {
        let conf = rd::rd_kafka_conf_new();
        let topic_conf = rd::rd_kafka_topic_conf_new();
        for (dump, count) in [
            {
                let mut count = 0usize;
                (rd::rd_kafka_conf_dump(conf, &mut count), count)
            },
            {
                let mut count = 0usize;
                (rd::rd_kafka_topic_conf_dump(topic_conf, &mut count), count)
            },
        ] {
            if dump.is_null() {
                continue;
            }
            for i in (0..count).step_by(2) {
                let name = *dump.add(i);
                if !name.is_null() {
                    names.push(
                        std::ffi::CStr::from_ptr(name)
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
            rd::rd_kafka_conf_dump_free(dump, count);
        }
        rd::rd_kafka_topic_conf_destroy(topic_conf);
        rd::rd_kafka_conf_destroy(conf);
    }
    names
}

/// The number of single-character edits between two strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
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
    if OWN_SETTINGS.contains(&key) {
        return true;
    }
    use rdkafka::types::RDKafkaConfRes;
    match rdkafka::ClientConfig::new()
        .set(key, value)
        .create_native_config()
    {
        Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..)) => false,
        _ => !key.is_empty(),
    }
}

/// Whether a setting may hold a secret, and is not displayed: deny by default, so that a
/// misspelled secret (`sasl.pasword`) is hidden too. Any key that mentions a password, secret,
/// token or key, any `.pem` or `.config`, and any key under `sasl.` or `ssl.` that librdkafka
/// does not know.
fn is_secret(key: &str) -> bool {
    let mentions = [
        "password", "secret", "token", "key", ".pem", ".config", "keytab",
    ]
    .iter()
    .any(|s| key.contains(s));
    mentions
        || ((key.starts_with("sasl.") || key.starts_with("ssl.")) && !is_kafka_setting(key, ""))
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

/// Whether `effective` asks for exactly-once; an unknown guarantee is an error naming the
/// choices.
pub(crate) fn exactly_once(effective: &Conf, what: &str) -> Result<bool, Error> {
    match effective.get(GUARANTEE).map(str::trim) {
        None | Some("at_least_once") => Ok(false),
        Some("exactly_once") => Ok(true),
        Some(other) => Err(Error::Conf {
            topic: what.to_owned(),
            key: GUARANTEE.to_owned(),
            message: format!("`{other}` is not a guarantee: use `at_least_once` or `exactly_once`"),
        }),
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
    fn a_misspelled_secret_is_hidden_too() {
        let conf: Conf = [("sasl.pasword", "hunter2"), ("sasl.username", "me")]
            .into_iter()
            .collect();
        let shown = conf.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(r#"sasl.username: "me""#), "{shown}");
    }

    #[test]
    fn a_misspelled_environment_variable_names_the_closest_setting() {
        let variables = |name: &str| vec![(name.to_owned(), "x".to_owned())];
        let err = check_variables("emoji", variables("SLIPSTREAM_BOOTSRAP_SERVERS")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("SLIPSTREAM_BOOTSRAP_SERVERS"), "{message}");
        assert!(
            message.contains("SLIPSTREAM_BOOTSTRAP_SERVERS"),
            "{message}"
        );
        assert!(message.contains("emoji"), "{message}");
        let err = check_variables("t", variables("SLIPSTREAM_SESION_TIMEOUT_MS")).unwrap_err();
        assert!(
            err.to_string().contains("SLIPSTREAM_SESSION_TIMEOUT_MS"),
            "{err}"
        );
        // Known settings, the admin server's address, and other variables are fine.
        check_variables(
            "t",
            [
                ("SLIPSTREAM_BOOTSTRAP_SERVERS", "x:1"),
                ("SLIPSTREAM_HTTP_ADDR", "9100"),
                ("HOME", "/root"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        )
        .unwrap();
    }

    #[test]
    fn a_missing_bootstrap_server_is_an_error() {
        let err = Conf::new().require_servers("emoji").unwrap_err();
        assert!(err.to_string().contains("bootstrap.servers"), "{err}");
        assert!(err.to_string().contains("emoji"), "{err}");
    }

    #[test]
    fn the_guarantee_is_read_and_a_wrong_one_names_the_choices() {
        use super::exactly_once;
        assert!(!exactly_once(&Conf::new(), "t").unwrap());
        let on = Conf::new().with([("processing_guarantee", "exactly_once")]);
        assert!(exactly_once(&on, "t").unwrap());
        let off = Conf::new().with([("processing.guarantee", "at_least_once")]);
        assert!(!exactly_once(&off, "t").unwrap());
        let wrong = Conf::new().with([("processing.guarantee", "exactly-once")]);
        let err = exactly_once(&wrong, "orders").unwrap_err().to_string();
        assert!(
            err.contains("processing.guarantee") && err.contains("orders"),
            "{err}"
        );
        assert!(err.contains("`at_least_once` or `exactly_once`"), "{err}");
    }

    #[test]
    fn slipstreams_own_settings_are_known() {
        assert!(is_kafka_setting(GUARANTEE, "exactly_once"));
        assert!(is_kafka_setting(COMMIT_INTERVAL, "100"));
        let variables = [(
            "SLIPSTREAM_PROCESSING_GUARANTEE".to_owned(),
            "exactly_once".to_owned(),
        )];
        assert!(check_variables("t", variables).is_ok());
        // That librdkafka never sees them: client/config.rs.
    }
}
