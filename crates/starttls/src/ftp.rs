//! FTP (RFC 959) with AUTH TLS (RFC 4217).
//!
//! Client: wait for `220` (skipping `120` "ready in n minutes"), send `AUTH TLS`, expect `234`.

use crate::reply::{after_first_word, first_word_upper, NumericReader, NumericReply};
use crate::session::Session;
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, Refusals, ServerDialect, ServerParams, ServerProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Auth,
}

#[derive(Debug)]
pub(crate) struct Client {
    state: State,
    reader: NumericReader,
}

impl Client {
    pub(crate) fn new() -> Self {
        Client { state: State::Greeting, reader: NumericReader::default() }
    }

    /// A client past the greeting that sends `AUTH TLS` now (the SMTP-or-FTP probe hands over here).
    pub(crate) fn send_auth(session: &mut Session) -> (Self, Vec<u8>) {
        let client = Client { state: State::Auth, reader: NumericReader::default() };
        (client, session.line_out("AUTH TLS"))
    }

    fn on_reply(&mut self, reply: NumericReply, session: &mut Session) -> ClientProgress {
        match self.state {
            State::Greeting => match reply.code {
                // "Service ready in nnn minutes": the real greeting follows.
                100..=199 => ClientProgress::NeedMore,
                220 => {
                    self.state = State::Auth;
                    ClientProgress::Send(session.line_out("AUTH TLS"))
                }
                _ => ClientProgress::Failed(format!("server refused the session: {}", reply.summary())),
            },
            State::Auth => match reply.code {
                234 => ClientProgress::Ready { send_first: Vec::new() },
                421 => ClientProgress::Failed(format!("server closing: {}", reply.summary())),
                // 500/502/504 unknown, 530 "login first" (vsftpd without TLS), 534/431 policy.
                400..=599 => ClientProgress::Unsupported(format!("AUTH TLS refused: {}", reply.summary())),
                _ => ClientProgress::Failed(format!("unexpected reply to AUTH TLS: {}", reply.summary())),
            },
        }
    }
}

impl ClientDialect for Client {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        loop {
            match self.reader.poll(session) {
                Ok(Some(reply)) => match self.on_reply(reply, session) {
                    ClientProgress::NeedMore => continue,
                    other => return other,
                },
                Ok(None) => return ClientProgress::NeedMore,
                Err(reason) => return ClientProgress::Failed(reason),
            }
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Ftp)
    }
}

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
const REFUSALS: Refusals = Refusals { too_long: "500 Input line too long.", too_many: "421 Too many commands, closing control connection.", awaited: "AUTH TLS" };

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.line_out(&format!("220 {} FTP server ({}) ready.", self.hostname, self.banner))
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let line = match self.budget.next_command(session, &REFUSALS) {
            Ok(line) => line,
            Err(step) => return step,
        };
        let reply = match first_word_upper(&line).as_str() {
            "AUTH" => match after_first_word(&line).to_ascii_uppercase().as_str() {
                "TLS" | "TLS-C" | "SSL" | "TLS-P" => {
                    return ServerProgress::StartTls { send_first: session.line_out("234 Proceed with negotiation.") }
                }
                _ => session.line_out("504 Unknown AUTH type."),
            },
            "FEAT" => session.lines_out(&["211-Features:", " AUTH TLS", " PBSZ", " PROT", " UTF8", "211 End"]),
            "SYST" => session.line_out("215 UNIX Type: L8"),
            "NOOP" => session.line_out("200 NOOP ok."),
            "QUIT" => {
                return ServerProgress::Close { send_last: session.line_out("221 Goodbye."), reason: "client quit".to_string() }
            }
            "USER" | "PASS" => session.line_out("530 Non-anonymous sessions must use encryption."),
            "PBSZ" | "PROT" => session.line_out("503 PBSZ/PROT need AUTH first."),
            _ => session.line_out("530 Please login with USER and PASS."),
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
    fn vsftpd_dialogue() {
        // Recorded from vsftpd 3.0.3 (tests/data/README.md).
        let whole = assert_all_cuts(Protocol::Ftp, &ClientParams::default(), include_bytes!("../tests/data/vsftpd.txt"));
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
        let (_, sent) = scripted(Protocol::Ftp, ClientParams::default(), &[b"220 (vsFTPd 3.0.3)\r\n", b"234 go\r\n"]);
        assert_eq!(sent, b"AUTH TLS\r\n");
    }

    #[test]
    fn multi_line_and_delayed_greetings() {
        let step = client_result(
            Protocol::Ftp,
            ClientParams::default(),
            b"120 ready in 1 minute\r\n220-Welcome\r\n free text line\r\n220 ready\r\n",
        );
        assert_eq!(step, Step::Send(b"AUTH TLS\r\n".to_vec()));
    }

    #[test]
    fn refusals() {
        let cases: [(&[u8], &str); 5] = [
            (b"220 x\r\n530 Please login with USER and PASS.\r\n", "unsupported"),
            (b"220 x\r\n500 AUTH not understood\r\n", "unsupported"),
            (b"421 Too many users\r\n", "failed"),
            (b"220 x\r\n200 ok\r\n", "failed"),
            (b"SSH-2.0-x\r\n", "failed"),
        ];
        for (input, want) in cases {
            assert_eq!(kind(&client_result(Protocol::Ftp, ClientParams::default(), input)), want, "{input:?}");
        }
    }

    #[test]
    fn server_role() {
        assert!(matches!(server_result(Protocol::Ftp, b"AUTH TLS\r\n"), ServerStep::StartTls { .. }));
        assert!(matches!(server_result(Protocol::Ftp, b"auth ssl\r\n"), ServerStep::StartTls { .. }));
        assert_eq!(server_result(Protocol::Ftp, b"AUTH KERBEROS\r\n"), ServerStep::Send(b"504 Unknown AUTH type.\r\n".to_vec()));
        let ServerStep::Send(feat) = server_result(Protocol::Ftp, b"FEAT\r\n") else { panic!() };
        assert!(feat.starts_with(b"211-Features:\r\n AUTH TLS\r\n"));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Ftp);
    }
}
