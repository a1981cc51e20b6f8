//! Integration tests for bleedwatch-tls13 against local `openssl s_server`
//! instances on 127.0.0.1, with EC keys and certificates the tests generate
//! with the openssl CLI in a temporary directory.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bleedwatch_tls13::{
    fetch_tls13, fetch_tls13_with_options, Tls13Error, Tls13Options, TLS13_VERSION,
};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const HANDSHAKE_BUDGET: Duration = Duration::from_secs(10);

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "bleedwatch-tls13-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A P-256 CA and a P-256 leaf for `localhost` signed by it, as PEM and DER.
struct TestPki {
    dir: TempDir,
}

impl TestPki {
    fn generate() -> Self {
        let dir = TempDir::new();
        let (ca_key, ca_pem, leaf_key, leaf_pem) = (
            dir.file("ca.key"),
            dir.file("ca.pem"),
            dir.file("leaf.key"),
            dir.file("leaf.pem"),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path_str(&ca_key),
            "-out",
            path_str(&ca_pem),
            "-days",
            "2",
            "-subj",
            "/CN=bleedwatch tls13 test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ]);
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path_str(&leaf_key),
            "-out",
            path_str(&leaf_pem),
            "-days",
            "2",
            "-CA",
            path_str(&ca_pem),
            "-CAkey",
            path_str(&ca_key),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]);
        for name in ["ca", "leaf"] {
            openssl(&[
                "x509",
                "-in",
                path_str(&dir.file(&format!("{name}.pem"))),
                "-outform",
                "DER",
                "-out",
                path_str(&dir.file(&format!("{name}.der"))),
            ]);
        }
        TestPki { dir }
    }

    fn der(&self, name: &str) -> Vec<u8> {
        fs::read(self.dir.file(&format!("{name}.der"))).unwrap()
    }
}

/// A running `openssl s_server`, killed when dropped.
struct ServerGuard {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `openssl s_server` with the leaf, its CA as chain and `extra` args,
/// and wait until it accepts. Retries with a new port if the one picked was
/// taken in the meantime.
fn start_server(pki: &TestPki, extra: &[&str]) -> ServerGuard {
    for _attempt in 0..5 {
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = fs::File::create(pki.dir.file(&format!("s_server-{port}.log"))).unwrap();
        let child = Command::new("openssl")
            .arg("s_server")
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", path_str(&pki.dir.file("leaf.pem"))])
            .args(["-key", path_str(&pki.dir.file("leaf.key"))])
            .args(["-cert_chain", path_str(&pki.dir.file("ca.pem"))])
            .arg("-www")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = ServerGuard { child, addr };
        for _poll in 0..200 {
            if server.child.try_wait().unwrap().is_some() {
                break; // exited, most likely the port was taken: try another
            }
            if StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        drop(server);
    }
    panic!("openssl s_server did not start");
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

fn deadline() -> Instant {
    Instant::now() + HANDSHAKE_BUDGET
}

#[tokio::test]
async fn captures_chain_from_tls13_server() {
    let pki = TestPki::generate();
    let server = start_server(&pki, &["-tls1_3"]);

    let info = fetch_tls13(connect(server.addr).await, Some("localhost"), deadline())
        .await
        .unwrap();
    assert_eq!(info.version, TLS13_VERSION);
    assert!(
        (0x1301..=0x1303).contains(&info.cipher_suite),
        "{:#06x}",
        info.cipher_suite
    );
    assert_eq!(info.chain.len(), 2);
    assert_eq!(info.chain[0], pki.der("leaf"));
    assert_eq!(info.chain[1], pki.der("ca"));
    assert_eq!(info.alpn, None);
}

#[tokio::test]
async fn works_without_a_dns_name() {
    let pki = TestPki::generate();
    let server = start_server(&pki, &["-tls1_3"]);

    let by_peer_ip = fetch_tls13(connect(server.addr).await, None, deadline())
        .await
        .unwrap();
    assert_eq!(by_peer_ip.chain[0], pki.der("leaf"));
    let by_ip_literal = fetch_tls13(connect(server.addr).await, Some("127.0.0.1"), deadline())
        .await
        .unwrap();
    assert_eq!(by_ip_literal.chain[0], pki.der("leaf"));
}

#[tokio::test]
async fn reports_the_alpn_protocol_chosen() {
    let pki = TestPki::generate();
    let server = start_server(&pki, &["-tls1_3", "-alpn", "h2,http/1.1"]);

    let options = Tls13Options {
        alpn_protocols: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    let info = fetch_tls13_with_options(
        connect(server.addr).await,
        Some("localhost"),
        deadline(),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(info.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(info.chain[0], pki.der("leaf"));
}

#[tokio::test]
async fn tls12_only_server_refuses() {
    let pki = TestPki::generate();
    let server = start_server(&pki, &["-no_tls1_3"]);

    let error = fetch_tls13(connect(server.addr).await, Some("localhost"), deadline())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Tls13Error::Alert { code: 70, ref name } if name == "ProtocolVersion"),
        "{error:?}"
    );
    assert!(error.is_version_refusal());
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        // Accept and hold the connection open without ever answering.
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(socket);
    });

    let started = Instant::now();
    let error = fetch_tls13(
        connect(addr).await,
        None,
        started + Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Tls13Error::Timeout), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.abort();
}

#[tokio::test]
async fn server_that_hangs_up_is_reported() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        drop(socket);
    });

    let error = fetch_tls13(connect(addr).await, Some("localhost"), deadline())
        .await
        .unwrap_err();
    // Depending on timing the close shows as EOF or as a reset.
    assert!(
        matches!(error, Tls13Error::ConnectionClosed | Tls13Error::Io(_)),
        "{error:?}"
    );
    closer.await.unwrap();
}

#[tokio::test]
async fn non_tls_answer_is_a_handshake_error() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let responder = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    });

    let error = fetch_tls13(connect(addr).await, Some("localhost"), deadline())
        .await
        .unwrap_err();
    assert!(matches!(error, Tls13Error::Handshake(_)), "{error:?}");
    responder.abort();
}
