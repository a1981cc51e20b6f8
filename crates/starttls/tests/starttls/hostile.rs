//! Servers that misbehave, scripted on loopback: a banner that never ends, a server that accepts
//! STARTTLS and then sends garbage, one that never says anything, an SSH server and an HTTP server.
//! The scanner must give each a clear status and reason, within a time bounded by its configured
//! (short) timeouts, whether the dialect is forced or found by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::StarttlsMode;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, ScanStatus, Verdict};
use bleedwatch_starttls::Protocol;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const CONNECT: Duration = Duration::from_secs(2);
const HANDSHAKE: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_secs(2);
const BANNER_WAIT: Duration = Duration::from_secs(1);
/// Most one connection of a hostile server may write: bounds the test even if the scanner kept
/// reading (it must not: it stops at its own caps long before).
const MAX_WRITE: usize = 64 << 20;

fn options(mode: StarttlsMode) -> EndpointOptions {
    EndpointOptions {
        starttls: mode,
        timeouts: Timeouts { connect: CONNECT, handshake: HANDSHAKE, heartbeat: HEARTBEAT },
        banner_wait: BANNER_WAIT,
        ..EndpointOptions::default()
    }
}

/// The longest `--starttls auto` may take on a port that never gets to TLS: a direct-TLS try
/// (which stops at the first silent or non-TLS answer), the banner wait, and the client-first
/// dialects, all tried within one more handshake timeout; plus slack for a loaded machine.
fn auto_bound() -> Duration {
    HANDSHAKE + BANNER_WAIT + HANDSHAKE + Duration::from_secs(2)
}

/// A forced dialogue that never completes ends at the handshake timeout (plus slack).
fn forced_bound() -> Duration {
    HANDSHAKE + Duration::from_secs(2)
}

/// A scripted server on a free loopback port; every connection runs `handler`. Dropping it stops
/// the listener and every connection.
struct Hostile {
    addr: SocketAddr,
    /// Bytes written to clients so far, over all connections.
    written: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hostile<F, Fut>(handler: F) -> Hostile
where
    F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(Protocol::for_port(addr.port()).is_none());
    let written: Arc<AtomicUsize> = Arc::default();
    let counter = written.clone();
    let task = tokio::spawn(async move {
        // Owned here: aborting the listener task drops the set, which aborts every connection.
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            while connections.try_join_next().is_some() {}
            connections.spawn(handler(stream, counter.clone()));
        }
    });
    Hostile { addr, written, task }
}

async fn write_counted(stream: &mut TcpStream, bytes: &[u8], written: &AtomicUsize) -> bool {
    let ok = stream.write_all(bytes).await.is_ok();
    if ok {
        written.fetch_add(bytes.len(), Ordering::Relaxed);
    }
    ok
}

/// Reads and drops whatever the client sends until it closes.
async fn drain(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

async fn scan(server: &Hostile, mode: StarttlsMode) -> (EndpointResult, Duration) {
    let target = EndpointTarget { addr: server.addr, host: None };
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), probe_endpoint(&target, &options(mode)))
        .await
        .unwrap_or_else(|_| panic!("scan of {} ({mode:?}) hung", server.addr));
    (result, started.elapsed())
}

