//! A SASL_SSL connection to an Apache Kafka node of the test's own. Its client listener requires
//! SCRAM-SHA-256 authentication and a TLS proxy started here fronts it (the test's certificates
//! stay in the test); the node advertises the proxy's address, so every connection the clients
//! make is TLS and authenticated. A topic → handler → topic run goes through it, in a child process logging
//! everything (`debug=all`), and the password appears nowhere in that log; a wrong password,
//! or a CA that did not sign the broker's certificate, fails start-up at once naming the cause.
//! Ignored in the mock-cluster pass; the real-broker pass of `tests/run.sh` runs it.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::Collected;
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

use crate::cluster::Cluster;

const USER: &str = "slipstream-test";
/// Distinctive, so that finding it in a log cannot be a coincidence.
const PASSWORD: &str = "pw-7c1e9d-never-logged";
const RECORDS: usize = 100;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// The child's settings: SASL_SSL with SCRAM, the test CA, every librdkafka debug context.
fn conf(group: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", env("SECURE_TEST_SERVERS")),
        ("security.protocol", "SASL_SSL".to_owned()),
        ("sasl.mechanism", "SCRAM-SHA-256".to_owned()),
        ("sasl.username", USER.to_owned()),
        ("sasl.password", env("SECURE_TEST_PASSWORD")),
        ("ssl.ca.location", env("SECURE_TEST_CA")),
        ("debug", "all".to_owned()),
        ("group.id", group.to_owned()),
        ("auto.offset.reset", "earliest".to_owned()),
    ]
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new("secure-in")
        .conf(conf("secure-group"))
        .stop_at_end(true)
        .connect_timeout(Duration::from_secs(10))
});
static OUTPUT: LazyLock<Topic> =
    LazyLock::new(|| Topic::new("secure-out").conf(conf("secure-writer")));
static FORWARDED: Collected<String> = Collected::new();

#[handle(source = INPUT, sink = [OUTPUT])]
fn secure_forward(msg: Message<String, String>) -> (String, String) {
    FORWARDED.push(msg.value.clone());
    (msg.key.unwrap_or_default(), msg.value)
}

/// A producer-only application: a timer feeding the output.
#[handle(source = slipstream::timer(Duration::from_millis(10)), sink = [OUTPUT])]
fn secure_tick() -> (String, String) {
    ("tick".to_owned(), "tock".to_owned())
}

/// The run over SASL_SSL, when this binary is the child: it logs everything to stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_secure_pipeline() {
    if std::env::var("SECURE_TEST_SERVERS").is_err() {
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(std::io::stderr)
        .init();
    if env("SECURE_TEST_PREPARE") == "1" {
        INPUT.create(3).await.unwrap();
        OUTPUT.create(3).await.unwrap();
        for i in 0..RECORDS {
            INPUT.send(format!("k{i}"), i.to_string()).await.unwrap();
        }
    }
    let handler = match env("SECURE_TEST_HANDLER") {
        name if name.is_empty() => "secure_forward".to_owned(),
        name => name,
    };
    match slipstream::App::new().handlers([handler]).run().await {
        Ok(()) => println!("child forwarded {}", FORWARDED.len()),
        Err(error) => println!("child failed: {error}"),
    }
}

fn child(servers: SocketAddr, ca: &Path, password: &str, prepare: bool) -> Output {
    child_running("secure_forward", servers, ca, password, prepare)
}

