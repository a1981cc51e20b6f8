#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))] // unit tests fail loudly by design
//! STARTTLS dialects for bleedwatch, as sans-IO state machines: bytes in, bytes out, no sockets.
//!
//! Two roles per protocol:
//! - [`ClientUpgrade`]: the scanner's side. It speaks the plaintext dialogue up to the point where
//!   the server expects a TLS ClientHello, then says [`Step::Ready`].
//! - [`ServerDialogue`]: the server's side (test servers, client tests, honeypots). It greets,
//!   advertises STARTTLS, and says [`ServerStep::StartTls`] when the client asks for it.
//!
//! [`identify`] and [`ClientUpgrade::auto`] recognise a protocol from a server's first bytes.
//!
//! A shell drives a [`ClientUpgrade`] like this (timeouts are the shell's job; see the README):
//!
//! ```
//! use bleedwatch_starttls::{ClientParams, ClientUpgrade, Protocol, Step};
//!
//! let mut upgrade = ClientUpgrade::new(Protocol::Pop3, ClientParams::default());
//! let mut to_server = upgrade.start(); // empty: a POP3 server speaks first
//! assert!(to_server.is_empty());
//! let mut replies: Vec<&[u8]> = vec![b"+OK ready\r\n", b"+OK\r\nSTLS\r\n.\r\n", b"+OK go\r\n"];
//! let step = loop {
//!     // (write `to_server` to the socket, then read)
//!     let from_server = replies.remove(0);
//!     match upgrade.feed(from_server) {
//!         Step::Send(bytes) => to_server = bytes,
//!         Step::NeedMore => to_server = Vec::new(),
//!         done => break done,
//!     }
//! };
//! assert!(matches!(step, Step::Ready { .. }));
//! ```
//!
//! Nothing here panics on peer input, and every buffer is capped ([`Limits`]).

#[cfg(feature = "tokio")]
pub mod io;
mod detect;
mod ftp;
pub mod fuzzing;
mod imap;
mod irc;
mod ldap;
mod mysql;
mod nntp;
mod pop3;
mod postgres;
mod rdp;
mod reply;
mod session;
mod sieve;
mod smtp;
mod xmpp;

use std::fmt;
use std::str::FromStr;

use session::{Role, Session};

pub use detect::{identify, Identification};

/// A STARTTLS dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SMTP and submission (ports 25, 587): EHLO, STARTTLS → 220.
    Smtp,
    /// LMTP: LHLO, STARTTLS → 220.
    Lmtp,
    /// IMAP: CAPABILITY, STARTTLS → tagged OK.
    Imap,
    /// POP3: CAPA, STLS → +OK.
    Pop3,
    /// FTP: AUTH TLS → 234.
    Ftp,
    /// XMPP client-to-server stream (`jabber:client`).
    XmppClient,
    /// XMPP server-to-server stream (`jabber:server`).
    XmppServer,
    /// LDAP StartTLS extended operation (1.3.6.1.4.1.1466.20037).
    Ldap,
    /// NNTP: CAPABILITIES, STARTTLS → 382.
    Nntp,
    /// ManageSieve: STARTTLS → OK.
    Sieve,
    /// PostgreSQL SSLRequest → `S`.
    Postgres,
    /// MySQL / MariaDB: CLIENT_SSL in the greeting, SSL request packet, then TLS.
    Mysql,
    /// RDP: X.224 Connection Request with RDP_NEG_REQ → Connection Confirm with RDP_NEG_RSP.
    Rdp,
    /// IRC: STARTTLS → numeric 670.
    Irc,
}

impl Protocol {
    pub const ALL: [Protocol; 14] = [
        Protocol::Smtp,
        Protocol::Lmtp,
        Protocol::Imap,
        Protocol::Pop3,
        Protocol::Ftp,
        Protocol::XmppClient,
        Protocol::XmppServer,
        Protocol::Ldap,
        Protocol::Nntp,
        Protocol::Sieve,
        Protocol::Postgres,
        Protocol::Mysql,
        Protocol::Rdp,
        Protocol::Irc,
    ];

