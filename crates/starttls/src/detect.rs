//! Protocol recognition from a server's first bytes, and the SMTP-or-FTP probe for `220` banners
//! that do not say which they are.

use crate::reply::{split_code, NumericReader};
use crate::session::Session;
use crate::{ftp, smtp, ClientDialect, ClientProgress, Protocol};

/// What a server's first bytes say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identification {
    /// A STARTTLS dialect.
    Protocol(Protocol),
    /// A `220` (or `421`) banner that names neither SMTP nor FTP. [`crate::ClientUpgrade::auto`]
    /// settles it by port or by probing with `EHLO`.
    SmtpOrFtp,
    /// A service without STARTTLS: `"ssh"`, `"http"`, `"vnc"`, `"telnet"`.
    NotStartTls(&'static str),
    /// Not enough bytes yet (e.g. no complete line): read more, up to a cap and a timeout.
    Incomplete,
    /// Nothing recognisable.
    Unknown,
}

const NOT_STARTTLS_PREFIXES: [(&[u8], &str); 4] = [(b"SSH-", "ssh"), (b"HTTP/", "http"), (b"RFB ", "vnc"), (b"AMQP", "amqp")];
const PROTOCOL_PREFIXES: [(&[u8], Protocol); 9] = [
    (b"+OK", Protocol::Pop3),
    (b"-ERR", Protocol::Pop3),
    (b"* OK", Protocol::Imap),
    (b"* PREAUTH", Protocol::Imap),
    (b"* BYE", Protocol::Imap),
    (b"NOTICE ", Protocol::Irc),
    (b"PING :", Protocol::Irc),
    (b"ERROR :", Protocol::Irc),
    (b"\"IMPLEMENTATION\"", Protocol::Sieve),
];
/// Other capabilities a ManageSieve greeting may start with.
const SIEVE_FIRST_CAPABILITIES: [&[u8]; 4] = [b"\"SIEVE\"", b"\"SASL\"", b"\"STARTTLS\"", b"\"VERSION\""];

/// Recognises a protocol from the first bytes a server sent (a banner or greeting). Feed it
/// everything received so far; it answers [`Identification::Incomplete`] until it can decide.
pub fn identify(first_bytes: &[u8]) -> Identification {
    if first_bytes.is_empty() {
        return Identification::Incomplete;
    }
    if let Some(found) = identify_binary(first_bytes) {
        return found;
    }
    for (prefix, service) in NOT_STARTTLS_PREFIXES {
        if first_bytes.starts_with(prefix) {
            return Identification::NotStartTls(service);
        }
    }
    for (prefix, protocol) in PROTOCOL_PREFIXES {
        if first_bytes.starts_with(prefix) {
            return Identification::Protocol(protocol);
        }
    }
    for prefix in SIEVE_FIRST_CAPABILITIES {
        if first_bytes.starts_with(prefix) {
            return Identification::Protocol(Protocol::Sieve);
        }
    }
    // Text protocols start with printable ASCII; other binary openings are not ours.
    if first_bytes.first().is_some_and(|&b| !(b.is_ascii_graphic() || b == b' ')) {
        return Identification::Unknown;
    }
    // Everything else needs the whole first line.
    let Some(first_line) = first_line(first_bytes) else {
        return Identification::Incomplete;
    };
    if first_line.starts_with(':') {
        return identify_irc_prefixed(&first_line);
    }
    if let Some((code, _, _)) = split_code(&first_line) {
        return match code {
            200 | 201 => Identification::Protocol(Protocol::Nntp),
            120 => Identification::Protocol(Protocol::Ftp),
            554 => Identification::Protocol(Protocol::Smtp),
            220 => match whole_reply(first_bytes, code) {
                Some(text) => classify_220(&text),
                None => Identification::Incomplete,
            },
            421 => Identification::SmtpOrFtp,
            _ => Identification::Unknown,
        };
    }
    Identification::Unknown
}

