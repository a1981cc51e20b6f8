//! What `--starttls auto` makes of a port whose answer to our ClientHello is not TLS: a real nginx
//! serving plain HTTP, a listener of the test's own that answers with random bytes, and one that
//! closes on every ClientHello but answers PostgreSQL's SSLRequest with `N`. The answer itself is
//! the verdict (no banner wait), and `duration_ms` covers the whole endpoint.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, ScanStatus, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::servers::{free_port, require, Server};

/// The scanner's defaults: `--starttls auto`, a 3 s banner wait.
fn defaults() -> EndpointOptions {
    EndpointOptions::default()
}

async fn scan(addr: SocketAddr, opts: &EndpointOptions) -> (EndpointResult, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), probe_endpoint(&EndpointTarget { addr, host: None }, opts)).await.expect("the scan did not end");
    (result, started.elapsed())
}

/// The endpoint's own clock agrees with the wall clock around it.
fn assert_duration_covers(result: &EndpointResult, elapsed: Duration) {
    let measured = Duration::from_millis(result.duration_ms);
    assert!(measured <= elapsed, "duration_ms {} above the {elapsed:?} it took", result.duration_ms);
    assert!(elapsed - measured < Duration::from_millis(100), "duration_ms {} for an endpoint that took {elapsed:?}", result.duration_ms);
}

/// Real nginx answering plain HTTP on a loopback port: `HTTP/1.1 400 Bad Request` to our
/// ClientHello says it all.
#[tokio::test]
async fn an_http_answer_to_the_hello_is_not_tls_at_once() {
    if !require("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = dir.path().display();
    let conf = format!(
        "master_process off;\nworker_processes 1;\nerror_log {p}/error.log;\npid {p}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
         server {{ listen 127.0.0.1:{port}; return 200 ok; }}\n}}\n"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(dir.path()).arg("-c").arg(&conf_path).args(["-g", "daemon off;"]);
    let server = Server::start("nginx", cmd, SocketAddr::from(([127, 0, 0, 1], port)));
    let opts = defaults();
    let (r, elapsed) = scan(server.addr, &opts).await;
    drop(server);
    assert_eq!(r.service, "not-tls", "{r:#?}");
    assert_eq!(r.status, ScanStatus::NotTls, "{r:#?}");
    assert_eq!(r.heartbleed, Verdict::NotApplicable, "{r:#?}");
    let reason = r.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("http") && reason.contains("HTTP/1.1 400 Bad Request"), "{reason}");
    assert!(elapsed < opts.banner_wait / 3, "took {elapsed:?}");
    assert_duration_covers(&r, elapsed);
}

/// Answers whatever comes first with 300 bytes that no protocol starts with, then stays open.
async fn random_bytes_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // A fixed pseudo-random sequence; its first byte is not one any protocol opens with.
        let mut state = 0x2545_f491_u32;
        let mut noise: Vec<u8> = (0..300)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        noise[0] = 0x9c;
        // Bounded: a scan needs a handful of connections.
        for _ in 0..32 {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let noise = noise.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                    let _ = stream.write_all(&noise).await;
                }
                tokio::time::sleep(Duration::from_secs(20)).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn random_bytes_in_answer_are_inconclusive_at_once() {
    let (addr, task) = random_bytes_listener().await;
    let opts = defaults();
    let (r, elapsed) = scan(addr, &opts).await;
    task.abort();
    assert_eq!(r.service, "unknown", "{r:#?}");
    assert_eq!(r.status, ScanStatus::NotTls, "{r:#?}");
    assert_eq!(r.heartbleed, Verdict::Inconclusive, "{r:#?}");
    assert!(elapsed < opts.banner_wait / 3, "took {elapsed:?}");
    assert_duration_covers(&r, elapsed);
}

/// Closes each ClientHello after `delay` without a word, and answers PostgreSQL's SSLRequest with
/// `N` as a PostgreSQL server without TLS does; silent until spoken to.
async fn postgres_without_tls(delay: Duration) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let Ok(n) = stream.read(&mut buf).await else { return };
                if buf[..n] == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                    let _ = stream.write_all(b"N").await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                } else {
                    tokio::time::sleep(delay).await;
                }
            });
        }
    });
    (addr, task)
}

/// An endpoint that went through the version sweep, the banner wait and a client-first dialogue
/// reports all of that time, not 0.
#[tokio::test]
async fn duration_covers_detection_and_every_version() {
    let delay = Duration::from_millis(200);
    let (addr, task) = postgres_without_tls(delay).await;
    let opts = EndpointOptions { banner_wait: Duration::from_millis(600), ..defaults() };
    let (r, elapsed) = scan(addr, &opts).await;
    task.abort();
    assert_eq!(r.service, "plaintext-no-tls", "{r:#?}");
    assert_eq!(r.heartbleed, Verdict::NotApplicable, "{r:#?}");
    // Four versions closed after the delay each, then the banner wait.
    assert!(elapsed >= delay * 4 + opts.banner_wait, "took {elapsed:?}");
    assert_duration_covers(&r, elapsed);
}
