//! SMTP (RFC 5321, STARTTLS RFC 3207), submission (same dialect on port 587) and LMTP (RFC 2033).
//!
//! Client: wait for `220`, send `EHLO name` (`LHLO` for LMTP), look for the `STARTTLS` keyword in
//! the `250` reply, send `STARTTLS`, expect `220`.

use crate::reply::{after_first_word, first_word_upper, NumericReader, NumericReply};
use crate::session::Session;
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, Refusals, ServerDialect, ServerParams, ServerProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Smtp,
    Lmtp,
}

impl Flavor {
    fn hello_verb(self) -> &'static str {
        match self {
            Flavor::Smtp => "EHLO",
            Flavor::Lmtp => "LHLO",
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Flavor::Smtp => Protocol::Smtp,
            Flavor::Lmtp => Protocol::Lmtp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Hello,
    StartTls,
}

#[derive(Debug)]
pub(crate) struct Client {
    flavor: Flavor,
    hello_name: String,
    state: State,
    reader: NumericReader,
}

impl Client {
    pub(crate) fn new(flavor: Flavor, hello_name: &str) -> Self {
        Client { flavor, hello_name: hello_name.to_string(), state: State::Greeting, reader: NumericReader::default() }
    }

    /// An SMTP client that has already sent `EHLO` (the SMTP-or-FTP probe hands over here).
    pub(crate) fn after_ehlo(hello_name: &str) -> Self {
        Client { state: State::Hello, ..Client::new(Flavor::Smtp, hello_name) }
    }

    pub(crate) fn on_reply(&mut self, reply: NumericReply, session: &mut Session) -> ClientProgress {
        match self.state {
            State::Greeting => match reply.code {
                220 => {
                    self.state = State::Hello;
                    let line = format!("{} {}", self.flavor.hello_verb(), self.hello_name);
                    ClientProgress::Send(session.line_out(&line))
                }
                _ => ClientProgress::Failed(format!("server refused the session: {}", reply.summary())),
            },
            State::Hello => match reply.code {
                250 => {
                    // The first line is the server's name; keywords follow, one per line.
                    let offered = reply.lines.iter().skip(1).any(|line| first_word_upper(line) == "STARTTLS");
                    if offered {
                        self.state = State::StartTls;
                        ClientProgress::Send(session.line_out("STARTTLS"))
                    } else {
                        ClientProgress::Unsupported(format!(
                            "STARTTLS not among the {} keywords",
                            self.flavor.hello_verb()
                        ))
                    }
                }
                421 => ClientProgress::Failed(format!("server closing: {}", reply.summary())),
                500..=599 => ClientProgress::Unsupported(format!(
                    "{} refused ({}): no extensions, so no STARTTLS",
                    self.flavor.hello_verb(),
                    reply.summary()
                )),
                _ => ClientProgress::Failed(format!(
                    "unexpected reply to {}: {}",
                    self.flavor.hello_verb(),
                    reply.summary()
                )),
            },
            State::StartTls => match reply.code {
                220 => ClientProgress::Ready { send_first: Vec::new() },
                421 => ClientProgress::Failed(format!("server closing: {}", reply.summary())),
                // 454: TLS not available (temporary); 5xx: not supported here after all.
                454 | 500..=599 => ClientProgress::Unsupported(format!("STARTTLS refused: {}", reply.summary())),
                _ => ClientProgress::Failed(format!("unexpected reply to STARTTLS: {}", reply.summary())),
            },
        }
    }
}

impl ClientDialect for Client {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        match self.reader.poll(session) {
            Ok(Some(reply)) => self.on_reply(reply, session),
            Ok(None) => ClientProgress::NeedMore,
            Err(reason) => ClientProgress::Failed(reason),
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(self.flavor.protocol())
    }
}

#[derive(Debug)]
pub(crate) struct Server {
    flavor: Flavor,
    hostname: String,
    banner: String,
    budget: CommandBudget,
}

impl Server {
    pub(crate) fn new(flavor: Flavor, params: &ServerParams) -> Self {
        Server { flavor, hostname: params.hostname.clone(), banner: params.banner.clone(), budget: CommandBudget::default() }
    }