/// MySQL's first packet: 3-byte length, sequence 0, protocol version 10 (or an ERR packet).
fn identify_binary(bytes: &[u8]) -> Option<Identification> {
    if bytes.first() == Some(&0xff) && bytes.get(1).is_some_and(|b| (0xfb..=0xfe).contains(b)) {
        return Some(Identification::NotStartTls("telnet"));
    }
    let header = bytes.get(..5)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]);
    let plausible_length = (1..=64 * 1024).contains(&len);
    if header[3] == 0 && plausible_length && (header[4] == 10 || header[4] == 0xff) {
        return Some(Identification::Protocol(Protocol::Mysql));
    }
    None
}

fn first_line(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let line = bytes.get(..end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some(String::from_utf8_lossy(line).into_owned())
}

/// `:server NOTICE …`, `:server 020 …` (numerics) are IRC.
fn identify_irc_prefixed(line: &str) -> Identification {
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let _prefix = words.next();
    match words.next() {
        Some(command)
            if command.eq_ignore_ascii_case("NOTICE")
                || command.eq_ignore_ascii_case("PING")
                || command.eq_ignore_ascii_case("CAP")
                || (command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Identification::Protocol(Protocol::Irc)
        }
        _ => Identification::Unknown,
    }
}

/// The text of a complete (possibly multi-line) reply with `code`, `None` if it has not ended.
fn whole_reply(bytes: &[u8], code: u16) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let complete = text.get(..text.rfind('\n')?)?;
    let mut collected = String::new();
    for line in complete.split('\n') {
        let line = line.trim_end_matches('\r');
        collected.push_str(line);
        collected.push('\n');
        if matches!(split_code(line), Some((c, false, _)) if c == code) {
            return Some(collected);
        }
    }
    None
}