/// Nothing about Heartbleed can be said, and the result says why.
fn assert_inconclusive(result: &EndpointResult, service: &str, status: ScanStatus, reason: &str, what: &str) {
    assert_eq!(result.service, service, "{what}: {result:#?}");
    assert_eq!(result.status, status, "{what}: {result:#?}");
    assert_eq!(result.heartbleed, Verdict::Inconclusive, "{what}: {result:#?}");
    let said = result.reason.as_deref().unwrap_or_default();
    assert!(said.contains(reason), "{what}: reason {said:?} lacks {reason:?}");
    assert!(result.certificate.is_none(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_banner_is_cut_off_by_the_caps() {
    // Printable bytes, never a line end, as fast as the socket takes them.
    let server = hostile(|mut stream, written| async move {
        let chunk = [b'x'; 4096];
        while written.load(Ordering::Relaxed) < MAX_WRITE && write_counted(&mut stream, &chunk, &written).await {}
    })
    .await;
    let (forced, elapsed) = scan(&server, StarttlsMode::Force(Protocol::Smtp)).await;
    assert_inconclusive(&forced, "unknown", ScanStatus::StarttlsFailed, "STARTTLS failed", "endless banner, forced smtp");
    // The reply cap, not the timeout, ends it.
    assert!(elapsed < HANDSHAKE, "forced took {elapsed:?}");
    // Not TLS (the direct try sees the bytes), and no dialect either (the banner cap).
    let (found, elapsed) = scan(&server, StarttlsMode::Auto).await;
    assert_inconclusive(&found, "unknown", ScanStatus::NotTls, "banner not recognised within 16384 bytes", "endless banner, auto");
    assert!(found.reason.as_deref().unwrap().starts_with("not TLS (first bytes 7878787878)"), "{:?}", found.reason);
    assert!(elapsed < HANDSHAKE, "auto took {elapsed:?}");
    assert!(server.written.load(Ordering::Relaxed) < MAX_WRITE, "the scanner kept reading");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_starttls_go_ahead_is_not_tls() {
    // A plausible SMTP server that says "go ahead" and then sends text instead of a ServerHello.
    let server = hostile(|stream, written| async move {
        let mut lines = BufReader::new(stream);
        if !write_counted(lines.get_mut(), b"220 mx.hostile.test ESMTP\r\n", &written).await {
            return;
        }
        let mut line = String::new();
        while matches!(lines.read_line(&mut line).await, Ok(n) if n > 0) {
            let command = line.trim_end().to_ascii_uppercase();
            line.clear();
            let reply: &[u8] = if command.starts_with("EHLO") {
                b"250-mx.hostile.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
            } else if command == "STARTTLS" {
                let _ = write_counted(lines.get_mut(), b"220 2.0.0 Ready to start TLS\r\n", &written).await;
                let _ = write_counted(lines.get_mut(), b"*** this is not TLS at all ***\r\n", &written).await;
                drain(lines.get_mut()).await;
                return;
            } else {
                b"502 5.5.2 Error: command not recognized\r\n"
            };
            if !write_counted(lines.get_mut(), reply, &written).await {
                return;
            }
        }
    })
    .await;
    for mode in [StarttlsMode::Force(Protocol::Smtp), StarttlsMode::Auto] {
        let (result, elapsed) = scan(&server, mode).await;
        assert_inconclusive(&result, "smtp-starttls", ScanStatus::NotTls, "not TLS", &format!("garbage after STARTTLS, {mode:?}"));
        assert!(result.banner.as_deref().is_some_and(|b| b.contains("STARTTLS")), "{result:#?}");
        // The garbage decides at once; one version is enough to know.
        assert_eq!(result.details.len(), 1, "{result:#?}");
        assert!(elapsed < HANDSHAKE, "{mode:?} took {elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    let server = hostile(|mut stream, _| async move { drain(&mut stream).await }).await;
    let (forced, elapsed) = scan(&server, StarttlsMode::Force(Protocol::Smtp)).await;
    assert_inconclusive(&forced, "unknown", ScanStatus::StarttlsFailed, "timed out", "silent, forced smtp");
    assert!(elapsed >= HANDSHAKE && elapsed < forced_bound(), "forced took {elapsed:?}");
    // A client-first dialect forced: the same, the server never answers its request.
    let (forced, elapsed) = scan(&server, StarttlsMode::Force(Protocol::Postgres)).await;
    assert_inconclusive(&forced, "unknown", ScanStatus::StarttlsFailed, "timed out", "silent, forced postgres");
    assert!(elapsed < forced_bound(), "forced postgres took {elapsed:?}");
    // Auto: the direct-TLS hello times out, and a port that silent is not tried with every
    // dialect (that would multiply the timeout): one handshake timeout in all.
    let (found, elapsed) = scan(&server, StarttlsMode::Auto).await;
    assert_inconclusive(&found, "tls", ScanStatus::IoTimeout, "timeout during server-hello", "silent, auto");
    assert!(elapsed >= HANDSHAKE && elapsed < forced_bound(), "auto took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_first_guesses_that_hang_share_one_timeout() {
    // Drops a TLS ClientHello at once (so auto-detection looks for a client-first dialect), and
    // lets every other opening hang unanswered, noting how each connection began.
    let openings: Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Arc::default();
    let seen = openings.clone();
    let server = hostile(move |mut stream, _| {
        let seen = seen.clone();
        async move {
            let mut buf = [0u8; 4096];
            let Ok(n) = stream.read(&mut buf).await else { return };
            if n == 0 || buf[0] == 0x16 {
                return;
            }
            seen.lock().unwrap().push(buf[..n].to_vec());
            drain(&mut stream).await;
        }
    })
    .await;
    let (found, elapsed) = scan(&server, StarttlsMode::Auto).await;
    // Every client-first dialect was tried, in turn, each on its own connection...
    let openings = openings.lock().unwrap().clone();
    let kinds: Vec<&str> = openings
        .iter()
        .map(|o| match o.as_slice() {
            [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] => "postgres",
            [0x30, ..] => "ldap",
            [0x03, 0x00, ..] => "rdp",
            xml if String::from_utf8_lossy(xml).contains("xmlns='jabber:client'") => "xmpp",
            xml if String::from_utf8_lossy(xml).contains("xmlns='jabber:server'") => "xmpp-server",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["postgres", "ldap", "xmpp", "xmpp-server", "rdp"], "{openings:?}");
    // ...within one handshake timeout together, after the banner wait.
    assert!(elapsed < auto_bound(), "auto took {elapsed:?}, bound {:?}", auto_bound());
    // No version accepted, TLS 1.3 refused too, no dialect answered: nothing can be said.
    assert_inconclusive(&found, "tls", ScanStatus::HandshakeError, "no SSLv3-TLS 1.2 version accepted", "drops TLS, hangs otherwise");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_server_is_not_tls() {
    // OpenSSH's behaviour: its banner first, and a complaint and a close for a bad client banner.
    let server = hostile(|mut stream, written| async move {
        if !write_counted(&mut stream, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", &written).await {
            return;
        }
        let mut buf = [0u8; 4096];
        if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
            let _ = write_counted(&mut stream, b"Invalid SSH identification string.\r\n", &written).await;
        }
    })
    .await;
    for mode in [StarttlsMode::Auto, StarttlsMode::Force(Protocol::Smtp)] {
        let (result, elapsed) = scan(&server, mode).await;
        assert_not_tls(&result, "ssh banner \"SSH-2.0-OpenSSH_9.2p1", &format!("ssh, {mode:?}"));
        assert!(result.banner.as_deref().is_some_and(|b| b.contains("SSH-2.0-OpenSSH")), "{result:#?}");
        assert!(elapsed < HANDSHAKE, "{mode:?} took {elapsed:?}");
    }
}

/// A service that is not TLS and has no STARTTLS (ssh, http): said so, with what it sent.
fn assert_not_tls(result: &EndpointResult, reason: &str, what: &str) {
    assert_eq!(result.service, "not-tls", "{what}: {result:#?}");
    assert_eq!(result.status, ScanStatus::NotTls, "{what}: {result:#?}");
    // No TLS to attack: Heartbleed does not apply.
    assert_eq!(result.heartbleed, Verdict::NotApplicable, "{what}: {result:#?}");
    let said = result.reason.as_deref().unwrap_or_default();
    assert!(said.starts_with("not a TLS or STARTTLS service") && said.contains(reason), "{what}: reason {said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_is_not_tls() {
    // nginx's answer to a request line it cannot parse, then a close.
    let server = hostile(|mut stream, written| async move {
        let mut buf = [0u8; 4096];
        if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
            let body = "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
            let response = format!(
                "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = write_counted(&mut stream, response.as_bytes(), &written).await;
        }
    })
    .await;
    // Auto: the direct-TLS hello draws the 400, the port sends no banner, and the first
    // client-first dialect tried (an SSLRequest) draws the 400 again: an HTTP server.
    let (found, elapsed) = scan(&server, StarttlsMode::Auto).await;
    assert_not_tls(&found, "http banner \"HTTP/1.1 400 Bad Request", "http, auto");
    assert!(elapsed < auto_bound(), "auto took {elapsed:?}");
    // A client-first dialect forced at it: the HTTP answer is no SSLRequest answer.
    let (forced, elapsed) = scan(&server, StarttlsMode::Force(Protocol::Postgres)).await;
    assert_not_tls(&forced, "http banner \"HTTP/1.1 400 Bad Request", "http, forced postgres");
    assert!(elapsed < HANDSHAKE, "forced took {elapsed:?}");
    // A server-first dialect forced at it waits for a banner that never comes.
    let (forced, elapsed) = scan(&server, StarttlsMode::Force(Protocol::Imap)).await;
    assert_inconclusive(&forced, "unknown", ScanStatus::StarttlsFailed, "timed out", "http, forced imap");
    assert!(elapsed < forced_bound(), "forced took {elapsed:?}");
}
