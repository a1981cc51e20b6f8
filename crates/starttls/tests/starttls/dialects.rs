//! The dialect level: the client role ([`ClientUpgrade`]) upgrades a real TCP connection to each
//! real server, then a bleedwatch probe ClientHello must draw a ServerHello whose Certificate
//! message carries the test certificate. The server role is checked against `openssl s_client
//! -starttls …`, a real client.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bleedwatch_starttls::{identify, ClientParams, ClientUpgrade, Identification, Protocol, ServerDialogue, ServerParams, Step};
use bleedwatch_wire::handshake::{parse_certificate_list, HandshakeReassembler, ServerHello};
use bleedwatch_wire::hello::ClientHelloSpec;
use bleedwatch_wire::record::{encode_records, Deframer};
use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion};

use crate::servers::{self, PgCluster, ScriptedServer, TestCert, CERT_CN, DIALOGUE_TIMEOUT};

// ---------------------------------------------------------------------------------------------
// The test-only driver: ClientUpgrade over a std TcpStream, then a probe ClientHello.

struct Upgraded {
    stream: TcpStream,
    step: Step,
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    stream.set_write_timeout(Some(DIALOGUE_TIMEOUT)).unwrap();
    stream
}

/// Runs the dialogue to a final step within DIALOGUE_TIMEOUT.
fn drive(port: u16, mut upgrade: ClientUpgrade) -> Upgraded {
    let mut stream = connect(port);
    let deadline = Instant::now() + DIALOGUE_TIMEOUT;
    let first = upgrade.start();
    stream.write_all(&first).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "STARTTLS dialogue timed out on port {port}:\n{}", upgrade.transcript());
        let n = match stream.read(&mut buf) {
            Ok(0) => panic!("server closed the connection on port {port}:\n{}", upgrade.transcript()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("read: {e}\n{}", upgrade.transcript()),
        };
        match upgrade.feed(&buf[..n]) {
            Step::Send(bytes) => stream.write_all(&bytes).unwrap(),
            Step::NeedMore => {}
            step => return Upgraded { stream, step },
        }
    }
}

/// Sends the probe ClientHello and checks the server's ServerHello and certificate.
fn assert_tls_answers(cert: &TestCert, upgraded: Upgraded, what: &str) -> ProtocolVersion {
    let Upgraded { mut stream, step } = upgraded;
    let Step::Ready { send_first, leftover, transcript } = step else { panic!("{what}: expected Ready, got {step:?}") };
    assert!(leftover.is_empty(), "{what}: leftover {leftover:?}");
    assert!(!transcript.is_empty(), "{what}: empty transcript");
    let hello = ClientHelloSpec::probe(ProtocolVersion::TLS1_2, [0; 32], None).encode();
    let mut out = send_first;
    encode_records(&mut out, ContentType::HANDSHAKE, ProtocolVersion::TLS1_0, &hello, 16384);
    stream.write_all(&out).unwrap();
    let mut deframer = Deframer::new();
    let mut handshake = HandshakeReassembler::default();
    let mut server_version = None;
    let deadline = Instant::now() + DIALOGUE_TIMEOUT;
    let mut buf = [0u8; 16384];
    loop {
        assert!(Instant::now() < deadline, "{what}: no ServerHello and Certificate in time\n{transcript}");
        let n = match stream.read(&mut buf) {
            Ok(0) => panic!("{what}: connection closed before the Certificate (version {server_version:?})\n{transcript}"),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("{what}: {e}"),
        };
        deframer.push(&buf[..n]).unwrap();
        while let Some(record) = deframer.next_record().unwrap_or_else(|e| panic!("{what}: not TLS: {e}\n{transcript}")) {
            assert_eq!(record.header.content_type, ContentType::HANDSHAKE, "{what}: unexpected record {record:?}");
            handshake.push(record.fragment);
        }
        while let Some(message) = handshake.next_message().unwrap() {
            if message.typ == HandshakeType::SERVER_HELLO {
                let hello = ServerHello::parse(message.body).unwrap();
                server_version = Some(hello.negotiated_version());
            } else if message.typ == HandshakeType::CERTIFICATE {
                assert!(server_version.is_some(), "{what}: Certificate before ServerHello");
                let chain = parse_certificate_list(message.body).unwrap();
                assert_eq!(chain.first().copied(), Some(cert.der.as_slice()), "{what}: not our test certificate");
                let _ = stream.shutdown(Shutdown::Both);
                return server_version.unwrap();
            }
        }
    }
}

