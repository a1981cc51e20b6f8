//! The scanner against TLS stacks that are not OpenSSL: Go's crypto/tls, Erlang/OTP's ssl and
//! Java's JSSE from Debian packages, each a tiny server from `tests/data/other-stacks/` started on
//! a loopback port by the test, and rustls (a workspace dependency) in a thread of the test. None of them has the heartbeat extension; the point is that
//! demanding evidence does not turn such healthy servers into `inconclusive`: each must answer our
//! records itself, so that every version it speaks gets a conclusive verdict, at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, ProbeMode, ScanStatus, Verdict};

use crate::servers::{free_port, make_cert, require, spki_sha256, KeyKind, Server};

/// Deadlines far above what an answer takes, so that a verdict reached by waiting one out shows.
const TIMEOUTS: Timeouts = Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat: Duration::from_secs(10) };

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/other-stacks")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// TLS 1.0 to 1.2: what the Go, Erlang and Java servers here speak.
const TLS10_TO_12: &[&str] = &["tls1.0", "tls1.1", "tls1.2"];

/// Scans `addr` and checks what every healthy stack without heartbeats must get: `no-heartbeat` at
/// each of `versions`, each decided by the fatal alert our records drew, well before any deadline,
/// with the server's certificate.
async fn assert_conclusive_no_heartbeat(stack: &str, addr: SocketAddr, cert: &Path, versions: &[&str]) {
    let opts = EndpointOptions { mode: ProbeMode::Safe, timeouts: TIMEOUTS, ..EndpointOptions::default() };
    let started = Instant::now();
    let r: EndpointResult = probe_endpoint(&EndpointTarget { addr, host: None }, &opts).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{stack}: took {took:?}, an answer should take milliseconds: {r:#?}");
    assert_eq!(r.status, ScanStatus::Success, "{stack}: {r:#?}");
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{stack}: {r:#?}");
    for &version in versions {
        assert_eq!(r.versions.get(version), Some(&Verdict::NoHeartbeat), "{stack} at {version}: {r:#?}");
        let detail = r.details.iter().find(|d| d.negotiated.as_deref() == Some(version)).unwrap_or_else(|| panic!("{stack}: no {version} detail: {r:#?}"));
        assert_eq!(detail.heartbeat_extension, None, "{stack} at {version}: {detail:#?}");
        let evidence = serde_json::to_value(&detail.evidence).unwrap();
        assert_eq!(evidence["kind"], "fatal-alert-after-records", "{stack} at {version}: {detail:#?}");
    }
    let c = r.certificate.as_ref().unwrap_or_else(|| panic!("{stack}: no certificate: {r:#?}"));
    assert_eq!(c.spki_sha256, spki_sha256(cert), "{stack}");
    // One line per stack in the test output: which alert each answered with.
    let alerts: Vec<String> = r.details.iter().map(|d| format!("{}: {}", d.offered, serde_json::to_value(&d.evidence).unwrap())).collect();
    eprintln!("{stack}: {} in {took:?}; {alerts:?}", serde_json::to_value(r.heartbleed).unwrap());
}

/// Runs `cmd` to completion (bounded by the tool itself: a compiler), failing loudly with its output.
fn run_to_completion(what: &str, cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Go 1.19's crypto/tls (Debian bookworm's golang-go), built from source with the standard library
/// only: no module download, no network.
#[tokio::test]
async fn go_crypto_tls_answers_with_a_fatal_alert() {
    if !require("go") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "go", KeyKind::Ecdsa, "go.test");
    let binary = dir.path().join("tls_server");
    let mut build = Command::new("go");
    build
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(data_dir().join("tls_server.go"))
        .env("HOME", dir.path())
        .env("GOCACHE", dir.path().join("gocache"))
        .env("GOPATH", dir.path().join("gopath"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        .env("CGO_ENABLED", "0");
    run_to_completion("go build", &mut build);
    let addr = loopback(free_port());
    let mut cmd = Command::new(&binary);
    cmd.arg(addr.to_string()).arg(&cert).arg(&key);
    let server = Server::start("Go crypto/tls server", cmd, addr);
    assert_conclusive_no_heartbeat("Go crypto/tls", server.addr, &cert, TLS10_TO_12).await;
}

/// Erlang/OTP 25's ssl application (erlang-ssl), compiled with erlc and run by erl.
#[tokio::test]
async fn erlang_otp_ssl_answers_with_a_fatal_alert() {
    if !require("erl") || !require("erlc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "erlang", KeyKind::Rsa, "erlang.test");
    run_to_completion("erlc", Command::new("erlc").arg("-o").arg(dir.path()).arg(data_dir().join("tls_server.erl")));
    let addr = loopback(free_port());
    let mut cmd = Command::new("erl");
    // No -sname: no distribution, so no epmd daemon outlives the test.
    cmd.env("HOME", dir.path()).args(["-noshell", "-pa"]).arg(dir.path()).args(["-s", "tls_server", "main"]).arg(addr.port().to_string()).arg(&cert).arg(&key);
    let server = Server::start("Erlang/OTP ssl server", cmd, addr);
    assert_conclusive_no_heartbeat("Erlang/OTP ssl", server.addr, &cert, TLS10_TO_12).await;
}

/// Java 17's JSSE (default-jdk-headless: a single-file source program needs the JDK's compiler),
/// with the test certificate in a PKCS#12 keystore made by `openssl pkcs12 -export`.
#[tokio::test]
async fn java_jsse_answers_with_a_fatal_alert() {
    if !require("java") || !require("javac") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "java", KeyKind::Rsa, "java.test");
    let keystore = dir.path().join("server.p12");
    let mut export = Command::new("openssl");
    export.args(["pkcs12", "-export", "-name", "server", "-passout", "pass:bleedwatch", "-in"]).arg(&cert).arg("-inkey").arg(&key).arg("-out").arg(&keystore);
    run_to_completion("openssl pkcs12 -export", &mut export);
    let addr = loopback(free_port());
    let mut cmd = Command::new("java");
    cmd.env("HOME", dir.path()).arg(data_dir().join("TlsServer.java")).arg(addr.port().to_string()).arg(&keystore).arg("bleedwatch");
    let server = Server::start("Java JSSE server", cmd, addr);
    assert_conclusive_no_heartbeat("Java JSSE", server.addr, &cert, TLS10_TO_12).await;
}

/// A rustls 0.23 server (ring provider, TLS 1.2 and 1.3) on a loopback port, in threads of the test
/// process; each connection is handshaken and read until the client closes or 15 s pass. Stopped,
/// and its accept thread joined, when dropped.
struct RustlsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl RustlsServer {
    fn start(cert: &Path, key: &Path) -> RustlsServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let config = Arc::clone(&config);
                std::thread::spawn(move || {
                    use std::io::Read;
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(15)));
                    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                    let mut stream = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = [0u8; 1024];
                    // Drives the handshake and reads until an error (our records draw one), EOF or the timeout.
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        RustlsServer { addr, stop, acceptor: Some(acceptor) }
    }
}

impl Drop for RustlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// rustls speaks TLS 1.2 and 1.3 only: TLS 1.0 and 1.1 are refused, TLS 1.2 decides.
#[tokio::test]
async fn rustls_answers_with_a_fatal_alert() {
    if !require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "rustls", KeyKind::Ecdsa, "rustls.test");
    let server = RustlsServer::start(&cert, &key);
    assert_conclusive_no_heartbeat("rustls", server.addr, &cert, &["tls1.2"]).await;
}