fn classify_220(text: &str) -> Identification {
    let lower = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["ftp", "filezilla", "serv-u", "wu-2", "ms ftp"]) {
        Identification::Protocol(Protocol::Ftp)
    } else if has(&["lmtp"]) {
        Identification::Protocol(Protocol::Lmtp)
    } else if has(&["smtp", "postfix", "exim", "sendmail", "qmail", "mail", "mta", "haraka", "courier"]) {
        Identification::Protocol(Protocol::Smtp)
    } else {
        Identification::SmtpOrFtp
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeState {
    Greeting,
    Ehlo,
}

/// Speaks to a server whose `220` banner could be SMTP or FTP: sends `EHLO`; `250` continues as
/// SMTP, any other answer (FTP servers say 500/502/530) continues as FTP with `AUTH TLS`.
#[derive(Debug)]
pub(crate) struct SmtpOrFtp {
    ehlo_name: String,
    state: ProbeState,
    reader: NumericReader,
    inner: Option<Box<dyn ClientDialect>>,
}

impl SmtpOrFtp {
    pub(crate) fn new(ehlo_name: &str) -> Self {
        SmtpOrFtp { ehlo_name: ehlo_name.to_string(), state: ProbeState::Greeting, reader: NumericReader::default(), inner: None }
    }
}

impl ClientDialect for SmtpOrFtp {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        if let Some(inner) = self.inner.as_mut() {
            return inner.advance(session);
        }
        loop {
            let reply = match self.reader.poll(session) {
                Ok(Some(reply)) => reply,
                Ok(None) => return ClientProgress::NeedMore,
                Err(reason) => return ClientProgress::Failed(reason),
            };
            match (self.state, reply.code) {
                (ProbeState::Greeting, 100..=199) => continue,
                (ProbeState::Greeting, 220) => {
                    self.state = ProbeState::Ehlo;
                    session.note("(220 banner names neither SMTP nor FTP: probing with EHLO)");
                    return ClientProgress::Send(session.line_out(&format!("EHLO {}", self.ehlo_name)));
                }
                (ProbeState::Greeting, _) => {
                    return ClientProgress::Failed(format!("server refused the session: {}", reply.summary()))
                }
                (ProbeState::Ehlo, 250) => {
                    session.note("(EHLO accepted: SMTP)");
                    let mut client = smtp::Client::after_ehlo(&self.ehlo_name);
                    let progress = client.on_reply(reply, session);
                    self.inner = Some(Box::new(client));
                    return progress;
                }
                (ProbeState::Ehlo, 421) => return ClientProgress::Failed(format!("server closing: {}", reply.summary())),
                (ProbeState::Ehlo, code) => {
                    session.note(&format!("(EHLO answered {code}: not SMTP, trying FTP)"));
                    let (client, auth) = ftp::Client::send_auth(session);
                    self.inner = Some(Box::new(client));
                    return ClientProgress::Send(auth);
                }
            }
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        self.inner.as_ref().and_then(|inner| inner.protocol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::kind;
    use crate::{ClientParams, ClientUpgrade, Step};

    #[test]
    fn banners() {
        let cases: [(&[u8], Identification); 22] = [
            (b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n", Identification::Protocol(Protocol::Smtp)),
            (b"220 (vsFTPd 3.0.3)\r\n", Identification::Protocol(Protocol::Ftp)),
            (b"220-FileZilla Server 1.8\r\n220 Please visit https://filezilla-project.org/\r\n", Identification::Protocol(Protocol::Ftp)),
            (b"220 vm Dovecot ready.\r\n", Identification::SmtpOrFtp),
            (b"220 vm Cyrus LMTP ready\r\n", Identification::Protocol(Protocol::Lmtp)),
            (b"220-multi\r\n", Identification::Incomplete),
            (b"220-multi\r\n220 ESMTP\r\n", Identification::Protocol(Protocol::Smtp)),
            (b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n", Identification::Protocol(Protocol::Imap)),
            (b"* OK", Identification::Protocol(Protocol::Imap)),
            (b"* O", Identification::Incomplete),
            (b"+OK Dovecot ready.\r\n", Identification::Protocol(Protocol::Pop3)),
            (b"200 news.example.org InterNetNews NNRP server INN 2.7.1 ready (posting ok)\r\n", Identification::Protocol(Protocol::Nntp)),
            (b"\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n", Identification::Protocol(Protocol::Sieve)),
            (b"\"SIEVE\" \"fileinto\"\r\n", Identification::Protocol(Protocol::Sieve)),
            (b":irc.local NOTICE * :*** Looking up your hostname...\r\n", Identification::Protocol(Protocol::Irc)),
            (b"NOTICE AUTH :*** Processing connection\r\n", Identification::Protocol(Protocol::Irc)),
            (b":irc.example.net 020 * :Please wait\r\n", Identification::Protocol(Protocol::Irc)),
            (b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", Identification::NotStartTls("ssh")),
            (b"HTTP/1.1 400 Bad Request\r\n", Identification::NotStartTls("http")),
            (b"SS", Identification::Incomplete),
            (b"hello world\r\n", Identification::Unknown),
            (b"\x16\x03\x01\x00\x05hello", Identification::Unknown),
        ];
        for (bytes, want) in cases {
            assert_eq!(identify(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
        let mut mysql = vec![0x4a, 0, 0, 0, 10];
        mysql.extend_from_slice(b"5.5.5-10.11.19-MariaDB\0");
        assert_eq!(identify(&mysql), Identification::Protocol(Protocol::Mysql));
        assert_eq!(identify(&[0x10, 0, 0, 0, 0xff, 0x6a, 0x04]), Identification::Protocol(Protocol::Mysql));
        assert_eq!(identify(&[0xff, 0xfd, 0x18]), Identification::NotStartTls("telnet"));
        assert_eq!(identify(b""), Identification::Incomplete);
    }

    #[test]
    fn recorded_banners() {
        // First bytes of the recorded dialogues in tests/data.
        let cases: [(&[u8], Identification); 8] = [
            (include_bytes!("../tests/data/postfix-smtp.txt"), Identification::Protocol(Protocol::Smtp)),
            (include_bytes!("../tests/data/vsftpd.txt"), Identification::Protocol(Protocol::Ftp)),
            (include_bytes!("../tests/data/dovecot-imap.txt"), Identification::Protocol(Protocol::Imap)),
            (include_bytes!("../tests/data/dovecot-pop3.txt"), Identification::Protocol(Protocol::Pop3)),
            (include_bytes!("../tests/data/dovecot-sieve.txt"), Identification::Protocol(Protocol::Sieve)),
            (include_bytes!("../tests/data/dovecot-lmtp.txt"), Identification::SmtpOrFtp),
            (include_bytes!("../tests/data/inspircd.txt"), Identification::Protocol(Protocol::Irc)),
            (include_bytes!("../tests/data/mariadb-greeting.bin"), Identification::Protocol(Protocol::Mysql)),
        ];
        for (bytes, want) in cases {
            let first_line_end = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1);
            assert_eq!(identify(&bytes[..first_line_end]), want, "{:?}", String::from_utf8_lossy(&bytes[..first_line_end]));
        }
    }

    fn auto_run(port: Option<u16>, script: &[&[u8]]) -> (ClientUpgrade, Step, Vec<u8>) {
        let mut client = ClientUpgrade::auto(ClientParams::default(), port);
        let mut sent = client.start();
        let mut last = Step::NeedMore;
        for reply in script {
            last = client.feed(reply);
            match &last {
                Step::Send(bytes) => sent.extend(bytes),
                Step::NeedMore => {}
                _ => break,
            }
        }
        (client, last, sent)
    }

    #[test]
    fn ambiguous_220_probes_smtp() {
        let (client, step, sent) = auto_run(None, &[b"220 host ready\r\n", b"250-host\r\n250 STARTTLS\r\n", b"220 go\r\n"]);
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        assert_eq!(sent, b"EHLO bleedwatch.invalid\r\nSTARTTLS\r\n");
        assert_eq!(client.protocol(), Some(Protocol::Smtp));
        assert_eq!(client.identification(), Some(&Identification::SmtpOrFtp));
    }

    #[test]
    fn ambiguous_220_probes_ftp() {
        let (client, step, sent) =
            auto_run(None, &[b"220 host ready\r\n", b"530 Please login with USER and PASS.\r\n", b"234 Proceed\r\n"]);
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        assert_eq!(sent, b"EHLO bleedwatch.invalid\r\nAUTH TLS\r\n");
        assert_eq!(client.protocol(), Some(Protocol::Ftp));
        // A HELO-only SMTP server refuses both: unsupported.
        let (_, step, _) = auto_run(None, &[b"220 host ready\r\n", b"502 no\r\n", b"502 no\r\n"]);
        assert_eq!(kind(&step), "unsupported");
    }

    #[test]
    fn port_hint_settles_ambiguity() {
        let (client, step, _) = auto_run(Some(21), &[b"220 host ready\r\n"]);
        assert_eq!(step, Step::Send(b"AUTH TLS\r\n".to_vec()));
        assert_eq!(client.protocol(), Some(Protocol::Ftp));
        let (client, step, _) = auto_run(Some(24), &[b"220 vm Dovecot ready.\r\n"]);
        assert_eq!(step, Step::Send(b"LHLO bleedwatch.invalid\r\n".to_vec()));
        assert_eq!(client.protocol(), Some(Protocol::Lmtp));
    }

    #[test]
    fn auto_reports_services_without_starttls() {
        let (client, step, _) = auto_run(None, &[b"SSH-2.0-Open", b"SSH_9.2\r\n"]);
        assert!(matches!(&step, Step::Unsupported { reason, .. } if reason.contains("ssh")), "{step:?}");
        assert_eq!(client.identification(), Some(&Identification::NotStartTls("ssh")));
        let (_, step, _) = auto_run(None, &[b"what is this\r\n"]);
        assert_eq!(kind(&step), "failed");
        // A banner that never ends is capped.
        let (_, step, _) = auto_run(None, &[&[b'2'; 20_000]]);
        assert_eq!(kind(&step), "failed");
    }

    #[test]
    fn auto_irc_sends_cap_after_the_notice() {
        let (client, step, sent) = auto_run(None, &[b":irc.local NOTICE * :*** hi\r\n"]);
        assert_eq!(step, Step::Send(b"CAP LS 302\r\n".to_vec()));
        assert_eq!(sent, b"CAP LS 302\r\n");
        assert_eq!(client.protocol(), Some(Protocol::Irc));
    }
}
