//! Fuzzing entry point (`fuzz/fuzz_targets/starttls_server_replies.rs`): the client role of every
//! dialect fed a hostile server's replies.

use crate::{identify, ClientParams, ClientUpgrade, Protocol, Step};

/// Most feeds per input: a dialogue that never ends must still end the run.
const MAX_FEEDS: usize = 4096;

/// The client the first byte selects: a known protocol ([`Protocol::ALL`] by index), or
/// auto-detection from the banner without a port hint (14) or on port 25 (15). The byte's value
/// modulo 16 counts, so every byte selects one.
pub fn client_for(selector: u8) -> ClientUpgrade {
    let params = ClientParams::with_domain("fuzz.test");
    match Protocol::ALL.get(usize::from(selector % 16)) {
        Some(&protocol) => ClientUpgrade::new(protocol, params),
        None if selector % 16 == 14 => ClientUpgrade::auto(params, None),
        None => ClientUpgrade::auto(params, Some(25)),
    }
}

/// `data`: a selector byte ([`client_for`]), a chunk byte (the server's bytes arrive in pieces of
/// that many bytes plus one), then what the server sends. Runs the client until a final step or
/// the end of the bytes; the transcript and [`identify`] see them too.
pub fn server_replies(data: &[u8]) {
    let _ = run(data);
}

/// [`server_replies`], giving the client's last step (`None` for an input without its two bytes).
fn run(data: &[u8]) -> Option<Step> {
    let [selector, chunk, replies @ ..] = data else { return None };
    let _ = identify(replies);
    let mut client = client_for(*selector);
    let _ = client.start();
    let mut last = Step::NeedMore;
    for piece in replies.chunks(usize::from(*chunk) + 1).take(MAX_FEEDS) {
        last = client.feed(piece);
        if last.is_final() {
            break;
        }
    }
    let _ = client.transcript();
    let _ = client.protocol();
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_cover_every_protocol_and_auto() {
        let mut seen: Vec<Option<Protocol>> = (0..=255u8).map(|s| client_for(s).protocol()).collect();
        seen.sort_by_key(|p| p.map(Protocol::name));
        seen.dedup();
        // Fourteen protocols, and auto mode (no protocol before the banner).
        assert_eq!(seen.len(), Protocol::ALL.len() + 1, "{seen:?}");
    }

    #[test]
    fn a_real_dialogue_reaches_ready() {
        let mut data = vec![3, 255]; // POP3, whole replies at once
        data.extend_from_slice(b"+OK ready\r\n+OK\r\nSTLS\r\n.\r\n+OK go\r\n");
        assert!(matches!(run(&data), Some(Step::Ready { .. })));
        data[0] = 14; // auto-detected from the banner, one byte at a time
        data[1] = 0;
        assert!(matches!(run(&data), Some(Step::Ready { .. })));
        assert!(run(&data[..1]).is_none());
    }
}