fn assert_upgrades(cert: &TestCert, port: u16, protocol: Protocol, params: ClientParams) {
    let version = assert_tls_answers(cert, drive(port, ClientUpgrade::new(protocol, params)), protocol.name());
    assert_eq!(version, ProtocolVersion::TLS1_2, "{protocol}");
}

fn assert_unsupported(port: u16, protocol: Protocol, params: ClientParams, needle: &str) {
    let started = Instant::now();
    let upgraded = drive(port, ClientUpgrade::new(protocol, params));
    match &upgraded.step {
        Step::Unsupported { reason, .. } => assert!(reason.contains(needle), "{protocol}: {reason}"),
        other => panic!("{protocol}: expected Unsupported, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{protocol}: not prompt");
}

/// Reads a server's banner until `identify` decides.
fn identify_banner(port: u16) -> (Identification, Vec<u8>) {
    let mut stream = connect(port);
    let deadline = Instant::now() + DIALOGUE_TIMEOUT;
    let mut banner = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let found = identify(&banner);
        if found != Identification::Incomplete {
            return (found, banner);
        }
        assert!(Instant::now() < deadline, "no banner on {port}: {:?}", String::from_utf8_lossy(&banner));
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed before a banner on {port}"),
            Ok(n) => banner.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Auto-detection from the real banner, then the full upgrade.
fn assert_auto(cert: &TestCert, port: u16, port_hint: Option<u16>, want: Protocol) {
    let mut upgrade = ClientUpgrade::auto(ClientParams::with_domain("localhost"), port_hint);
    let mut stream = connect(port);
    assert!(upgrade.start().is_empty());
    let deadline = Instant::now() + DIALOGUE_TIMEOUT;
    let mut buf = [0u8; 4096];
    let step = loop {
        assert!(Instant::now() < deadline, "auto on {port} timed out:\n{}", upgrade.transcript());
        let n = match stream.read(&mut buf) {
            Ok(0) => panic!("closed:\n{}", upgrade.transcript()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("{e}"),
        };
        match upgrade.feed(&buf[..n]) {
            Step::Send(bytes) => stream.write_all(&bytes).unwrap(),
            Step::NeedMore => {}
            step => break step,
        }
    };
    assert_eq!(upgrade.protocol(), Some(want), "{step:?}");
    assert_tls_answers(cert, Upgraded { stream, step }, &format!("auto {want}"));
}


// ---------------------------------------------------------------------------------------------
// The servers.

#[test]
fn smtp_and_submission_with_postfix() {
    let cert = TestCert::new();
    // The banner names neither SMTP nor FTP, so auto-detection has to probe with EHLO.
    let postfix = servers::postfix(&cert, true, Some("$myhostname ready"));
    assert_upgrades(&cert, postfix.smtp, Protocol::Smtp, ClientParams::default());
    assert_upgrades(&cert, postfix.submission, Protocol::Smtp, ClientParams::default());
    let (found, banner) = identify_banner(postfix.smtp);
    assert_eq!(found, Identification::SmtpOrFtp, "{:?}", String::from_utf8_lossy(&banner));
    assert_auto(&cert, postfix.smtp, None, Protocol::Smtp);
}

#[test]
fn smtp_without_tls_is_unsupported() {
    let cert = TestCert::new();
    let postfix = servers::postfix(&cert, false, None);
    assert_unsupported(postfix.smtp, Protocol::Smtp, ClientParams::default(), "STARTTLS not among");
    // The stock banner says ESMTP Postfix.
    let (found, banner) = identify_banner(postfix.smtp);
    assert_eq!(found, Identification::Protocol(Protocol::Smtp), "{:?}", String::from_utf8_lossy(&banner));
}

#[test]
fn imap_pop3_sieve_lmtp_with_dovecot() {
    let cert = TestCert::new();
    let dovecot = servers::dovecot(&cert, true);
    assert_upgrades(&cert, dovecot.imap, Protocol::Imap, ClientParams::default());
    assert_upgrades(&cert, dovecot.pop3, Protocol::Pop3, ClientParams::default());
    assert_upgrades(&cert, dovecot.sieve, Protocol::Sieve, ClientParams::default());
    assert_upgrades(&cert, dovecot.lmtp, Protocol::Lmtp, ClientParams::default());
    assert_eq!(identify_banner(dovecot.imap).0, Identification::Protocol(Protocol::Imap));
    assert_eq!(identify_banner(dovecot.pop3).0, Identification::Protocol(Protocol::Pop3));
    assert_eq!(identify_banner(dovecot.sieve).0, Identification::Protocol(Protocol::Sieve));
    // Dovecot's LMTP banner is just "220 <host> Dovecot (Debian) ready."
    assert_eq!(identify_banner(dovecot.lmtp).0, Identification::SmtpOrFtp);
    assert_auto(&cert, dovecot.imap, None, Protocol::Imap);
    assert_auto(&cert, dovecot.pop3, None, Protocol::Pop3);
    assert_auto(&cert, dovecot.sieve, None, Protocol::Sieve);
    assert_auto(&cert, dovecot.lmtp, Some(24), Protocol::Lmtp);
}

#[test]
fn imap_and_pop3_without_tls_are_unsupported() {
    let cert = TestCert::new();
    let dovecot = servers::dovecot(&cert, false);
    assert_unsupported(dovecot.imap, Protocol::Imap, ClientParams::default(), "STARTTLS not in the CAPABILITY");
    assert_unsupported(dovecot.pop3, Protocol::Pop3, ClientParams::default(), "STLS not in the CAPA");
    assert_unsupported(dovecot.sieve, Protocol::Sieve, ClientParams::default(), "not among the capabilities");
}

#[test]
fn ftp_with_vsftpd() {
    let cert = TestCert::new();
    let vsftpd = servers::vsftpd(&cert, true, None);
    assert_upgrades(&cert, vsftpd.port, Protocol::Ftp, ClientParams::default());
    assert_eq!(identify_banner(vsftpd.port).0, Identification::Protocol(Protocol::Ftp));
    assert_auto(&cert, vsftpd.port, None, Protocol::Ftp);

    // A banner that does not say FTP: auto-detection probes with EHLO, vsftpd answers 530.
    let plain = servers::vsftpd(&cert, true, Some("Welcome to the file service."));
    let (found, banner) = identify_banner(plain.port);
    assert_eq!(found, Identification::SmtpOrFtp, "{:?}", String::from_utf8_lossy(&banner));
    assert_auto(&cert, plain.port, None, Protocol::Ftp);

    let no_tls = servers::vsftpd(&cert, false, None);
    assert_unsupported(no_tls.port, Protocol::Ftp, ClientParams::default(), "AUTH TLS refused");
}

#[test]
fn ldap_with_slapd() {
    let cert = TestCert::new();
    let slapd = servers::slapd(&cert, true);
    assert_upgrades(&cert, slapd.port, Protocol::Ldap, ClientParams::default());
    let plain = servers::slapd(&cert, false);
    assert_unsupported(plain.port, Protocol::Ldap, ClientParams::default(), "unsupported extended operation");
}

#[test]
fn xmpp_client_and_server_streams_with_prosody() {
    let cert = TestCert::new();
    let prosody = servers::prosody(&cert);
    assert_upgrades(&cert, prosody.c2s, Protocol::XmppClient, ClientParams::with_domain(prosody.domain));
    assert_upgrades(&cert, prosody.s2s, Protocol::XmppServer, ClientParams::with_domain(prosody.domain));
    // Without the right domain the stream error names the server.
    let upgraded = drive(prosody.c2s, ClientUpgrade::new(Protocol::XmppClient, ClientParams::with_domain("wrong.example")));
    assert!(matches!(&upgraded.step, Step::Failed { reason, .. } if reason.contains("host-unknown")), "{:?}", upgraded.step);
}

#[test]
fn postgres_ssl_request() {
    let cert = TestCert::new();
    let cluster = PgCluster::init(&cert);
    {
        let server = cluster.start(true);
        assert_upgrades(&cert, server.port, Protocol::Postgres, ClientParams::default());
    }
    let server = cluster.start(false);
    assert_unsupported(server.port, Protocol::Postgres, ClientParams::default(), "answered N");
}

#[test]
fn mysql_ssl_request_with_mariadb() {
    let cert = TestCert::new();
    let mariadb = servers::mariadb(&cert);
    assert_upgrades(&cert, mariadb.port, Protocol::Mysql, ClientParams::default());
    assert_eq!(identify_banner(mariadb.port).0, Identification::Protocol(Protocol::Mysql));
    assert_auto(&cert, mariadb.port, None, Protocol::Mysql);
}

#[test]
fn irc_starttls_with_inspircd() {
    let cert = TestCert::new();
    let inspircd = servers::inspircd(&cert);
    assert_upgrades(&cert, inspircd.port, Protocol::Irc, ClientParams::default());
    let (found, banner) = identify_banner(inspircd.port);
    assert_eq!(found, Identification::Protocol(Protocol::Irc), "{:?}", String::from_utf8_lossy(&banner));
    assert_auto(&cert, inspircd.port, None, Protocol::Irc);
}

#[test]
fn rdp_with_xrdp() {
    let cert = TestCert::new();
    let xrdp = servers::xrdp(&cert);
    assert_upgrades(&cert, xrdp.port, Protocol::Rdp, ClientParams::default());
}

#[test]
fn nntp_against_a_scripted_inn() {
    let cert = TestCert::new();
    let server = ScriptedServer::start(&cert, servers::inn_script);
    assert_eq!(identify(servers::INN_GREETING), Identification::Protocol(Protocol::Nntp));
    assert_upgrades(&cert, server.port, Protocol::Nntp, ClientParams::default());
    assert_all_reached_tls(server, 1);
}

/// Waits (bounded) until `server` has seen `connections` end, then checks every one reached TLS.
fn assert_all_reached_tls(server: ScriptedServer, connections: usize) {
    let deadline = Instant::now() + DIALOGUE_TIMEOUT;
    while server.outcomes().len() < connections && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let outcomes = server.outcomes();
    assert_eq!(outcomes.len(), connections, "{outcomes:?}");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
}

/// Our server role, played to `openssl s_client -starttls NAME` (a real client), with TLS from
/// `openssl s_server` behind it.
#[test]
fn server_role_against_openssl_s_client() {
    let cert = TestCert::new();
    let cases = [
        (Protocol::Smtp, "smtp"),
        (Protocol::Lmtp, "lmtp"),
        (Protocol::Imap, "imap"),
        (Protocol::Pop3, "pop3"),
        (Protocol::Ftp, "ftp"),
        (Protocol::XmppClient, "xmpp"),
        (Protocol::XmppServer, "xmpp-server"),
        (Protocol::Ldap, "ldap"),
        (Protocol::Nntp, "nntp"),
        (Protocol::Sieve, "sieve"),
        (Protocol::Postgres, "postgres"),
        (Protocol::Mysql, "mysql"),
        (Protocol::Irc, "irc"),
    ];
    for (protocol, name) in cases {
        let server = ScriptedServer::start(&cert, move || {
            let mut dialogue = ServerDialogue::new(protocol, ServerParams::default());
            let greeting = dialogue.start();
            (greeting, Box::new(move |data: &[u8]| dialogue.feed(data)))
        });
        let mut client = Command::new("timeout")
            .args(["20", "openssl", "s_client", "-brief", "-starttls", name, "-xmpphost", "localhost", "-connect"])
            .arg(format!("127.0.0.1:{}", server.port))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut output = String::new();
        client.stdout.take().unwrap().read_to_string(&mut output).unwrap();
        client.stderr.take().unwrap().read_to_string(&mut output).unwrap();
        let _ = client.wait();
        assert!(output.contains(&format!("Peer certificate: CN = {CERT_CN}")), "{name}: s_client said:\n{output}");
        assert_all_reached_tls(server, 1);
    }
}
