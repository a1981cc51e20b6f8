//! Runs lab sessions on a TCP listener. Each connection has an idle and an overall time limit, so a
//! client that goes quiet cannot hold a test open.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::session::{LabConfig, LabEvent, LabSession};

const IDLE_LIMIT: Duration = Duration::from_secs(15);
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

/// Events seen by a server, with the client's address.
pub type EventLog = Arc<Mutex<Vec<(SocketAddr, LabEvent)>>>;

pub struct LabServer;

/// A running lab server; dropping it stops the listener.
pub struct LabServerHandle {
    addr: SocketAddr,
    task: JoinHandle<()>,
    events: EventLog,
}

/// A live feed of what clients do, for the honeypot.
/// Each event comes with the client's address and the local address it connected to (the real
/// address, also when the server listens on a wildcard such as 0.0.0.0).
pub type EventFeed = tokio::sync::mpsc::UnboundedSender<(SocketAddr, SocketAddr, LabEvent)>;

impl LabServer {
    pub async fn bind(addr: SocketAddr, cfg: LabConfig) -> std::io::Result<LabServerHandle> {
        LabServer::bind_with(addr, cfg, None, None).await
    }

    /// Like [`LabServer::bind`], also sending every event to `feed` as it happens.
    pub async fn bind_with_feed(addr: SocketAddr, cfg: LabConfig, feed: Option<EventFeed>) -> std::io::Result<LabServerHandle> {
        LabServer::bind_with(addr, cfg, feed, None).await
    }

    /// The full form: an event feed, and a STARTTLS dialect the server speaks before TLS (it plays
    /// e.g. an SMTP server offering STARTTLS, then the lab TLS server).
    pub async fn bind_with(
        addr: SocketAddr,
        cfg: LabConfig,
        feed: Option<EventFeed>,
        starttls: Option<bleedwatch_starttls::Protocol>,
    ) -> std::io::Result<LabServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let events: EventLog = Arc::default();
        let log = events.clone();
        let cfg = Arc::new(cfg);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                let (cfg, log, feed) = (cfg.clone(), log.clone(), feed.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONNECTION_LIMIT, serve(stream, peer, &cfg, &log, feed.as_ref(), starttls)).await;
                });
            }
        });
        Ok(LabServerHandle { addr, task, events })
    }
}

impl LabServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything clients did so far.
    pub fn events(&self) -> Vec<(SocketAddr, LabEvent)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for LabServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    cfg: &LabConfig,
    log: &EventLog,
    feed: Option<&EventFeed>,
    starttls: Option<bleedwatch_starttls::Protocol>,
) {
    let _ = stream.set_nodelay(true);
    let mut session = LabSession::new(cfg.clone());
    if let Some(protocol) = starttls {
        let params = bleedwatch_starttls::ServerParams { hostname: "lab.bleedwatch.test".into(), ..Default::default() };
        let deadline = tokio::time::Instant::now() + IDLE_LIMIT;
        match bleedwatch_starttls::io::accept_starttls(&mut stream, protocol, params, deadline).await {
            Ok(leftover) => {
                session.feed(&leftover);
                let out = session.take_output();
                if !out.is_empty() && stream.write_all(&out).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match tokio::time::timeout(IDLE_LIMIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        session.feed(&buf[..n]);
        let out = session.take_output();
        let events = session.take_events();
        if let Some(feed) = feed {
            let local = stream.local_addr().unwrap_or(peer);
            for e in &events {
                let _ = feed.send((peer, local, e.clone()));
            }
        }
        if let Ok(mut l) = log.lock() {
            l.extend(events.into_iter().map(|e| (peer, e)));
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break;
        }
        if session.is_closed() {
            break;
        }
    }
    let _ = stream.shutdown().await;
}
