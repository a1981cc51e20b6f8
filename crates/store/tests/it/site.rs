//! A test endpoint on a fixed loopback port whose server changes between scans, as a real one
//! does during a response: patched (vulnerable → fixed), certificates swapped (same key reissued,
//! new key), stopped. Scans are real: the probe over loopback TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabServer, LabServerHandle};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointTarget};

pub struct Site {
    pub addr: SocketAddr,
    server: Option<LabServerHandle>,
}

impl Site {
    pub async fn start(behaviour: Behaviour, identity: &LabIdentity) -> Site {
        let server = LabServer::bind("127.0.0.1:0".parse().unwrap(), config(behaviour, identity)).await.unwrap();
        Site { addr: server.local_addr(), server: Some(server) }
    }

    /// Replaces the server on the same port.
    pub async fn switch(&mut self, behaviour: Behaviour, identity: &LabIdentity) {
        self.stop().await;
        // The port may still be held briefly: retry.
        for _ in 0..250 {
            match LabServer::bind(self.addr, config(behaviour, identity)).await {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        panic!("could not bind {} again", self.addr);
    }

    /// Nothing listens any more: scans see connection refused.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        // The listener closes once its aborted task is dropped, a moment later; until then a
        // connection is accepted by the kernel and reset, not refused. Wait (bounded) for refusal.
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} still accepts connections after its server stopped", self.addr);
    }

    /// Scans the endpoint for real and returns its JSON line.
    pub async fn scan(&self) -> serde_json::Value {
        let options = EndpointOptions {
            timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(20), heartbeat: Duration::from_secs(20) },
            tls13_fallback: false,
            ..EndpointOptions::default()
        };
        let target = EndpointTarget { addr: self.addr, host: None };
        let result = tokio::time::timeout(Duration::from_secs(90), probe_endpoint(&target, &options)).await.unwrap();
        serde_json::to_value(&result).unwrap()
    }
}

fn config(behaviour: Behaviour, identity: &LabIdentity) -> LabConfig {
    LabConfig::new(behaviour, Arc::new(identity.clone()))
}
