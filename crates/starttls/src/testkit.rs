//! Test helpers: drive a client against a server in memory, and feed scripted server bytes.

use crate::{ClientParams, ClientUpgrade, Protocol, ServerDialogue, ServerParams, ServerStep, Step};

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub client_ready: bool,
    pub server_start_tls: bool,
    pub client_step: Option<Step>,
    pub server_step: Option<ServerStep>,
    pub client_transcript: String,
    pub server_transcript: String,
}

/// Runs a full dialogue between our client and our server, delivering bytes in chunks of at most
/// `chunk` bytes.
pub(crate) fn run_pair(protocol: Protocol, client: ClientParams, server: ServerParams, chunk: usize) -> Outcome {
    let mut server = ServerDialogue::new(protocol, server);
    let mut client = ClientUpgrade::new(protocol, client);
    let first = client.start();
    drive(&mut client, &mut server, first, chunk.max(1))
}

pub(crate) fn run_pair_chunked(protocol: Protocol, client: ClientParams, server: ServerParams, chunk: usize) -> Outcome {
    run_pair(protocol, client, server, chunk)
}

/// Drives an already started client (its first bytes in `to_server`) against `server`.
pub(crate) fn drive(client: &mut ClientUpgrade, server: &mut ServerDialogue, mut to_server: Vec<u8>, chunk: usize) -> Outcome {
    let chunk = chunk.max(1);
    let mut outcome = Outcome::default();
    let mut to_client = server.start();
    for _round in 0..200 {
        let mut progressed = false;
        if !to_server.is_empty() && outcome.server_step.is_none() {
            progressed = true;
            let data = std::mem::take(&mut to_server);
            for piece in data.chunks(chunk) {
                match server.feed(piece) {
                    ServerStep::Send(bytes) => to_client.extend(bytes),
                    ServerStep::NeedMore => {}
                    step @ ServerStep::StartTls { .. } => {
                        if let ServerStep::StartTls { send_first, leftover } = &step {
                            to_client.extend(send_first);
                            assert!(leftover.is_empty(), "server leftover {leftover:?}");
                        }
                        outcome.server_start_tls = true;
                        outcome.server_step = Some(step);
                        break;
                    }
                    step @ ServerStep::Close { .. } => {
                        outcome.server_step = Some(step);
                        break;
                    }
                }
            }
        }
        if !to_client.is_empty() && outcome.client_step.is_none() {
            progressed = true;
            let data = std::mem::take(&mut to_client);
            for piece in data.chunks(chunk) {
                match client.feed(piece) {
                    Step::Send(bytes) => to_server.extend(bytes),
                    Step::NeedMore => {}
                    step => {
                        if let Step::Ready { send_first, leftover, .. } = &step {
                            to_server.extend(send_first);
                            assert!(leftover.is_empty(), "client leftover {leftover:?}");
                            outcome.client_ready = true;
                        }
                        outcome.client_step = Some(step);
                        break;
                    }
                }
            }
        }
        if !progressed || (outcome.client_step.is_some() && outcome.server_step.is_some()) {
            break;
        }
    }
    outcome.client_transcript = client.transcript();
    outcome.server_transcript = server.transcript();
    outcome
}

/// Feeds `server_bytes` to a fresh client in one go and returns the final step, or the last
/// non-final one.
pub(crate) fn client_result(protocol: Protocol, params: ClientParams, server_bytes: &[u8]) -> Step {
    let mut client = ClientUpgrade::new(protocol, params);
    client.start();
    client.feed(server_bytes)
}

/// Feeds a recorded server side byte by byte and in one piece and checks both give the same
/// final step; then checks that every truncation (all cuts) ends in a non-final step or the
/// same final kind, never a panic.
pub(crate) fn assert_all_cuts(protocol: Protocol, params: &ClientParams, server_bytes: &[u8]) -> Step {
    let whole = client_result(protocol, params.clone(), server_bytes);
    let mut client = ClientUpgrade::new(protocol, params.clone());
    client.start();
    let mut last = Step::NeedMore;
    for b in server_bytes {
        last = client.feed(std::slice::from_ref(b));
        if last.is_final() {
            break;
        }
    }
    assert_eq!(kind(&last), kind(&whole), "byte-wise {last:?} vs whole {whole:?}");
    for cut in 0..server_bytes.len() {
        let mut client = ClientUpgrade::new(protocol, params.clone());
        client.start();
        let step = client.feed(server_bytes.get(..cut).unwrap_or_default());
        // A prefix may already be final (e.g. a refusal before the end), but it must never claim
        // success where the whole exchange did not.
        if matches!(step, Step::Ready { .. }) {
            assert!(matches!(whole, Step::Ready { .. }), "cut {cut}: {step:?} vs {whole:?}");
        }
    }
    whole
}

pub(crate) fn kind(step: &Step) -> &'static str {
    match step {
        Step::Send(_) => "send",
        Step::NeedMore => "need-more",
        Step::Ready { .. } => "ready",
        Step::Unsupported { .. } => "unsupported",
        Step::Failed { .. } => "failed",
    }
}

/// Drives a scripted dialogue: `script` lists the server's replies; each reply is fed after the
/// client's previous output. Returns the last step and everything the client sent.
pub(crate) fn scripted(protocol: Protocol, params: ClientParams, script: &[&[u8]]) -> (Step, Vec<u8>) {
    let mut client = ClientUpgrade::new(protocol, params);
    let mut sent = client.start();
    let mut last = Step::NeedMore;
    for reply in script {
        last = client.feed(reply);
        match &last {
            Step::Send(bytes) => sent.extend(bytes),
            Step::Ready { send_first, .. } => {
                sent.extend(send_first);
                break;
            }
            Step::NeedMore => {}
            _ => break,
        }
    }
    (last, sent)
}

/// Feeds client bytes to a fresh server (after its greeting) and returns the step.
pub(crate) fn server_result(protocol: Protocol, client_bytes: &[u8]) -> ServerStep {
    let mut server = ServerDialogue::new(protocol, ServerParams::default());
    server.start();
    server.feed(client_bytes)
}

/// Any of a few fuzz-ish inputs must not panic in either role.
pub(crate) fn no_panic_on_garbage(protocol: Protocol) {
    let inputs: [&[u8]; 8] = [
        b"",
        b"\r\n",
        b"\0\0\0\0\0\0\0\0\0\0\0\0",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"<<<<>>>>'\"\"'",
        b"* OK\r\n+OK\r\n220 x\r\n",
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02],
        &[3, 0, 0, 7, 2, 0xf0, 0x80],
    ];
    for input in inputs {
        for cut in 0..=input.len() {
            let mut client = ClientUpgrade::new(protocol, ClientParams::with_domain("example.org"));
            client.start();
            let _ = client.feed(input.get(..cut).unwrap_or_default());
            let _ = client.feed(input.get(cut..).unwrap_or_default());
            let mut server = ServerDialogue::new(protocol, ServerParams::default());
            server.start();
            let _ = server.feed(input.get(..cut).unwrap_or_default());
            let _ = server.feed(input.get(cut..).unwrap_or_default());
        }
    }
}