    fn hello_reply(&self, session: &mut Session) -> Vec<u8> {
        session.lines_out(&[
            format!("250-{}", self.hostname),
            "250-PIPELINING".to_string(),
            "250-SIZE 10240000".to_string(),
            "250-STARTTLS".to_string(),
            "250-ENHANCEDSTATUSCODES".to_string(),
            "250 8BITMIME".to_string(),
        ])
    }
}

/// How the server role refuses (see [`Refusals`]).
const REFUSALS: Refusals = Refusals { too_long: "500 5.5.0 Error: line too long", too_many: "421 4.7.0 Error: too many commands", awaited: "STARTTLS" };

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        let kind = match self.flavor {
            Flavor::Smtp => "ESMTP",
            Flavor::Lmtp => "LMTP",
        };
        session.line_out(&format!("220 {} {} {}", self.hostname, kind, self.banner))
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let line = match self.budget.next_command(session, &REFUSALS) {
            Ok(line) => line,
            Err(step) => return step,
        };
        let verb = first_word_upper(&line);
        let reply = match (verb.as_str(), self.flavor) {
            ("EHLO", Flavor::Smtp) | ("LHLO", Flavor::Lmtp) => {
                if after_first_word(&line).is_empty() {
                    session.line_out(&format!("501 5.5.4 Syntax: {} hostname", verb))
                } else {
                    self.hello_reply(session)
                }
            }
            ("HELO", Flavor::Smtp) => session.line_out(&format!("250 {}", self.hostname)),
            ("STARTTLS", _) => {
                if !after_first_word(&line).is_empty() {
                    session.line_out("501 5.5.4 Syntax: STARTTLS")
                } else {
                    return ServerProgress::StartTls { send_first: session.line_out("220 2.0.0 Ready to start TLS") };
                }
            }
            ("NOOP", _) | ("RSET", _) => session.line_out("250 2.0.0 Ok"),
            ("QUIT", _) => {
                return ServerProgress::Close {
                    send_last: session.line_out("221 2.0.0 Bye"),
                    reason: "client quit".to_string(),
                }
            }
            ("MAIL" | "RCPT" | "DATA" | "BDAT" | "AUTH" | "VRFY" | "EXPN" | "ETRN", _) => {
                session.line_out("530 5.7.0 Must issue a STARTTLS command first")
            }
            _ => session.line_out("502 5.5.2 Error: command not recognized"),
        };
        ServerProgress::Send(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, scripted, server_result};
    use crate::{ClientParams, ServerStep, Step};

    /// Recorded from Postfix 3.7.11 (tests/data/README.md).
    const POSTFIX: &[u8] = include_bytes!("../tests/data/postfix-smtp.txt");
    const DOVECOT_LMTP: &[u8] = include_bytes!("../tests/data/dovecot-lmtp.txt");

    #[test]
    fn postfix_dialogue_reaches_ready_at_every_split() {
        let (step, sent) = scripted(
            Protocol::Smtp,
            ClientParams::default(),
            &[b"220 mail ESMTP Postfix\r\n", b"250-mail\r\n250-STARTTLS\r\n250 8BITMIME\r\n", b"220 go\r\n"],
        );
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        assert_eq!(sent, b"EHLO bleedwatch.invalid\r\nSTARTTLS\r\n");
        let whole = assert_all_cuts(Protocol::Smtp, &ClientParams::default(), POSTFIX);
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
        if let Step::Ready { transcript, .. } = whole {
            assert!(transcript.starts_with("S: 220 mail.bleedwatch.test ESMTP Postfix"), "{transcript}");
            assert!(transcript.contains("C: STARTTLS"));
        }
    }

