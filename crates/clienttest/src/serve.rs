//! The async shell: accepts clients on a listener and tests each one.

use bleedwatch_probe::conn::StreamTest;
use bleedwatch_probe::ProbeMode;

use crate::tester::{ClientTestResult, ClientTester, ServerFactory};

/// Options for [`serve_client_tests`].
#[derive(Debug, Clone)]
pub struct ClientTestOptions {
    pub mode: ProbeMode,
    pub timeouts: bleedwatch_probe::conn::Timeouts,
    /// Stop after this many clients (None: run until the task is dropped).
    pub max_clients: Option<usize>,
    /// Play the server side of this STARTTLS dialogue first (e.g. an SMTP server offering STARTTLS,
    /// so an MTA relaying through us is tested as a TLS client).
    pub starttls: Option<bleedwatch_starttls::Protocol>,
}

/// Accepts clients on `listener`, tests each (concurrently) in the middle of the handshake, and sends
/// one result per client.
pub async fn serve_client_tests(listener: tokio::net::TcpListener, opts: ClientTestOptions, results: tokio::sync::mpsc::Sender<ClientTestResult>) {
    serve_client_tests_with(listener, opts, None, results).await
}

/// Like [`serve_client_tests`]; with `after_handshake`, each client completes a handshake with a
/// server session from the factory and is tested inside the established session.
pub async fn serve_client_tests_with(
    listener: tokio::net::TcpListener,
    opts: ClientTestOptions,
    after_handshake: Option<ServerFactory>,
    results: tokio::sync::mpsc::Sender<ClientTestResult>,
) {
    let mut served = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    while opts.max_clients.is_none_or(|max| served < max) {
        let Ok((mut stream, peer)) = listener.accept().await else { continue };
        served += 1;
        let (opts, results) = (opts.clone(), results.clone());
        let server = after_handshake.as_ref().map(|make| make());
        tasks.spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut tester = match server {
                Some(server) => ClientTester::after_handshake(opts.mode, server),
                None => ClientTester::new(opts.mode),
            };
            let service = opts.starttls.map(|p| p.name()).unwrap_or("tls");
            if let Some(protocol) = opts.starttls {
                let params = bleedwatch_starttls::ServerParams { hostname: "client-test.bleedwatch.invalid".into(), ..Default::default() };
                let deadline = tokio::time::Instant::now() + opts.timeouts.handshake;
                match bleedwatch_starttls::io::accept_starttls(&mut stream, protocol, params, deadline).await {
                    Ok(leftover) => tester.feed(&leftover),
                    Err(e) => {
                        tester.outcome.log.push(format!("{} dialogue: {e}", protocol.name()));
                        tester.feed_reset();
                        let _ = results.send(tester.report(peer, service)).await;
                        return;
                    }
                }
            }
            let tester = bleedwatch_probe::conn::drive_test(&mut stream, tester, &opts.timeouts).await;
            let _ = results.send(tester.report(peer, service)).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
