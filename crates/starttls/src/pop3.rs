//! POP3 (RFC 1939) with STLS (RFC 2595), capabilities from CAPA (RFC 2449).
//!
//! Client: read `+OK`, send `CAPA`, read the dot-terminated list and look for `STLS`; a server
//! that answers `-ERR` to CAPA (no CAPA support) is asked `STLS` anyway. `STLS` → `+OK`.

use crate::reply::{first_word_upper, DotBlockReader};
use crate::session::{printable, Session};
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, Refusals, ServerDialect, ServerParams, ServerProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    CapaStatus,
    CapaList,
    Stls,
}

#[derive(Debug)]
pub(crate) struct Client {
    state: State,
    block: DotBlockReader,
}

impl Client {
    pub(crate) fn new() -> Self {
        Client { state: State::Greeting, block: DotBlockReader::default() }
    }

    fn send_stls(&mut self, session: &mut Session) -> ClientProgress {
        self.state = State::Stls;
        ClientProgress::Send(session.line_out("STLS"))
    }
}

fn status(line: &str) -> Option<bool> {
    if line.starts_with("+OK") {
        Some(true)
    } else if line.starts_with("-ERR") {
        Some(false)
    } else {
        None
    }
}

impl ClientDialect for Client {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        if self.state == State::CapaList {
            return match self.block.poll(session) {
                Ok(Some(lines)) => {
                    if lines.iter().any(|line| first_word_upper(line) == "STLS") {
                        self.send_stls(session)
                    } else {
                        ClientProgress::Unsupported("STLS not in the CAPA list".to_string())
                    }
                }
                Ok(None) => ClientProgress::NeedMore,
                Err(reason) => ClientProgress::Failed(reason),
            };
        }
        let line = match session.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return ClientProgress::NeedMore,
            Err(reason) => return ClientProgress::Failed(reason),
        };
        session.note_in(&line);
        match (self.state, status(&line)) {
            (State::Greeting, Some(true)) => {
                self.state = State::CapaStatus;
                ClientProgress::Send(session.line_out("CAPA"))
            }
            (State::Greeting, Some(false)) => ClientProgress::Failed(format!("server refused the session: {}", printable(&line))),
            (State::CapaStatus, Some(true)) => {
                self.state = State::CapaList;
                self.advance(session)
            }
            // RFC 1939 servers without CAPA may still have STLS.
            (State::CapaStatus, Some(false)) => self.send_stls(session),
            (State::Stls, Some(true)) => ClientProgress::Ready { send_first: Vec::new() },
            (State::Stls, Some(false)) => ClientProgress::Unsupported(format!("STLS refused: {}", printable(&line))),
            (_, None) => ClientProgress::Failed(format!("malformed POP3 reply {:?}", printable(&line))),
            (State::CapaList, _) => ClientProgress::Failed("internal: CAPA list state".to_string()),
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Pop3)
    }
}

#[derive(Debug)]
pub(crate) struct Server {
    banner: String,
    budget: CommandBudget,
}

impl Server {
    pub(crate) fn new(params: &ServerParams) -> Self {
        Server { banner: params.banner.clone(), budget: CommandBudget::default() }
    }
}

/// How the server role refuses (see [`Refusals`]).
const REFUSALS: Refusals = Refusals { too_long: "-ERR Input line too long.", too_many: "-ERR Too many commands.", awaited: "STLS" };

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.line_out(&format!("+OK {} ready.", self.banner))
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let line = match self.budget.next_command(session, &REFUSALS) {
            Ok(line) => line,
            Err(step) => return step,
        };
        let verb = first_word_upper(&line);
        let reply = match verb.as_str() {
            "CAPA" => session.lines_out(&["+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "."]),
            "STLS" => return ServerProgress::StartTls { send_first: session.line_out("+OK Begin TLS negotiation now.") },
            "QUIT" => {
                return ServerProgress::Close { send_last: session.line_out("+OK Logging out."), reason: "client quit".to_string() }
            }
            "USER" | "PASS" | "APOP" | "AUTH" => {
                session.line_out("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
            }
            _ => session.line_out("-ERR Unknown command."),
        };
        ServerProgress::Send(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, scripted, server_result};
    use crate::{ClientParams, ServerStep, Step};

    #[test]
    fn dovecot_dialogue() {
        // Recorded from Dovecot 2.3.19 (tests/data/README.md).
        let script: &[u8] = include_bytes!("../tests/data/dovecot-pop3.txt");
        let whole = assert_all_cuts(Protocol::Pop3, &ClientParams::default(), script);
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
        let (_, sent) = scripted(Protocol::Pop3, ClientParams::default(), &[b"+OK hi\r\n", b"+OK\r\nSTLS\r\n.\r\n", b"+OK\r\n"]);
        assert_eq!(sent, b"CAPA\r\nSTLS\r\n");
    }

    #[test]
    fn no_capa_support_still_tries_stls() {
        let (step, sent) = scripted(Protocol::Pop3, ClientParams::default(), &[b"+OK hi\r\n", b"-ERR unknown\r\n", b"+OK\r\n"]);
        assert!(matches!(step, Step::Ready { .. }));
        assert_eq!(sent, b"CAPA\r\nSTLS\r\n");
    }

    #[test]
    fn not_offered_and_malformed() {
        let cases: [(&[u8], &str); 5] = [
            (b"+OK hi\r\n+OK\r\nUSER\r\n.\r\n", "unsupported"),
            (b"+OK hi\r\n-ERR x\r\n-ERR no TLS\r\n", "unsupported"),
            (b"-ERR go away\r\n", "failed"),
            (b"* OK imap\r\n", "failed"),
            (b"+OK hi\r\n+OK\r\nSTLS\r\n.\r\nwhat\r\n", "failed"),
        ];
        for (input, want) in cases {
            assert_eq!(kind(&client_result(Protocol::Pop3, ClientParams::default(), input)), want, "{input:?}");
        }
    }

    #[test]
    fn oversized_capa_list_fails() {
        let mut input = b"+OK hi\r\n+OK\r\n".to_vec();
        for _ in 0..3000 {
            input.extend_from_slice(b"X-CAPABILITY\r\n");
        }
        assert_eq!(kind(&client_result(Protocol::Pop3, ClientParams::default(), &input)), "failed");
    }

    #[test]
    fn server_role() {
        let ServerStep::Send(bytes) = server_result(Protocol::Pop3, b"CAPA\r\n") else { panic!() };
        assert!(bytes.windows(6).any(|w| w == b"\nSTLS\r"));
        assert!(bytes.ends_with(b"\r\n.\r\n"));
        assert!(matches!(server_result(Protocol::Pop3, b"stls\r\n"), ServerStep::StartTls { .. }));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Pop3);
    }
}
