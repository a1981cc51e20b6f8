//! IMAP (RFC 3501 / 9051) STARTTLS.
//!
//! Client: read the `* OK` greeting; if its `[CAPABILITY …]` code lists STARTTLS go straight on,
//! otherwise send `a001 CAPABILITY` and read `* CAPABILITY …` up to `a001 OK`; then send
//! `a002 STARTTLS` and expect `a002 OK`.

use crate::reply::{after_first_word, first_word_upper};
use crate::session::{printable, Session};
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, Refusals, ServerDialect, ServerParams, ServerProgress};

const CAPABILITY_TAG: &str = "a001";
const STARTTLS_TAG: &str = "a002";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Capability,
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

    fn send_starttls(&mut self, session: &mut Session) -> ClientProgress {
        self.state = State::StartTls;
        ClientProgress::Send(session.line_out(&format!("{STARTTLS_TAG} STARTTLS")))
    }

    fn has_starttls(&self) -> bool {
        self.capabilities.iter().any(|c| c == "STARTTLS")
    }

    fn on_line(&mut self, line: &str, session: &mut Session) -> ClientProgress {
        match self.state {
            State::Greeting => {
                let status = untagged_status(line);
                match status.as_deref() {
                    Some("OK") => {
                        if let Some(caps) = response_code_capabilities(line) {
                            self.capabilities = caps;
                            if self.has_starttls() {
                                return self.send_starttls(session);
                            }
                        }
                        self.state = State::Capability;
                        ClientProgress::Send(session.line_out(&format!("{CAPABILITY_TAG} CAPABILITY")))
                    }
                    Some("PREAUTH") => ClientProgress::Unsupported(
                        "server pre-authenticated the connection (* PREAUTH): STARTTLS is only allowed before login".to_string(),
                    ),
                    Some("BYE") => ClientProgress::Failed(format!("server refused the session: {}", printable(line))),
                    _ => ClientProgress::Failed(format!("malformed IMAP greeting {:?}", printable(line))),
                }
            }
            State::Capability => {
                if let Some(rest) = line.strip_prefix("* ") {
                    if first_word_upper(rest) == "CAPABILITY" {
                        self.capabilities.extend(atoms(after_first_word(rest)));
                    }
                    return ClientProgress::NeedMore;
                }
                match tagged_status(line, CAPABILITY_TAG).as_deref() {
                    Some("OK") => {
                        if self.has_starttls() {
                            self.send_starttls(session)
                        } else {
                            ClientProgress::Unsupported("STARTTLS not in the CAPABILITY list".to_string())
                        }
                    }
                    Some(_) => ClientProgress::Failed(format!("CAPABILITY failed: {}", printable(line))),
                    None => ClientProgress::Failed(format!("unexpected line {:?}", printable(line))),
                }
            }
            State::StartTls => {
                if line.starts_with("* ") {
                    if untagged_status(line).as_deref() == Some("BYE") {
                        return ClientProgress::Failed(format!("server closed: {}", printable(line)));
                    }
                    return ClientProgress::NeedMore;
                }
                match tagged_status(line, STARTTLS_TAG).as_deref() {
                    Some("OK") => ClientProgress::Ready { send_first: Vec::new() },
                    Some("NO") | Some("BAD") => {
                        ClientProgress::Unsupported(format!("STARTTLS refused: {}", printable(line)))
                    }
                    _ => ClientProgress::Failed(format!("unexpected line {:?}", printable(line))),
                }
            }
        }
    }
}

/// `* OK …` → `OK` (upper-cased); `None` for anything that is not untagged.
fn untagged_status(line: &str) -> Option<String> {
    line.strip_prefix("* ").map(first_word_upper)
}

/// `a001 OK …` → `OK` when the tag matches.
fn tagged_status(line: &str, tag: &str) -> Option<String> {
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    Some(first_word_upper(rest))
}

/// The atoms of a `[CAPABILITY …]` response code in a status line.
fn response_code_capabilities(line: &str) -> Option<Vec<String>> {
    let open = line.find('[')?;
    let inside = line.get(open + 1..)?;
    let close = inside.find(']')?;
    let code = inside.get(..close)?;
    if first_word_upper(code) != "CAPABILITY" {
        return None;
    }
    Some(atoms(after_first_word(code)))
}

fn atoms(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_ascii_uppercase).collect()
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
            match self.on_line(&line, session) {
                ClientProgress::NeedMore => continue,
                other => {
                    self.reply_size = 0;
                    return other;
                }
            }
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Imap)
    }
}

const SERVER_CAPABILITIES: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE STARTTLS LOGINDISABLED";

#[derive(Debug)]
pub(crate) struct Server {
    hostname: String,
    banner: String,
    budget: CommandBudget,
}

impl Server {
    pub(crate) fn new(params: &ServerParams) -> Self {
        Server { hostname: params.hostname.clone(), banner: params.banner.clone(), budget: CommandBudget::default() }
    }
}

