//! IRC STARTTLS (the IRCv3 `tls` extension; numerics 670 RPL_STARTTLS and 691 ERR_STARTTLS).
//!
//! Client: send `CAP LS 302` at once (IRC servers take commands before the NOTICEs they send
//! first), skip NOTICEs and answer PINGs, read the `CAP * LS` reply (the `tls` capability is
//! noted, but not required: many servers have STARTTLS without advertising it), send `STARTTLS`,
//! expect numeric 670. 691 means the server failed to start TLS; 421/451 mean it has no STARTTLS.
//! A server that ignores STARTTLS silently can only be caught by the shell's timeout.

use crate::session::{printable, Session};
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, ServerDialect, ServerParams, ServerProgress};

/// One parsed IRC line.
#[derive(Debug, PartialEq, Eq)]
struct Message {
    command: String,
    params: Vec<String>,
}

fn parse(line: &str) -> Option<Message> {
    let mut rest = line.trim_start();
    // IRCv3 message tags and the source prefix are not needed here.
    if rest.starts_with('@') {
        rest = rest.split_once(' ')?.1.trim_start();
    }
    if rest.starts_with(':') {
        rest = rest.split_once(' ')?.1.trim_start();
    }
    let (head, trailing) = match rest.split_once(" :") {
        Some((head, trailing)) => (head, Some(trailing)),
        None => (rest, None),
    };
    let mut words = head.split(' ').filter(|w| !w.is_empty());
    let command = words.next()?.to_ascii_uppercase();
    let mut params: Vec<String> = words.map(str::to_string).collect();
    if let Some(trailing) = trailing {
        params.push(trailing.to_string());
    }
    Some(Message { command, params })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    CapLs,
    StartTls,
}

#[derive(Debug)]
pub(crate) struct Client {
    state: State,
    caps: Vec<String>,
    lines: usize,
}

impl Client {
    pub(crate) fn new() -> Self {
        Client { state: State::CapLs, caps: Vec::new(), lines: 0 }
    }

    fn send_starttls(&mut self, session: &mut Session) -> ClientProgress {
        self.state = State::StartTls;
        ClientProgress::Send(session.line_out("STARTTLS"))
    }
}

/// Most lines read before giving up (NOTICE floods).
const MAX_LINES: usize = 200;

impl ClientDialect for Client {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.line_out("CAP LS 302")
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        loop {
            let line = match session.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return ClientProgress::NeedMore,
                Err(reason) => return ClientProgress::Failed(reason),
            };
            session.note_in(&line);
            self.lines += 1;
            if self.lines > MAX_LINES {
                return ClientProgress::Failed(format!("more than {MAX_LINES} lines without an answer to STARTTLS"));
            }
            if line.trim().is_empty() {
                continue;
            }
            let Some(message) = parse(&line) else {
                return ClientProgress::Failed(format!("malformed IRC line {:?}", printable(&line)));
            };
            match message.command.as_str() {
                "NOTICE" | "020" => continue,
                "PING" => {
                    let token = message.params.last().cloned().unwrap_or_default();
                    return ClientProgress::Send(session.line_out(&format!("PONG :{token}")));
                }
                "ERROR" => return ClientProgress::Failed(format!("server closed the link: {}", printable(&line))),
                _ => {}
            }
            match self.state {
                State::CapLs => {
                    if message.command == "CAP" && message.params.get(1).is_some_and(|sub| sub.eq_ignore_ascii_case("LS")) {
                        let more = message.params.len() > 3 && message.params.get(2).is_some_and(|p| p == "*");
                        if let Some(list) = message.params.last() {
                            self.caps.extend(list.split_whitespace().map(|c| c.split('=').next().unwrap_or(c).to_ascii_lowercase()));
                        }
                        if more {
                            continue;
                        }
                        if self.caps.iter().any(|c| c == "tls") {
                            session.note("(server advertises the tls capability)");
                        }
                        return self.send_starttls(session);
                    }
                    // Any numeric (421 unknown command CAP, 451 not registered, …): no CAP, try anyway.
                    if is_numeric(&message.command) {
                        return self.send_starttls(session);
                    }
                }
                State::StartTls => match message.command.as_str() {
                    "670" => return ClientProgress::Ready { send_first: Vec::new() },
                    "691" => return ClientProgress::Failed(format!("server failed to start TLS: {}", printable(&line))),
                    "421" | "451" | "462" => {
                        return ClientProgress::Unsupported(format!("STARTTLS not available: {}", printable(&line)))
                    }
                    _ => {}
                },
            }
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Irc)
    }
}

fn is_numeric(command: &str) -> bool {
    command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug)]
pub(crate) struct Server {
    hostname: String,
    banner: String,
    nick: Option<String>,
    user: bool,
    budget: CommandBudget,
}

impl Server {
    pub(crate) fn new(params: &ServerParams) -> Self {
        Server {
            hostname: params.hostname.clone(),
            banner: params.banner.clone(),
            nick: None,
            user: false,
            budget: CommandBudget::default(),
        }
    }

    fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }
}

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        // A numeric, not a NOTICE: `openssl s_client -starttls irc` gives up at the first line
        // without a numeric in second place.
        session.line_out(&format!(":{} 020 * :Please wait while we process your connection ({}).", self.hostname, self.banner))
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let host = self.hostname.clone();
        let line = match session.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return ServerProgress::NeedMore,
            Err(reason) => return ServerProgress::Close { send_last: session.line_out("ERROR :Closing link: line too long"), reason },
        };
        session.note_in(&line);
        if line.trim().is_empty() {
            return ServerProgress::Send(Vec::new());
        }
        if !self.budget.spend(&session.limits) {
            return ServerProgress::Close {
                send_last: session.line_out("ERROR :Closing link: too many commands"),
                reason: "too many commands before STARTTLS".to_string(),
            };
        }
        let Some(message) = parse(&line) else {
            return ServerProgress::Send(Vec::new());
        };
        let reply = match message.command.as_str() {
            "CAP" => {
                let sub = message.params.first().map(|s| s.to_ascii_uppercase()).unwrap_or_default();
                match sub.as_str() {
                    "LS" => session.line_out(&format!(":{host} CAP {} LS :tls", self.target())),
                    "LIST" => session.line_out(&format!(":{host} CAP {} LIST :", self.target())),
                    "REQ" => {
                        let wanted = message.params.get(1).cloned().unwrap_or_default();
                        let verdict = if wanted.split_whitespace().all(|c| c.eq_ignore_ascii_case("tls")) { "ACK" } else { "NAK" };
                        session.line_out(&format!(":{host} CAP {} {verdict} :{wanted}", self.target()))
                    }
                    "END" => Vec::new(),
                    _ => session.line_out(&format!(":{host} 410 {} {sub} :Invalid CAP command", self.target())),
                }
            }
            "STARTTLS" => {
                return ServerProgress::StartTls {
                    send_first: session.line_out(&format!(":{host} 670 {} :STARTTLS successful, proceed with TLS handshake", self.target())),
                }
            }
            "PING" => {
                let token = message.params.last().cloned().unwrap_or_default();
                session.line_out(&format!(":{host} PONG {host} :{token}"))
            }
            "NICK" => {
                self.nick = message.params.first().cloned();
                Vec::new()
            }
            "USER" => {
                self.user = true;
                Vec::new()
            }
            "QUIT" => {
                return ServerProgress::Close {
                    send_last: session.line_out("ERROR :Closing link: client quit"),
                    reason: "client quit".to_string(),
                }
            }
            other => session.line_out(&format!(":{host} 451 {} {other} :You have not registered", self.target())),
        };
        if self.nick.is_some() && self.user {
            // Registration without TLS is not offered.
            let mut last = reply;
            last.extend(session.line_out("ERROR :Closing link: STARTTLS required"));
            return ServerProgress::Close { send_last: last, reason: "client registered without STARTTLS".to_string() };
        }
        ServerProgress::Send(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, scripted, server_result};
    use crate::{ClientParams, ServerStep, Step};

    #[test]
    fn parse_lines() {
        assert_eq!(
            parse(":irc.example.net CAP * LS :tls sasl=PLAIN").unwrap(),
            Message { command: "CAP".into(), params: vec!["*".into(), "LS".into(), "tls sasl=PLAIN".into()] }
        );
        assert_eq!(parse("@time=x :srv 670 * :go").unwrap().command, "670");
        assert_eq!(parse("PING :123").unwrap(), Message { command: "PING".into(), params: vec!["123".into()] });
        assert_eq!(parse(":onlyprefix"), None);
    }

    /// Recorded from InspIRCd 3.15 (tests/data/README.md).
    const INSPIRCD: &[u8] = include_bytes!("../tests/data/inspircd.txt");

    #[test]
    fn inspircd_dialogue() {
        let whole = assert_all_cuts(Protocol::Irc, &ClientParams::default(), INSPIRCD);
        assert!(matches!(&whole, Step::Ready { transcript, .. } if transcript.contains("tls capability")), "{whole:?}");
        let (_, sent) = scripted(
            Protocol::Irc,
            ClientParams::default(),
            &[b"NOTICE AUTH :*** hello\r\nPING :42\r\n", b":s CAP * LS * :a b\r\n:s CAP * LS :tls\r\n", b":s 670 * :go\r\n"],
        );
        assert_eq!(sent, b"CAP LS 302\r\nPONG :42\r\nSTARTTLS\r\n");
    }

    #[test]
    fn without_cap_support_and_refusals() {
        let (step, sent) = scripted(
            Protocol::Irc,
            ClientParams::default(),
            &[b":s 421 * CAP :Unknown command\r\n", b":s 670 * :go\r\n"],
        );
        assert!(matches!(step, Step::Ready { .. }));
        assert_eq!(sent, b"CAP LS 302\r\nSTARTTLS\r\n");
        let cases: [(&[u8], &str); 4] = [
            (b":s CAP * LS :sasl\r\n:s 421 * STARTTLS :Unknown command\r\n", "unsupported"),
            (b":s CAP * LS :tls\r\n:s 691 * :STARTTLS failure\r\n", "failed"),
            (b"ERROR :Closing link: throttled\r\n", "failed"),
            (b":s CAP * LS :tls\r\n:s 451 * STARTTLS :You have not registered\r\n", "unsupported"),
        ];
        for (input, want) in cases {
            assert_eq!(kind(&client_result(Protocol::Irc, ClientParams::default(), input)), want, "{input:?}");
        }
    }

    #[test]
    fn notice_flood_is_capped() {
        let flood = b":s NOTICE * :spam\r\n".repeat(300);
        assert_eq!(kind(&client_result(Protocol::Irc, ClientParams::default(), &flood)), "failed");
    }

    #[test]
    fn server_role() {
        let ServerStep::Send(bytes) = server_result(Protocol::Irc, b"CAP LS 302\r\n") else { panic!() };
        assert_eq!(bytes, b":localhost CAP * LS :tls\r\n");
        let step = server_result(Protocol::Irc, b"NICK joe\r\nSTARTTLS\r\n");
        let ServerStep::StartTls { send_first, .. } = step else { panic!() };
        assert!(send_first.starts_with(b":localhost 670 joe :"));
        assert!(matches!(server_result(Protocol::Irc, b"NICK a\r\nUSER a 0 * :a\r\n"), ServerStep::Close { .. }));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Irc);
    }
}
