//! NNTP (RFC 3977) with STARTTLS (RFC 4642).
//!
//! Client: read `200`/`201`, send `CAPABILITIES`, read the `101` list and look for `STARTTLS`
//! (a server that does not know CAPABILITIES is asked `STARTTLS` anyway), send `STARTTLS`,
//! expect `382`.

use crate::reply::{first_word_upper, split_code, DotBlockReader};
use crate::session::{printable, Session};
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, Refusals, ServerDialect, ServerParams, ServerProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    CapabilitiesStatus,
    CapabilitiesList,
    StartTls,
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

    fn send_starttls(&mut self, session: &mut Session) -> ClientProgress {
        self.state = State::StartTls;
        ClientProgress::Send(session.line_out("STARTTLS"))
    }
}

impl ClientDialect for Client {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        if self.state == State::CapabilitiesList {
            return match self.block.poll(session) {
                Ok(Some(lines)) => {
                    if lines.iter().any(|line| first_word_upper(line) == "STARTTLS") {
                        self.send_starttls(session)
                    } else {
                        ClientProgress::Unsupported("STARTTLS not in the CAPABILITIES list".to_string())
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
        let Some((code, false, _)) = split_code(&line) else {
            return ClientProgress::Failed(format!("malformed NNTP reply {:?}", printable(&line)));
        };
        match (self.state, code) {
            (State::Greeting, 200 | 201) => {
                self.state = State::CapabilitiesStatus;
                ClientProgress::Send(session.line_out("CAPABILITIES"))
            }
            (State::Greeting, _) => ClientProgress::Failed(format!("server refused the session: {}", printable(&line))),
            (State::CapabilitiesStatus, 101) => {
                self.state = State::CapabilitiesList;
                self.advance(session)
            }
            // Pre-RFC 3977 servers do not know CAPABILITIES but may know STARTTLS.
            (State::CapabilitiesStatus, 400..=599) => self.send_starttls(session),
            (State::CapabilitiesStatus, _) => {
                ClientProgress::Failed(format!("unexpected reply to CAPABILITIES: {}", printable(&line)))
            }
            (State::StartTls, 382) => ClientProgress::Ready { send_first: Vec::new() },
            // 580: TLS cannot be started; 502/500/483: not available here.
            (State::StartTls, 400..=599) => ClientProgress::Unsupported(format!("STARTTLS refused: {}", printable(&line))),
            (State::StartTls, _) => ClientProgress::Failed(format!("unexpected reply to STARTTLS: {}", printable(&line))),
            (State::CapabilitiesList, _) => ClientProgress::Failed("internal: capabilities list state".to_string()),
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Nntp)
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

const READER_COMMANDS: &[&str] = &[
    "ARTICLE", "AUTHINFO", "BODY", "DATE", "GROUP", "HDR", "HEAD", "HELP", "IHAVE", "LAST", "LIST", "LISTGROUP", "NEWGROUPS",
    "NEWNEWS", "NEXT", "OVER", "POST", "STAT", "XHDR", "XOVER",
];

/// How the server role refuses (see [`Refusals`]).
const REFUSALS: Refusals = Refusals { too_long: "501 Line too long", too_many: "400 Too many commands", awaited: "STARTTLS" };

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.line_out(&format!("200 {} NNTP server ({}) ready (posting ok)", self.hostname, self.banner))
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let line = match self.budget.next_command(session, &REFUSALS) {
            Ok(line) => line,
            Err(step) => return step,
        };
        let verb = first_word_upper(&line);
        let reply = match verb.as_str() {
            "CAPABILITIES" => session.lines_out(&[
                "101 Capability list:".to_string(),
                "VERSION 2".to_string(),
                format!("IMPLEMENTATION {}", self.banner),
                "READER".to_string(),
                "STARTTLS".to_string(),
                "LIST ACTIVE NEWSGROUPS".to_string(),
                ".".to_string(),
            ]),
            "STARTTLS" => return ServerProgress::StartTls { send_first: session.line_out("382 Continue with TLS negotiation") },
            "MODE" => session.line_out("200 Posting allowed"),
            "QUIT" => return ServerProgress::Close { send_last: session.line_out("205 Bye!"), reason: "client quit".to_string() },
            known if READER_COMMANDS.contains(&known) => {
                session.line_out("483 Encryption required; use STARTTLS first")
            }
            _ => session.line_out("500 Unknown command"),
        };
        ServerProgress::Send(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, scripted, server_result};
    use crate::{ClientParams, ServerStep, Step};

    /// Modelled on INN's nnrpd replies (texts from its source; INN could not be run here, see README.md).
    const INN: &[u8] = b"200 vm.localdomain InterNetNews NNRP server INN 2.7.1 ready (posting ok)\r\n\
        101 Capability list:\r\nVERSION 2\r\nIMPLEMENTATION INN 2.7.1\r\nAUTHINFO USER\r\nHDR\r\nLIST ACTIVE ACTIVE.TIMES COUNTS DISTRIB.PATS DISTRIBUTIONS HEADERS MODERATORS MOTD NEWSGROUPS OVERVIEW.FMT SUBSCRIPTIONS\r\nNEWNEWS\r\nOVER\r\nPOST\r\nREADER\r\nSTARTTLS\r\n.\r\n\
        382 Begin TLS negotiation now\r\n";

    #[test]
    fn inn_dialogue() {
        let whole = assert_all_cuts(Protocol::Nntp, &ClientParams::default(), INN);
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
        let (_, sent) = scripted(Protocol::Nntp, ClientParams::default(), &[b"201 ro\r\n", b"101 x\r\nSTARTTLS\r\n.\r\n", b"382 go\r\n"]);
        assert_eq!(sent, b"CAPABILITIES\r\nSTARTTLS\r\n");
    }

    #[test]
    fn old_server_without_capabilities_is_asked_anyway() {
        let (step, sent) = scripted(Protocol::Nntp, ClientParams::default(), &[b"200 hi\r\n", b"500 What?\r\n", b"382 go\r\n"]);
        assert!(matches!(step, Step::Ready { .. }));
        assert_eq!(sent, b"CAPABILITIES\r\nSTARTTLS\r\n");
    }

    #[test]
    fn refusals() {
        let cases: [(&[u8], &str); 6] = [
            (b"200 hi\r\n101 x\r\nREADER\r\n.\r\n", "unsupported"),
            (b"200 hi\r\n101 x\r\nSTARTTLS\r\n.\r\n580 Can not initiate TLS negotiation\r\n", "unsupported"),
            (b"502 access denied\r\n", "failed"),
            (b"400 service unavailable\r\n", "failed"),
            (b"200-hi\r\n", "failed"),
            (b"200 hi\r\n101 x\r\nSTARTTLS\r\n.\r\n200 what\r\n", "failed"),
        ];
        for (input, want) in cases {
            assert_eq!(kind(&client_result(Protocol::Nntp, ClientParams::default(), input)), want, "{input:?}");
        }
    }

    #[test]
    fn server_role() {
        assert!(matches!(server_result(Protocol::Nntp, b"STARTTLS\r\n"), ServerStep::StartTls { .. }));
        assert_eq!(server_result(Protocol::Nntp, b"GROUP misc.test\r\n"), ServerStep::Send(b"483 Encryption required; use STARTTLS first\r\n".to_vec()));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Nntp);
    }
}