/// The child, running handler `handler`.
fn child_running(
    handler: &str,
    servers: SocketAddr,
    ca: &Path,
    password: &str,
    prepare: bool,
) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .env("SECURE_TEST_HANDLER", handler)
        .args([
            "--exact",
            "secure::child_secure_pipeline",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SECURE_TEST_SERVERS", servers.to_string())
        .env("SECURE_TEST_CA", ca)
        .env("SECURE_TEST_PASSWORD", password)
        .env("SECURE_TEST_PREPARE", if prepare { "1" } else { "0" })
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A test CA and a certificate for 127.0.0.1 signed by it; the CA goes to `ca_file`.
fn acceptor(ca_file: &Path) -> SslAcceptor {
    fn name(common: &str) -> openssl::x509::X509Name {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", common).unwrap();
        name.build()
    }
    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }
    fn builder(serial: u32, subject: &str, key: &PKey<Private>) -> openssl::x509::X509Builder {
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        cert.set_serial_number(&serial).unwrap();
        cert.set_subject_name(&name(subject)).unwrap();
        cert.set_issuer_name(&name("slipstream test CA")).unwrap();
        cert.set_pubkey(key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        cert
    }
    let ca_key = key();
    let mut ca = builder(1, "slipstream test CA", &ca_key);
    let constraints = BasicConstraints::new().critical().ca().build().unwrap();
    ca.append_extension(constraints).unwrap();
    let usage = KeyUsage::new().critical().key_cert_sign().build().unwrap();
    ca.append_extension(usage).unwrap();
    ca.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = ca.build();
    std::fs::write(ca_file, ca.to_pem().unwrap()).unwrap();

    let broker_key = key();
    let mut broker = builder(2, "127.0.0.1", &broker_key);
    let names = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&broker.x509v3_context(Some(&ca), None))
        .unwrap();
    broker.append_extension(names).unwrap();
    broker.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let broker = broker.build();

    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_private_key(&broker_key).unwrap();
    acceptor.set_certificate(&broker).unwrap();
    acceptor.check_private_key().unwrap();
    acceptor.build()
}

/// Ends TLS on `listener` and forwards the bytes to `upstream`; counts completed handshakes.
async fn tls_proxy(
    listener: TcpListener,
    acceptor: SslAcceptor,
    upstream: SocketAddr,
    handshakes: &'static AtomicUsize,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let ssl = Ssl::new(acceptor.context()).unwrap();
        tokio::spawn(async move {
            let mut tls = SslStream::new(ssl, tcp).unwrap();
            if Pin::new(&mut tls).accept().await.is_err() {
                return;
            }
            handshakes.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut broker) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts an Apache Kafka node of its own: the real-broker pass of tests/run.sh runs it"]
async fn a_sasl_ssl_run_works_and_never_logs_the_password() {
    let dir = std::env::temp_dir().join(format!("slipstream-secure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let tls = acceptor(&ca);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();

    // The user's SCRAM credentials are written when the node's storage is formatted.
    let broker = Cluster::start(
        "secure",
        1,
        &[
            "--sasl",
            &format!("{USER}:{PASSWORD}"),
            "--advertise",
            &proxy.port().to_string(),
        ],
    );
    let port = broker.port(1);
    static HANDSHAKES: AtomicUsize = AtomicUsize::new(0);
    let upstream = SocketAddr::from(([127, 0, 0, 1], port));
    let proxying = tokio::spawn(tls_proxy(listener, tls, upstream, &HANDSHAKES));

    // A CA that did not sign the proxy's certificate.
    let other_ca = dir.join("other-ca.pem");
    drop(acceptor(&other_ca));
    let (ok, refused, untrusted, producer_refused) = tokio::task::spawn_blocking(move || {
        (
            child(proxy, &ca, PASSWORD, true),
            child(proxy, &ca, "not-the-password", false),
            child(proxy, &other_ca, PASSWORD, false),
            child_running("secure_tick", proxy, &ca, "not-the-password", false),
        )
    })
    .await
    .unwrap();
    proxying.abort();
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);

    let stdout = String::from_utf8_lossy(&ok.stdout);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(
        stdout.contains(&format!("child forwarded {RECORDS}")),
        "the run over SASL_SSL: {stdout}\n{}",
        tail(&stderr)
    );
    assert!(HANDSHAKES.load(Ordering::SeqCst) > 0, "no TLS handshake");
    // The log is librdkafka's `debug=all` (its SASL exchange included) and ours at debug.
    assert!(
        stderr.contains("SASL"),
        "librdkafka's debug log was captured"
    );
    for stream in [&ok.stdout, &ok.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(PASSWORD),
            "the password is in the log"
        );
    }

    let refused_out = String::from_utf8_lossy(&refused.stdout);
    assert!(
        refused_out
            .contains("child failed: Kafka error on topic `secure-in`: authentication failed"),
        "a wrong password fails start-up at once, naming the cause: {refused_out}\n{}",
        tail(&String::from_utf8_lossy(&refused.stderr))
    );
    let untrusted_out = String::from_utf8_lossy(&untrusted.stdout);
    assert!(
        untrusted_out
            .contains("child failed: Kafka error on topic `secure-in`: the TLS handshake failed"),
        "a certificate that cannot be verified fails start-up at once: {untrusted_out}\n{}",
        tail(&String::from_utf8_lossy(&untrusted.stderr))
    );
    // A producer-only application refused its credentials fails its start as a consumer does.
    let producer_out = String::from_utf8_lossy(&producer_refused.stdout);
    assert!(
        producer_out
            .contains("child failed: Kafka error on topic `secure-out`: authentication failed"),
        "a wrong password fails a producer-only start at once: {producer_out}\n{}",
        tail(&String::from_utf8_lossy(&producer_refused.stderr))
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