/// How the server role refuses (see [`Refusals`]).
const REFUSALS: Refusals = Refusals { too_long: "* BYE Line too long.", too_many: "* BYE Too many commands.", awaited: "STARTTLS" };

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.line_out(&format!("* OK [CAPABILITY {SERVER_CAPABILITIES}] {} {} ready.", self.hostname, self.banner))
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let line = match self.budget.next_command(session, &REFUSALS) {
            Ok(line) => line,
            Err(step) => return step,
        };
        let mut words = line.split_whitespace();
        let (Some(tag), Some(command)) = (words.next(), words.next()) else {
            return ServerProgress::Send(session.line_out("* BAD Error in IMAP command received by server."));
        };
        if tag == "*" || tag == "+" {
            return ServerProgress::Send(session.line_out("* BAD Error in IMAP command received by server."));
        }
        let reply = match command.to_ascii_uppercase().as_str() {
            "CAPABILITY" => session.lines_out(&[
                format!("* CAPABILITY {SERVER_CAPABILITIES}"),
                format!("{tag} OK Pre-login capabilities listed, post-login capabilities have more."),
            ]),
            "STARTTLS" => {
                return ServerProgress::StartTls { send_first: session.line_out(&format!("{tag} OK Begin TLS negotiation now.")) }
            }
            "NOOP" => session.line_out(&format!("{tag} OK NOOP completed.")),
            "ID" => session.lines_out(&["* ID NIL".to_string(), format!("{tag} OK ID completed.")]),
            "LOGOUT" => {
                return ServerProgress::Close {
                    send_last: session.lines_out(&["* BYE Logging out".to_string(), format!("{tag} OK Logout completed.")]),
                    reason: "client logged out".to_string(),
                }
            }
            "LOGIN" | "AUTHENTICATE" => session.line_out(&format!(
                "{tag} NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
            )),
            _ => session.line_out(&format!("{tag} BAD Error in IMAP command: Unknown command.")),
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
    fn dovecot_greeting_with_capabilities_skips_capability() {
        let (step, sent) = scripted(
            Protocol::Imap,
            ClientParams::default(),
            &[
                b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot (Debian) ready.\r\n",
                b"a002 OK Begin TLS negotiation now.\r\n",
            ],
        );
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        assert_eq!(sent, b"a002 STARTTLS\r\n");
    }

    #[test]
    fn recorded_dovecot_lines() {
        // Recorded from Dovecot 2.3.19 (tests/data/README.md): greeting, CAPABILITY answer, STARTTLS answer.
        let recorded = String::from_utf8(include_bytes!("../tests/data/dovecot-imap.txt").to_vec()).unwrap();
        let lines: Vec<&str> = recorded.split_inclusive("\r\n").collect();
        assert_eq!(lines.len(), 4);
        // The greeting lists STARTTLS, so the client goes straight to it.
        let direct = format!("{}{}", lines[0], lines[3]);
        let whole = assert_all_cuts(Protocol::Imap, &ClientParams::default(), direct.as_bytes());
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
        // Without capabilities in the greeting it asks, and Dovecot's CAPABILITY answer lists STARTTLS.
        let asked = format!("* OK Dovecot (Debian) ready.\r\n{}{}{}", lines[1], lines[2], lines[3]);
        let whole = assert_all_cuts(Protocol::Imap, &ClientParams::default(), asked.as_bytes());
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
    }

    #[test]
    fn plain_greeting_asks_for_capability() {
        let script: &[u8] = b"* OK ready\r\n* CAPABILITY IMAP4rev1 starttls AUTH=PLAIN\r\n* OK extra\r\na001 OK done\r\na002 OK go\r\n";
        let whole = assert_all_cuts(Protocol::Imap, &ClientParams::default(), script);
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
        let (_, sent) = scripted(
            Protocol::Imap,
            ClientParams::default(),
            &[b"* OK ready\r\n", b"* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK\r\n", b"a002 OK\r\n"],
        );
        assert_eq!(sent, b"a001 CAPABILITY\r\na002 STARTTLS\r\n");
    }

    #[test]
    fn not_offered_refused_and_malformed() {
        let cases: [(&[u8], &str); 8] = [
            (b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na001 OK\r\n", "unsupported"),
            (b"* PREAUTH ready\r\n", "unsupported"),
            (b"* BYE too many connections\r\n", "failed"),
            (b"+OK pop3\r\n", "failed"),
            (b"* OK x\r\na001 BAD no\r\n", "failed"),
            (b"* OK x\r\nzzz\r\n", "failed"),
            (b"* OK [CAPABILITY STARTTLS] x\r\na002 NO [UNAVAILABLE] TLS not configured\r\n", "unsupported"),
            (b"* OK [CAPABILITY STARTTLS] x\r\n* BYE shutting down\r\n", "failed"),
        ];
        for (input, want) in cases {
            let step = client_result(Protocol::Imap, ClientParams::default(), input);
            assert_eq!(kind(&step), want, "{:?}: {step:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn endless_untagged_lines_are_capped() {
        let mut input = b"* OK x\r\n".to_vec();
        for _ in 0..2000 {
            input.extend_from_slice(b"* CAPABILITY IMAP4rev1\r\n");
        }
        let step = client_result(Protocol::Imap, ClientParams::default(), &input);
        assert!(matches!(&step, Step::Failed { reason, .. } if reason.contains("longer than")), "{step:?}");
    }

    #[test]
    fn server_role() {
        let ServerStep::Send(bytes) = server_result(Protocol::Imap, b"t1 capability\r\n") else { panic!() };
        assert_eq!(
            bytes,
            format!("* CAPABILITY {SERVER_CAPABILITIES}\r\nt1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n")
                .into_bytes()
        );
        assert!(matches!(server_result(Protocol::Imap, b"x STARTTLS\r\n"), ServerStep::StartTls { .. }));
        assert!(matches!(server_result(Protocol::Imap, b"x LOGOUT\r\n"), ServerStep::Close { .. }));
        assert_eq!(
            server_result(Protocol::Imap, b"garbage\r\n"),
            ServerStep::Send(b"* BAD Error in IMAP command received by server.\r\n".to_vec())
        );
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Imap);
    }
}