    #[test]
    fn lmtp_says_lhlo() {
        let (step, sent) = scripted(
            Protocol::Lmtp,
            ClientParams { ehlo_name: "scanner".into(), ..ClientParams::default() },
            &[b"220 vm Dovecot ready.\r\n", b"250-vm\r\n250-STARTTLS\r\n250 PIPELINING\r\n", b"220 2.0.0 Begin TLS.\r\n"],
        );
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        assert_eq!(sent, b"LHLO scanner\r\nSTARTTLS\r\n");
        let whole = assert_all_cuts(Protocol::Lmtp, &ClientParams::default(), DOVECOT_LMTP);
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
    }

    #[test]
    fn no_starttls_keyword_is_unsupported() {
        let step = client_result(Protocol::Smtp, ClientParams::default(), b"220 x ESMTP\r\n250-x\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        assert!(matches!(&step, Step::Unsupported { reason, .. } if reason.contains("STARTTLS not among")), "{step:?}");
        // STARTTLS in the first (hostname) line does not count.
        let step = client_result(Protocol::Smtp, ClientParams::default(), b"220 x\r\n250-STARTTLS\r\n250 8BITMIME\r\n");
        assert_eq!(kind(&step), "unsupported");
    }

    #[test]
    fn refusals_and_wrong_codes() {
        let cases: [(&[u8], &str); 7] = [
            (b"554 5.7.1 go away\r\n", "failed"),
            (b"421 busy\r\n", "failed"),
            (b"220 x\r\n500 what\r\n", "unsupported"),
            (b"220 x\r\n250-x\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n", "unsupported"),
            (b"220 x\r\n250-x\r\n250 STARTTLS\r\n250 ok\r\n", "failed"),
            (b"hello there\r\n", "failed"),
            (b"220 x\r\n354 what\r\n", "failed"),
        ];
        for (input, want) in cases {
            let step = client_result(Protocol::Smtp, ClientParams::default(), input);
            assert_eq!(kind(&step), want, "{input:?}: {step:?}");
        }
    }

    #[test]
    fn oversized_banner_fails() {
        let mut banner = b"220-".to_vec();
        banner.extend(vec![b'x'; 20_000]);
        let step = client_result(Protocol::Smtp, ClientParams::default(), &banner);
        assert!(matches!(&step, Step::Failed { reason, .. } if reason.contains("16384")), "{step:?}");
        let mut endless = Vec::new();
        for _ in 0..2000 {
            endless.extend_from_slice(b"220-more text here\r\n");
        }
        let step = client_result(Protocol::Smtp, ClientParams::default(), &endless);
        assert_eq!(kind(&step), "failed");
    }

    #[test]
    fn server_answers_like_an_mta() {
        let step = server_result(Protocol::Smtp, b"EHLO client\r\n");
        let ServerStep::Send(bytes) = step else { panic!("{step:?}") };
        assert!(String::from_utf8_lossy(&bytes).contains("250-STARTTLS\r\n"));
        let step = server_result(Protocol::Smtp, b"MAIL FROM:<a@b>\r\n");
        assert_eq!(step, ServerStep::Send(b"530 5.7.0 Must issue a STARTTLS command first\r\n".to_vec()));
        let step = server_result(Protocol::Smtp, b"EHLO c\r\nSTARTTLS\r\n\x16\x03\x01");
        let ServerStep::StartTls { send_first, leftover } = step else { panic!() };
        assert!(send_first.ends_with(b"220 2.0.0 Ready to start TLS\r\n"));
        assert_eq!(leftover, b"\x16\x03\x01");
        let step = server_result(Protocol::Smtp, b"QUIT\r\n");
        assert!(matches!(step, ServerStep::Close { .. }));
        let step = server_result(Protocol::Lmtp, b"EHLO c\r\n");
        assert_eq!(step, ServerStep::Send(b"502 5.5.2 Error: command not recognized\r\n".to_vec()));
        let many = b"NOOP\r\n".repeat(40);
        assert!(matches!(server_result(Protocol::Smtp, &many), ServerStep::Close { .. }));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Smtp);
        no_panic_on_garbage(Protocol::Lmtp);
    }
}
