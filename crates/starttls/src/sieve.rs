//! ManageSieve (RFC 5804).
//!
//! Client: the greeting is the capability list (`"IMPLEMENTATION" "…"`, `"SIEVE" "…"`,
//! `"STARTTLS"`, …) ended by an `OK` line; if `"STARTTLS"` is listed, send `STARTTLS` and expect
//! `OK`.

use crate::reply::first_word_upper;
use crate::session::{printable, Session};
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, Refusals, ServerDialect, ServerParams, ServerProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    StartTls,
}

#[derive(Debug)]
pub(crate) struct Client {
    state: State,
    capabilities: Vec<String>,
    reply_size: usize,
}

impl Client {
    pub(crate) fn new() -> Self {
        Client { state: State::Greeting, capabilities: Vec::new(), reply_size: 0 }
    }
}

/// The status word of a response line (`OK`, `NO`, `BYE`), if it is one.
fn response_status(line: &str) -> Option<String> {
    let word = first_word_upper(line);
    // `OK"text"` without a space is unusual but not forbidden by the grammar's spirit.
    let word = word.split('"').next().unwrap_or_default().split('(').next().unwrap_or_default().to_string();
    matches!(word.as_str(), "OK" | "NO" | "BYE").then_some(word)
}

/// The capability name of a `"NAME" ["value"]` line, upper-cased.
fn capability_name(line: &str) -> Option<String> {
    let rest = line.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest.get(..end)?.to_ascii_uppercase())
}

impl ClientDialect for Client {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        loop {
            let line = match session.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return ClientProgress::NeedMore,
                Err(reason) => return ClientProgress::Failed(reason),
            };
            session.note_in(&line);
            self.reply_size += line.len() + 2;
            if self.reply_size > session.limits.max_reply {
                return ClientProgress::Failed(format!("reply longer than {} bytes", session.limits.max_reply));
            }
            match (self.state, response_status(&line).as_deref()) {
                (State::Greeting, None) => match capability_name(&line) {
                    Some(name) => self.capabilities.push(name),
                    None => return ClientProgress::Failed(format!("malformed ManageSieve greeting line {:?}", printable(&line))),
                },
                (State::Greeting, Some("OK")) => {
                    self.reply_size = 0;
                    if self.capabilities.iter().any(|c| c == "STARTTLS") {
                        self.state = State::StartTls;
                        return ClientProgress::Send(session.line_out("STARTTLS"));
                    }
                    return ClientProgress::Unsupported("\"STARTTLS\" not among the capabilities".to_string());
                }
                (State::Greeting, Some(_)) => {
                    return ClientProgress::Failed(format!("server refused the session: {}", printable(&line)))
                }
                (State::StartTls, Some("OK")) => return ClientProgress::Ready { send_first: Vec::new() },
                (State::StartTls, Some("NO")) => {
                    return ClientProgress::Unsupported(format!("STARTTLS refused: {}", printable(&line)))
                }
                (State::StartTls, _) => {
                    return ClientProgress::Failed(format!("unexpected reply to STARTTLS: {}", printable(&line)))
                }
            }
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Sieve)
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

    fn capabilities(&self) -> Vec<String> {
        vec![
            format!("\"IMPLEMENTATION\" \"{}\"", self.banner.replace(['"', '\\'], "")),
            "\"SIEVE\" \"fileinto reject envelope encoded-character vacation subaddress comparator-i;ascii-numeric relational regex imap4flags copy include variables body enotify environment mailbox date index ihave duplicate mime foreverypart extracttext\"".to_string(),
            "\"NOTIFY\" \"mailto\"".to_string(),
            "\"SASL\" \"\"".to_string(),
            "\"STARTTLS\"".to_string(),
            "\"VERSION\" \"1.0\"".to_string(),
        ]
    }
}

/// How the server role refuses (see [`Refusals`]).
const REFUSALS: Refusals = Refusals { too_long: "BYE \"Line too long.\"", too_many: "BYE \"Too many commands.\"", awaited: "STARTTLS" };

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        let mut lines = self.capabilities();
        lines.push(format!("OK \"{} ready.\"", self.banner.replace(['"', '\\'], "")));
        session.lines_out(&lines)
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let line = match self.budget.next_command(session, &REFUSALS) {
            Ok(line) => line,
            Err(step) => return step,
        };
        let reply = match first_word_upper(&line).as_str() {
            "CAPABILITY" => {
                let mut lines = self.capabilities();
                lines.push("OK \"Capability completed.\"".to_string());
                session.lines_out(&lines)
            }
            "STARTTLS" => return ServerProgress::StartTls { send_first: session.line_out("OK \"Begin TLS negotiation now.\"") },
            "NOOP" => session.line_out("OK \"NOOP completed.\""),
            "LOGOUT" => {
                return ServerProgress::Close {
                    send_last: session.line_out("OK \"Logout completed.\""),
                    reason: "client logged out".to_string(),
                }
            }
            "AUTHENTICATE" => session.line_out("NO \"Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\""),
            _ => session.line_out("NO \"Unknown command.\""),
        };
        ServerProgress::Send(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, scripted, server_result};
    use crate::{ClientParams, ServerStep, Step};

    /// Recorded from Dovecot 2.3.19 Pigeonhole (tests/data/README.md).
    const DOVECOT: &[u8] = include_bytes!("../tests/data/dovecot-sieve.txt");

    #[test]
    fn dovecot_dialogue() {
        let whole = assert_all_cuts(Protocol::Sieve, &ClientParams::default(), DOVECOT);
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
        let (_, sent) = scripted(Protocol::Sieve, ClientParams::default(), &[b"\"STARTTLS\"\r\nOK\r\n", b"OK\r\n"]);
        assert_eq!(sent, b"STARTTLS\r\n");
    }

    #[test]
    fn refusals() {
        let cases: [(&[u8], &str); 5] = [
            (b"\"IMPLEMENTATION\" \"x\"\r\n\"SASL\" \"PLAIN\"\r\nOK\r\n", "unsupported"),
            (b"\"STARTTLS\"\r\nOK\r\nNO \"TLS unavailable\"\r\n", "unsupported"),
            (b"BYE \"too many\"\r\n", "failed"),
            (b"* OK imap\r\n", "failed"),
            (b"\"STARTTLS\"\r\nOK\r\nBYE\r\n", "failed"),
        ];
        for (input, want) in cases {
            assert_eq!(kind(&client_result(Protocol::Sieve, ClientParams::default(), input)), want, "{input:?}");
        }
    }

    #[test]
    fn server_role() {
        assert!(matches!(server_result(Protocol::Sieve, b"STARTTLS\r\n"), ServerStep::StartTls { .. }));
        let ServerStep::Send(caps) = server_result(Protocol::Sieve, b"CAPABILITY\r\n") else { panic!() };
        assert!(String::from_utf8_lossy(&caps).contains("\"STARTTLS\"\r\n"));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Sieve);
    }
}