    /// The name used on the command line and in reports (parsed back by [`FromStr`]).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Ftp => "ftp",
            Protocol::XmppClient => "xmpp",
            Protocol::XmppServer => "xmpp-server",
            Protocol::Ldap => "ldap",
            Protocol::Nntp => "nntp",
            Protocol::Sieve => "sieve",
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Rdp => "rdp",
            Protocol::Irc => "irc",
        }
    }

    /// The ports where this dialect is usually spoken (plaintext ports: implicit-TLS ports such as
    /// 465 or 993 need no STARTTLS).
    pub fn default_ports(self) -> &'static [u16] {
        match self {
            Protocol::Smtp => &[25, 587, 2525],
            Protocol::Lmtp => &[24],
            Protocol::Imap => &[143],
            Protocol::Pop3 => &[110],
            Protocol::Ftp => &[21],
            Protocol::XmppClient => &[5222],
            Protocol::XmppServer => &[5269],
            Protocol::Ldap => &[389],
            Protocol::Nntp => &[119],
            Protocol::Sieve => &[4190],
            Protocol::Postgres => &[5432],
            Protocol::Mysql => &[3306],
            Protocol::Rdp => &[3389],
            Protocol::Irc => &[6667],
        }
    }

    /// The dialect usually spoken on `port`, if any.
    pub fn for_port(port: u16) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.default_ports().contains(&port))
    }

    /// True when the server talks first (a banner or greeting) and the client waits for it.
    /// Auto-detection ([`ClientUpgrade::auto`]) only works for these; for the others a shell must
    /// know the protocol (e.g. from [`Protocol::for_port`]).
    pub fn server_speaks_first(self) -> bool {
        !matches!(
            self,
            Protocol::XmppClient | Protocol::XmppServer | Protocol::Ldap | Protocol::Postgres | Protocol::Rdp
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name [`Protocol::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown STARTTLS protocol {name:?} (known: smtp, submission, lmtp, imap, pop3, ftp, xmpp, xmpp-server, ldap, nntp, sieve, postgres, mysql, rdp, irc)")]
pub struct UnknownProtocol {
    pub name: String,
}

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let found = match lower.as_str() {
            "smtp" | "submission" | "esmtp" => Protocol::Smtp,
            "lmtp" => Protocol::Lmtp,
            "imap" => Protocol::Imap,
            "pop3" | "pop" => Protocol::Pop3,
            "ftp" => Protocol::Ftp,
            "xmpp" | "xmpp-client" | "jabber" => Protocol::XmppClient,
            "xmpp-server" | "xmpp-s2s" => Protocol::XmppServer,
            "ldap" => Protocol::Ldap,
            "nntp" => Protocol::Nntp,
            "sieve" | "managesieve" => Protocol::Sieve,
            "postgres" | "postgresql" | "pgsql" => Protocol::Postgres,
            "mysql" | "mariadb" => Protocol::Mysql,
            "rdp" => Protocol::Rdp,
            "irc" => Protocol::Irc,
            _ => return Err(UnknownProtocol { name: s.to_string() }),
        };
        Ok(found)
    }
}

/// Caps that bound every dialogue, whatever the peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest single reply (all lines of a multi-line reply, one binary message) or command.
    pub max_reply: usize,
    /// Most bytes the peer may send before the upgrade.
    pub max_dialogue: usize,
    /// Longest transcript kept (characters).
    pub max_transcript: usize,
    /// Server role: most client commands answered before the dialogue is closed.
    pub max_commands: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_reply: 16 * 1024, max_dialogue: 64 * 1024, max_transcript: 4096, max_commands: 32 }
    }
}

/// Settings for the client role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientParams {
    /// The server's domain: XMPP `to=` (required by XMPP servers; without it the stream header is
    /// sent without `to=` and most servers answer `host-unknown`). Usually the target's host name.
    pub domain: Option<String>,
    /// Our own name: the EHLO/LHLO argument, and `from=` on XMPP server-to-server streams.
    pub ehlo_name: String,
    pub limits: Limits,
}

impl Default for ClientParams {
    fn default() -> Self {
        ClientParams { domain: None, ehlo_name: "bleedwatch.invalid".to_string(), limits: Limits::default() }
    }
}

impl ClientParams {
    /// Default settings with `domain` set.
    pub fn with_domain(domain: impl Into<String>) -> Self {
        ClientParams { domain: Some(domain.into()), ..ClientParams::default() }
    }
}

/// Settings for the server role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerParams {
    /// The name the server calls itself (SMTP greeting and EHLO reply, IRC prefix, XMPP `from=`
    /// when the client sent no `to=`).
    pub hostname: String,
    /// Product text in greetings (SMTP `220 host ESMTP <banner>`, FTP, IMAP, POP3, NNTP, Sieve
    /// IMPLEMENTATION, IRC notice; MySQL's server version is `5.7.44-<banner>`).
    pub banner: String,
    pub limits: Limits,
}

impl Default for ServerParams {
    fn default() -> Self {
        ServerParams { hostname: "localhost".to_string(), banner: "bleedwatch".to_string(), limits: Limits::default() }
    }
}

/// What a [`ClientUpgrade`] wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes, then read and feed the server's answer.
    Send(Vec<u8>),
    /// Nothing to write; read more and feed it.
    NeedMore,
    /// The server expects TLS now. Write `send_first` (non-empty only for MySQL: the SSL request
    /// packet; TLS starts without a server reply), then start the TLS handshake.
    /// `leftover` holds bytes the server sent after its go-ahead and before our ClientHello; a
    /// well-behaved server sends none (they are not TLS: a shell should pass them to its TLS
    /// deframer, which will call them not-TLS, or report them).
    Ready { send_first: Vec<u8>, leftover: Vec<u8>, transcript: String },
    /// The server does not offer STARTTLS (or refused it); `reason` says how we know.
    Unsupported { reason: String, transcript: String },
    /// The dialogue broke: malformed or unexpected reply, refusal to talk at all, caps exceeded.
    Failed { reason: String, transcript: String },
}

impl Step {
    /// True for `Ready`, `Unsupported` and `Failed`: the dialogue is over.
    pub fn is_final(&self) -> bool {
        !matches!(self, Step::Send(_) | Step::NeedMore)
    }
}

/// What a [`ServerDialogue`] wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Write these bytes to the client, then keep reading.
    Send(Vec<u8>),
    /// Nothing to write; read more.
    NeedMore,
    /// Write `send_first` (the go-ahead, e.g. `220 2.0.0 Ready to start TLS`; empty for MySQL and
    /// for a PostgreSQL client starting TLS directly), then run the TLS server on the connection.
    /// `leftover` are client bytes after its STARTTLS request: the start of its TLS stream if it
    /// did not wait for our go-ahead. (A strict server discards plaintext pipelined after STARTTLS,
    /// CVE-2011-0411; a honeypot will want to see them.)
    StartTls { send_first: Vec<u8>, leftover: Vec<u8> },
    /// Write `send_last` (may be empty), then close: the client quit, misbehaved, or hit a cap.
    Close { send_last: Vec<u8>, reason: String },
}

/// Internal result of one dialect step (client role).
#[derive(Debug)]
pub(crate) enum ClientProgress {
    NeedMore,
    Send(Vec<u8>),
    Ready { send_first: Vec<u8> },
    Unsupported(String),
    Failed(String),
}

/// Internal result of one dialect step (server role).
#[derive(Debug)]
pub(crate) enum ServerProgress {
    NeedMore,
    Send(Vec<u8>),
    StartTls { send_first: Vec<u8> },
    Close { send_last: Vec<u8>, reason: String },
}

/// A client-role dialect. `advance` handles at most one complete peer message per call and is
/// called until it needs more input or finishes.
pub(crate) trait ClientDialect: fmt::Debug + Send {
    /// Bytes to send right after connecting (empty when the server speaks first).
    fn start(&mut self, session: &mut Session) -> Vec<u8>;
    fn advance(&mut self, session: &mut Session) -> ClientProgress;
    /// The protocol actually spoken (the SMTP-or-FTP probe knows only after a reply).
    fn protocol(&self) -> Option<Protocol>;
}

/// A server-role dialect, same contract as [`ClientDialect`].
pub(crate) trait ServerDialect: fmt::Debug + Send {
    fn start(&mut self, session: &mut Session) -> Vec<u8>;
    fn advance(&mut self, session: &mut Session) -> ServerProgress;
}

fn client_dialect(protocol: Protocol, params: &ClientParams) -> Box<dyn ClientDialect> {
    match protocol {
        Protocol::Smtp => Box::new(smtp::Client::new(smtp::Flavor::Smtp, &params.ehlo_name)),
        Protocol::Lmtp => Box::new(smtp::Client::new(smtp::Flavor::Lmtp, &params.ehlo_name)),
        Protocol::Imap => Box::new(imap::Client::new()),
        Protocol::Pop3 => Box::new(pop3::Client::new()),
        Protocol::Ftp => Box::new(ftp::Client::new()),
        Protocol::XmppClient => Box::new(xmpp::Client::new(xmpp::Kind::Client, params)),
        Protocol::XmppServer => Box::new(xmpp::Client::new(xmpp::Kind::Server, params)),
        Protocol::Ldap => Box::new(ldap::Client::new()),
        Protocol::Nntp => Box::new(nntp::Client::new()),
        Protocol::Sieve => Box::new(sieve::Client::new()),
        Protocol::Postgres => Box::new(postgres::Client::new()),
        Protocol::Mysql => Box::new(mysql::Client::new()),
        Protocol::Rdp => Box::new(rdp::Client::new()),
        Protocol::Irc => Box::new(irc::Client::new()),
    }
}

fn server_dialect(protocol: Protocol, params: &ServerParams) -> Box<dyn ServerDialect> {
    match protocol {
        Protocol::Smtp => Box::new(smtp::Server::new(smtp::Flavor::Smtp, params)),
        Protocol::Lmtp => Box::new(smtp::Server::new(smtp::Flavor::Lmtp, params)),
        Protocol::Imap => Box::new(imap::Server::new(params)),
        Protocol::Pop3 => Box::new(pop3::Server::new(params)),
        Protocol::Ftp => Box::new(ftp::Server::new(params)),
        Protocol::XmppClient => Box::new(xmpp::Server::new(xmpp::Kind::Client, params)),
        Protocol::XmppServer => Box::new(xmpp::Server::new(xmpp::Kind::Server, params)),
        Protocol::Ldap => Box::new(ldap::Server::new()),
        Protocol::Nntp => Box::new(nntp::Server::new(params)),
        Protocol::Sieve => Box::new(sieve::Server::new(params)),
        Protocol::Postgres => Box::new(postgres::Server::new()),
        Protocol::Mysql => Box::new(mysql::Server::new(params)),
        Protocol::Rdp => Box::new(rdp::Server::new()),
        Protocol::Irc => Box::new(irc::Server::new(params)),
    }
}

/// The client side of a STARTTLS upgrade.
#[derive(Debug)]
pub struct ClientUpgrade {
    session: Session,
    params: ClientParams,
    /// `None` while auto-detection waits for the banner.
    dialect: Option<Box<dyn ClientDialect>>,
    /// Auto-detection: the port hint, and what the banner turned out to be.
    auto_port: Option<u16>,
    identification: Option<Identification>,
    started: bool,
    finished: Option<Step>,
}

impl ClientUpgrade {
    /// A client for a known protocol.
    pub fn new(protocol: Protocol, params: ClientParams) -> Self {
        let dialect = client_dialect(protocol, &params);
        ClientUpgrade {
            session: Session::new(params.limits, Role::Client),
            params,
            dialect: Some(dialect),
            auto_port: None,
            identification: None,
            started: false,
            finished: None,
        }
    }

    /// A client that waits for the server's banner and works out the protocol from it with
    /// [`identify`]. A `220` banner that names neither SMTP nor FTP is settled by `port` (21: FTP,
    /// 24: LMTP, 25/587/2525: SMTP) or, failing that, by probing: `EHLO` is sent; an SMTP server
    /// answers 250 and the dialogue goes on as SMTP, anything else means FTP and `AUTH TLS` follows.
    /// Only for protocols where the server speaks first ([`Protocol::server_speaks_first`]).
    pub fn auto(params: ClientParams, port: Option<u16>) -> Self {
        ClientUpgrade {
            session: Session::new(params.limits, Role::Client),
            params,
            dialect: None,
            auto_port: Some(port.unwrap_or(0)),
            identification: None,
            started: false,
            finished: None,
        }
    }

    /// Bytes to send right after connecting; empty when the server speaks first (and always in
    /// auto mode). Call once.
    pub fn start(&mut self) -> Vec<u8> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        match self.dialect.as_mut() {
            Some(dialect) => dialect.start(&mut self.session),
            None => Vec::new(),
        }
    }

    /// Feeds server bytes (any split is fine; an empty slice just re-runs the machine). After a
    /// final step every later call returns that step again.
    pub fn feed(&mut self, data: &[u8]) -> Step {
        if let Some(done) = &self.finished {
            return done.clone();
        }
        if !self.started {
            // The shell forgot start(): its bytes would be lost, so treat it as a bug of the
            // dialogue rather than guess.
            return self.finish(ClientProgress::Failed("feed() called before start()".to_string()), Vec::new());
        }
        if let Err(reason) = self.session.push(data) {
            return self.finish(ClientProgress::Failed(reason), Vec::new());
        }
        let mut out = Vec::new();
        if self.dialect.is_none() {
            match self.detect() {
                Ok(Some(mut dialect)) => {
                    out.extend(dialect.start(&mut self.session));
                    self.dialect = Some(dialect);
                }
                Ok(None) => return Step::NeedMore,
                Err(progress) => return self.finish(progress, out),
            }
        }
        let Some(dialect) = self.dialect.as_mut() else {
            return self.finish(ClientProgress::Failed("no dialect".to_string()), out);
        };
        loop {
            match dialect.advance(&mut self.session) {
                ClientProgress::Send(bytes) => out.extend(bytes),
                ClientProgress::NeedMore => {
                    return if out.is_empty() { Step::NeedMore } else { Step::Send(out) };
                }
                done => return self.finish(done, out),
            }
        }
    }

    /// The protocol being spoken: the one given, or what auto-detection found (`None` before the
    /// banner, or while an ambiguous `220` banner is being probed).
    pub fn protocol(&self) -> Option<Protocol> {
        self.dialect.as_ref().and_then(|d| d.protocol())
    }

    /// Auto mode: what [`identify`] made of the banner (`None` before it was complete).
    pub fn identification(&self) -> Option<&Identification> {
        self.identification.as_ref()
    }

    /// The printable, capped transcript so far.
    pub fn transcript(&self) -> String {
        self.session.transcript()
    }

    fn detect(&mut self) -> Result<Option<Box<dyn ClientDialect>>, ClientProgress> {
        let port = self.auto_port.unwrap_or(0);
        let found = identify(self.session.pending());
        let dialect: Box<dyn ClientDialect> = match &found {
            Identification::Incomplete => {
                if self.session.pending().len() > self.params.limits.max_reply {
                    return Err(ClientProgress::Failed(format!(
                        "banner not recognised within {} bytes",
                        self.params.limits.max_reply
                    )));
                }
                return Ok(None);
            }
            Identification::Protocol(protocol) => client_dialect(*protocol, &self.params),
            Identification::SmtpOrFtp => match port {
                21 => client_dialect(Protocol::Ftp, &self.params),
                24 => client_dialect(Protocol::Lmtp, &self.params),
                25 | 587 | 2525 => client_dialect(Protocol::Smtp, &self.params),
                _ => Box::new(detect::SmtpOrFtp::new(&self.params.ehlo_name)),
            },
            Identification::NotStartTls(service) => {
                let reason = format!("not a STARTTLS service: {service} banner {:?}", banner_excerpt(self.session.pending()));
                self.identification = Some(found);
                return Err(ClientProgress::Unsupported(reason));
            }
            Identification::Unknown => {
                let reason = format!("unrecognised banner {:?}", banner_excerpt(self.session.pending()));
                self.identification = Some(found);
                return Err(ClientProgress::Failed(reason));
            }
        };
        self.identification = Some(found);
        Ok(Some(dialect))
    }

    fn finish(&mut self, progress: ClientProgress, sent: Vec<u8>) -> Step {
        let transcript = self.session.transcript();
        let step = match progress {
            ClientProgress::Ready { send_first } => {
                let mut all = sent;
                all.extend(send_first);
                Step::Ready { send_first: all, leftover: self.session.take_pending(), transcript }
            }
            ClientProgress::Unsupported(reason) => Step::Unsupported { reason, transcript },
            ClientProgress::Failed(reason) => Step::Failed { reason, transcript },
            // Not final: never stored.
            ClientProgress::Send(bytes) => return Step::Send(bytes),
            ClientProgress::NeedMore => return Step::NeedMore,
        };
        self.finished = Some(step.clone());
        step
    }
}

fn banner_excerpt(bytes: &[u8]) -> String {
    let cut = bytes.get(..bytes.len().min(80)).unwrap_or_default();
    session::printable_bytes(cut)
}

/// The server side of a STARTTLS dialogue.
#[derive(Debug)]
pub struct ServerDialogue {
    session: Session,
    dialect: Box<dyn ServerDialect>,
    protocol: Protocol,
    started: bool,
    finished: Option<ServerStep>,
}

impl ServerDialogue {
    pub fn new(protocol: Protocol, params: ServerParams) -> Self {
        ServerDialogue {
            session: Session::new(params.limits, Role::Server),
            dialect: server_dialect(protocol, &params),
            protocol,
            started: false,
            finished: None,
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The greeting to send right after accepting (empty when the client speaks first). Call once.
    pub fn start(&mut self) -> Vec<u8> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        self.dialect.start(&mut self.session)
    }

    /// Feeds client bytes; after a final step every later call returns that step again.
    pub fn feed(&mut self, data: &[u8]) -> ServerStep {
        if let Some(done) = &self.finished {
            return done.clone();
        }
        let mut out = if self.started { Vec::new() } else { self.start() };
        if let Err(reason) = self.session.push(data) {
            return self.finish(ServerStep::Close { send_last: out, reason });
        }
        loop {
            match self.dialect.advance(&mut self.session) {
                ServerProgress::Send(bytes) => out.extend(bytes),
                ServerProgress::NeedMore => {
                    return if out.is_empty() { ServerStep::NeedMore } else { ServerStep::Send(out) };
                }
                ServerProgress::StartTls { send_first } => {
                    out.extend(send_first);
                    let leftover = self.session.take_pending();
                    return self.finish(ServerStep::StartTls { send_first: out, leftover });
                }
                ServerProgress::Close { send_last, reason } => {
                    out.extend(send_last);
                    return self.finish(ServerStep::Close { send_last: out, reason });
                }
            }
        }
    }

    /// The printable, capped transcript so far ("C:" lines are the client's).
    pub fn transcript(&self) -> String {
        self.session.transcript()
    }

    fn finish(&mut self, step: ServerStep) -> ServerStep {
        self.finished = Some(step.clone());
        step
    }
}

/// Counts client commands in the server role, closing the dialogue past the cap.
#[derive(Debug, Default)]
pub(crate) struct CommandBudget {
    used: usize,
}

impl CommandBudget {
    /// False once more than `limits.max_commands` commands arrived.
    pub(crate) fn spend(&mut self, limits: &Limits) -> bool {
        self.used += 1;
        self.used <= limits.max_commands
    }

    /// The server role's next command line, recorded in the transcript and counted against the
    /// budget. `Err` is the step to return: need more input, or close with the dialect's own words
    /// for a line too long or too many commands.
    pub(crate) fn next_command(&mut self, session: &mut session::Session, refusals: &Refusals) -> Result<String, ServerProgress> {
        let line = match session.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return Err(ServerProgress::NeedMore),
            Err(reason) => return Err(ServerProgress::Close { send_last: session.line_out(refusals.too_long), reason }),
        };
        session.note_in(&line);
        if !self.spend(&session.limits) {
            return Err(ServerProgress::Close {
                send_last: session.line_out(refusals.too_many),
                reason: format!("too many commands before {}", refusals.awaited),
            });
        }
        Ok(line)
    }
}

/// How a line-based server dialect refuses: its reply to a line too long, to too many commands, and
/// the command it was waiting for (named in the reason).
pub(crate) struct Refusals {
    pub too_long: &'static str,
    pub too_many: &'static str,
    pub awaited: &'static str,
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
            assert!(!p.default_ports().is_empty());
            assert_eq!(Protocol::for_port(p.default_ports()[0]), Some(p));
        }
        assert_eq!("submission".parse::<Protocol>().unwrap(), Protocol::Smtp);
        assert_eq!("PostgreSQL".parse::<Protocol>().unwrap(), Protocol::Postgres);
        assert!("gopher".parse::<Protocol>().is_err());
        assert_eq!(Protocol::for_port(587), Some(Protocol::Smtp));
        assert_eq!(Protocol::for_port(443), None);
    }

    #[test]
    fn machines_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<ClientUpgrade>();
        assert_send::<ServerDialogue>();
    }

    #[test]
    fn feed_before_start_fails_cleanly() {
        let mut up = ClientUpgrade::new(Protocol::Smtp, ClientParams::default());
        assert!(matches!(up.feed(b"220 x\r\n"), Step::Failed { .. }));
    }

    #[test]
    fn dialogue_cap_fails() {
        let params = ClientParams { limits: Limits { max_dialogue: 100, ..Limits::default() }, ..ClientParams::default() };
        let mut up = ClientUpgrade::new(Protocol::Smtp, params);
        up.start();
        let step = up.feed(&[b'2'; 101]);
        assert!(matches!(&step, Step::Failed { reason, .. } if reason.contains("more than 100")), "{step:?}");
        // Final steps repeat.
        assert_eq!(up.feed(b""), step);
    }

    #[test]
    fn every_protocol_round_trips_against_its_server() {
        for p in Protocol::ALL {
            let outcome = testkit::run_pair(p, ClientParams::with_domain("localhost"), ServerParams::default(), 1);
            assert!(outcome.client_ready, "{p}: {outcome:?}");
            assert!(outcome.server_start_tls, "{p}: {outcome:?}");
        }
    }

    #[test]
    fn every_protocol_round_trips_one_byte_at_a_time() {
        for p in Protocol::ALL {
            let outcome = testkit::run_pair(p, ClientParams::with_domain("localhost"), ServerParams::default(), 1 << 20);
            assert!(outcome.client_ready && outcome.server_start_tls, "{p}: {outcome:?}");
            let outcome = testkit::run_pair_chunked(p, ClientParams::with_domain("localhost"), ServerParams::default(), 1);
            assert!(outcome.client_ready && outcome.server_start_tls, "{p} byte-wise: {outcome:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Random bytes in random pieces, to every dialect in both roles and to auto mode: never a
        /// panic, and the dialogue cap always holds.
        #[test]
        fn random_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8)) {
            for p in Protocol::ALL {
                let mut client = ClientUpgrade::new(p, ClientParams::with_domain("example.org"));
                client.start();
                let mut server = ServerDialogue::new(p, ServerParams::default());
                server.start();
                for chunk in &chunks {
                    let _ = client.feed(chunk);
                    let _ = server.feed(chunk);
                }
                proptest::prop_assert!(client.transcript().len() <= Limits::default().max_transcript + 64);
            }
            let mut auto = ClientUpgrade::auto(ClientParams::default(), None);
            auto.start();
            for chunk in &chunks {
                let _ = auto.feed(chunk);
                let _ = identify(chunk);
            }
        }
    }

    #[test]
    fn auto_detects_every_server_first_protocol_from_our_own_servers() {
        for p in Protocol::ALL.into_iter().filter(|p| p.server_speaks_first()) {
            let mut server = ServerDialogue::new(p, ServerParams::default());
            let mut client = ClientUpgrade::auto(ClientParams::with_domain("localhost"), None);
            assert!(client.start().is_empty());
            let outcome = testkit::drive(&mut client, &mut server, Vec::new(), usize::MAX);
            assert!(outcome.client_ready && outcome.server_start_tls, "{p}: {outcome:?}");
            assert_eq!(client.protocol(), Some(p), "{p}");
        }
    }
}
