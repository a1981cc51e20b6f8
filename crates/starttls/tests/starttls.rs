//! STARTTLS against real servers from Debian packages (scripts/test-packages/starttls.txt), each
//! started on a free loopback port with its own configuration in a temp dir and a self-signed
//! certificate made with the openssl CLI. For each one the client role upgrades a real TCP
//! connection, then a bleedwatch probe ClientHello must draw a ServerHello whose Certificate
//! message carries the test certificate. The server role is checked against `openssl s_client
//! -starttls …`, a real client. Every server is stopped by a Drop guard; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bleedwatch_starttls::{
    identify, ClientParams, ClientUpgrade, Identification, Protocol, ServerDialogue, ServerParams, ServerStep, Step,
};
use bleedwatch_wire::handshake::{parse_certificate_list, HandshakeReassembler, ServerHello};
use bleedwatch_wire::hello::ClientHelloSpec;
use bleedwatch_wire::record::{encode_records, Deframer};
use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const DIALOGUE_TIMEOUT: Duration = Duration::from_secs(15);
const CERT_CN: &str = "bleedwatch-starttls-test";

// ---------------------------------------------------------------------------------------------
// Fixtures: temp dirs, the certificate, ports, server processes.

/// A temp dir that service users (postfix, dovecot, postgres, mysql, prosody) can traverse.
fn service_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("bleedwatch-starttls-{name}-")).tempdir().unwrap();
    run(Command::new("chmod").arg("755").arg(dir.path()));
    dir
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

struct TestCert {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// A self-signed RSA certificate made with the openssl CLI (one per test, removed with it).
    fn new() -> TestCert {
        let dir = service_dir("cert");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let der = dir.path().join("cert.der");
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN={CERT_CN}"))
            .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        run(Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert).arg("-out").arg(&der));
        run(Command::new("chmod").arg("644").arg(&key));
        let der = std::fs::read(der).unwrap();
        TestCert { cert, key, der, _dir: dir }
    }
}

/// Copies the certificate and key into `dir` (owned by `owner`, key 0600) for servers that insist.
fn install_cert(cert: &TestCert, dir: &Path, owner: &str) -> (PathBuf, PathBuf) {
    let cert_path = dir.join("server-cert.pem");
    let key_path = dir.join("server-key.pem");
    std::fs::copy(&cert.cert, &cert_path).unwrap();
    std::fs::copy(&cert.key, &key_path).unwrap();
    run(Command::new("chmod").arg("600").arg(&key_path));
    run(Command::new("chown").arg(owner).arg(&cert_path).arg(&key_path));
    (cert_path, key_path)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running server; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    name: String,
    child: Child,
    log: PathBuf,
    /// Kept open: some servers (openssl s_server) treat end of input as "quit".
    _stdin: Option<ChildStdin>,
}

impl Server {
    fn spawn(name: &str, command: &mut Command, log: PathBuf) -> Server {
        let out = std::fs::File::create(log.with_extension("stdout")).unwrap();
        let err = out.try_clone().unwrap();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {command:?}: {e}"));
        let stdin = child.stdin.take();
        Server { name: name.to_string(), child, log, _stdin: stdin }
    }

    /// Waits until every port accepts connections.
    fn wait_ready(mut self, ports: &[u16]) -> Server {
        let deadline = Instant::now() + START_TIMEOUT;
        for port in ports {
            loop {
                if TcpStream::connect(("127.0.0.1", *port)).is_ok() {
                    break;
                }
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("{} exited early ({status}):\n{}", self.name, self.logs());
                }
                assert!(Instant::now() < deadline, "{} did not listen on {port}:\n{}", self.name, self.logs());
                thread::sleep(Duration::from_millis(100));
            }
        }
        self
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for path in [self.log.with_extension("stdout"), self.log.clone()] {
            if let Ok(content) = std::fs::read_to_string(&path) {
                let tail: Vec<&str> = content.lines().rev().take(30).collect();
                text.push_str(&format!("--- {}\n{}\n", path.display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
            }
        }
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `setpriv` to run a server as its own user (postgres, prosody and friends refuse root).
fn as_user(user: &str, program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid", user, "--regid", user, "--init-groups", program]);
    command
}

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
// Postfix: SMTP and submission.

struct Postfix {
    _server: Server,
    _dir: tempfile::TempDir,
}

/// A Postfix instance with `smtpd` on two ports (the second is "submission").
fn postfix(cert: &TestCert, smtp: u16, submission: u16, tls: bool, banner: Option<&str>) -> Postfix {
    let dir = service_dir("postfix");
    let root = dir.path();
    let conf = root.join("conf");
    let data = root.join("data");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(root.join("queue")).unwrap();
    run(Command::new("chown").arg("postfix").arg(&data));
    let mut main_cf = format!(
        "compatibility_level = 3.6\nqueue_directory = {queue}\ndata_directory = {data}\nmail_owner = postfix\n\
         setgid_group = postdrop\nmyhostname = mx1.bleedwatch.test\nmydestination =\nalias_maps =\nalias_database =\n\
         local_recipient_maps =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmaillog_file_prefixes = {root}\n\
         maillog_file = {root}/maillog\n",
        queue = root.join("queue").display(),
        data = data.display(),
        root = root.display(),
    );
    if tls {
        main_cf.push_str(&format!(
            "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_security_level = may\n",
            cert.cert.display(),
            cert.key.display()
        ));
    }
    if let Some(banner) = banner {
        main_cf.push_str(&format!("smtpd_banner = {banner}\n"));
    }
    std::fs::write(conf.join("main.cf"), main_cf).unwrap();
    let master_cf = format!(
        "127.0.0.1:{smtp} inet n - n - - smtpd\n\
         127.0.0.1:{submission} inet n - n - - smtpd -o syslog_name=postfix/submission\n\
         pickup unix n - n 60 1 pickup\ncleanup unix n - n - 0 cleanup\nqmgr unix n - n 300 1 qmgr\n\
         tlsmgr unix - - n 1000? 1 tlsmgr\nrewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
         defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\nverify unix - - n - 1 verify\n\
         flush unix n - n 1000? 0 flush\nproxymap unix - - n - - proxymap\nsmtp unix - - n - - smtp\n\
         showq unix n - n - - showq\nerror unix - - n - - error\nretry unix - - n - - error\n\
         discard unix - - n - - discard\nanvil unix - - n - 1 anvil\nscache unix - - n - 1 scache\n\
         postlog unix-dgram n - n - 1 postlogd\n"
    );
    std::fs::write(conf.join("master.cf"), master_cf).unwrap();
    // `postfix check` creates the queue directories with the right owners; the master then runs
    // in the foreground (-d) as our child.
    run(Command::new("postfix").arg("-c").arg(&conf).arg("check"));
    let server = Server::spawn(
        "postfix",
        Command::new("/usr/lib/postfix/sbin/master").arg("-c").arg(&conf).arg("-d"),
        root.join("maillog"),
    )
    .wait_ready(&[smtp, submission]);
    Postfix { _server: server, _dir: dir }
}

#[test]
fn smtp_and_submission_with_postfix() {
    let cert = TestCert::new();
    let (smtp, submission) = (free_port(), free_port());
    // The banner names neither SMTP nor FTP, so auto-detection has to probe with EHLO.
    let _postfix = postfix(&cert, smtp, submission, true, Some("$myhostname ready"));
    assert_upgrades(&cert, smtp, Protocol::Smtp, ClientParams::default());
    assert_upgrades(&cert, submission, Protocol::Smtp, ClientParams::default());
    let (found, banner) = identify_banner(smtp);
    assert_eq!(found, Identification::SmtpOrFtp, "{:?}", String::from_utf8_lossy(&banner));
    assert_auto(&cert, smtp, None, Protocol::Smtp);
}

#[test]
fn smtp_without_tls_is_unsupported() {
    let cert = TestCert::new();
    let (smtp, submission) = (free_port(), free_port());
    let _postfix = postfix(&cert, smtp, submission, false, None);
    assert_unsupported(smtp, Protocol::Smtp, ClientParams::default(), "STARTTLS not among");
    // The stock banner says ESMTP Postfix.
    let (found, banner) = identify_banner(smtp);
    assert_eq!(found, Identification::Protocol(Protocol::Smtp), "{:?}", String::from_utf8_lossy(&banner));
}

// ---------------------------------------------------------------------------------------------
// Dovecot: IMAP, POP3, ManageSieve, LMTP.

struct Dovecot {
    imap: u16,
    pop3: u16,
    sieve: u16,
    lmtp: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

fn dovecot(cert: &TestCert, tls: bool) -> Dovecot {
    let dir = service_dir("dovecot");
    let root = dir.path();
    let (imap, pop3, sieve, lmtp) = (free_port(), free_port(), free_port(), free_port());
    let ssl = if tls {
        format!("ssl = yes\nssl_cert = <{}\nssl_key = <{}\nssl_dh = </usr/share/dovecot/dh.pem\n", cert.cert.display(), cert.key.display())
    } else {
        "ssl = no\n".to_string()
    };
    let conf = format!(
        "base_dir = {root}/run\nstate_dir = {root}/state\nlog_path = {root}/dovecot.log\n\
         protocols = imap pop3 sieve lmtp\nlisten = 127.0.0.1\n{ssl}\
         default_internal_user = dovecot\ndefault_login_user = dovenull\nmail_location = maildir:{root}/mail/%u\n\
         passdb {{\n driver = static\n args = password=unused\n}}\n\
         userdb {{\n driver = static\n args = uid=dovecot gid=dovecot home={root}/mail/%u\n}}\n\
         service imap-login {{\n inet_listener imap {{\n address = 127.0.0.1\n port = {imap}\n }}\n inet_listener imaps {{\n port = 0\n }}\n}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n address = 127.0.0.1\n port = {pop3}\n }}\n inet_listener pop3s {{\n port = 0\n }}\n}}\n\
         service managesieve-login {{\n inet_listener sieve {{\n address = 127.0.0.1\n port = {sieve}\n }}\n}}\n\
         service lmtp {{\n inet_listener lmtp {{\n address = 127.0.0.1\n port = {lmtp}\n }}\n}}\n",
        root = root.display(),
    );
    let conf_path = root.join("dovecot.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let server = Server::spawn("dovecot", Command::new("dovecot").arg("-F").arg("-c").arg(&conf_path), root.join("dovecot.log"))
        .wait_ready(&[imap, pop3, sieve, lmtp]);
    Dovecot { imap, pop3, sieve, lmtp, _server: server, _dir: dir }
}

#[test]
fn imap_pop3_sieve_lmtp_with_dovecot() {
    let cert = TestCert::new();
    let dovecot = dovecot(&cert, true);
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
    let dovecot = dovecot(&cert, false);
    assert_unsupported(dovecot.imap, Protocol::Imap, ClientParams::default(), "STARTTLS not in the CAPABILITY");
    assert_unsupported(dovecot.pop3, Protocol::Pop3, ClientParams::default(), "STLS not in the CAPA");
    assert_unsupported(dovecot.sieve, Protocol::Sieve, ClientParams::default(), "not among the capabilities");
}

// ---------------------------------------------------------------------------------------------
// vsftpd: FTP AUTH TLS.

fn vsftpd(cert: &TestCert, port: u16, tls: bool, banner: Option<&str>) -> (Server, tempfile::TempDir) {
    let dir = service_dir("vsftpd");
    let root = dir.path();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let mut conf = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
         anonymous_enable=NO\nlocal_enable=YES\nsecure_chroot_dir={root}/empty\n\
         isolate=NO\nisolate_network=NO\nseccomp_sandbox=NO\nxferlog_enable=NO\nvsftpd_log_file={root}/vsftpd.log\n",
        root = root.display()
    );
    if tls {
        conf.push_str(&format!("ssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n", cert.cert.display(), cert.key.display()));
    }
    if let Some(banner) = banner {
        conf.push_str(&format!("ftpd_banner={banner}\n"));
    }
    let conf_path = root.join("vsftpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let server = Server::spawn("vsftpd", Command::new("vsftpd").arg(&conf_path), root.join("vsftpd.log")).wait_ready(&[port]);
    (server, dir)
}

#[test]
fn ftp_with_vsftpd() {
    let cert = TestCert::new();
    let port = free_port();
    let _vsftpd = vsftpd(&cert, port, true, None);
    assert_upgrades(&cert, port, Protocol::Ftp, ClientParams::default());
    assert_eq!(identify_banner(port).0, Identification::Protocol(Protocol::Ftp));
    assert_auto(&cert, port, None, Protocol::Ftp);

    // A banner that does not say FTP: auto-detection probes with EHLO, vsftpd answers 530.
    let plain = free_port();
    let _plain = vsftpd(&cert, plain, true, Some("Welcome to the file service."));
    let (found, banner) = identify_banner(plain);
    assert_eq!(found, Identification::SmtpOrFtp, "{:?}", String::from_utf8_lossy(&banner));
    assert_auto(&cert, plain, None, Protocol::Ftp);

    let no_tls = free_port();
    let _no_tls = vsftpd(&cert, no_tls, false, None);
    assert_unsupported(no_tls, Protocol::Ftp, ClientParams::default(), "AUTH TLS refused");
}

// ---------------------------------------------------------------------------------------------
// slapd: LDAP StartTLS.

fn slapd(cert: &TestCert, port: u16, tls: bool) -> (Server, tempfile::TempDir) {
    let dir = service_dir("slapd");
    let root = dir.path();
    std::fs::create_dir_all(root.join("db")).unwrap();
    let mut conf = format!(
        "include /etc/ldap/schema/core.schema\npidfile {root}/slapd.pid\nargsfile {root}/slapd.args\n\
         modulepath /usr/lib/ldap\nmoduleload back_mdb\n",
        root = root.display()
    );
    if tls {
        conf.push_str(&format!("TLSCertificateFile {}\nTLSCertificateKeyFile {}\n", cert.cert.display(), cert.key.display()));
    }
    conf.push_str(&format!(
        "database mdb\nsuffix \"dc=bleedwatch,dc=test\"\nrootdn \"cn=admin,dc=bleedwatch,dc=test\"\ndirectory {}/db\nmaxsize 10485760\n",
        root.display()
    ));
    let conf_path = root.join("slapd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    // `-d` keeps slapd in the foreground.
    let server = Server::spawn(
        "slapd",
        Command::new("slapd").args(["-d", "0", "-h"]).arg(format!("ldap://127.0.0.1:{port}/")).arg("-f").arg(&conf_path),
        root.join("slapd.log"),
    )
    .wait_ready(&[port]);
    (server, dir)
}

#[test]
fn ldap_with_slapd() {
    let cert = TestCert::new();
    let port = free_port();
    let _slapd = slapd(&cert, port, true);
    assert_upgrades(&cert, port, Protocol::Ldap, ClientParams::default());
    let no_tls = free_port();
    let _plain = slapd(&cert, no_tls, false);
    assert_unsupported(no_tls, Protocol::Ldap, ClientParams::default(), "unsupported extended operation");
}

// ---------------------------------------------------------------------------------------------
// Prosody: XMPP c2s and s2s.

#[test]
fn xmpp_client_and_server_streams_with_prosody() {
    let cert = TestCert::new();
    let dir = service_dir("prosody");
    let root = dir.path();
    let (c2s, s2s) = (free_port(), free_port());
    let (cert_path, key_path) = install_cert(&cert, root, "prosody");
    std::fs::create_dir_all(root.join("data")).unwrap();
    run(Command::new("chown").arg("prosody").arg(root.join("data")));
    let conf = format!(
        "daemonize = false\npidfile = \"{root}/prosody.pid\"\ndata_path = \"{root}/data\"\ninterfaces = {{ \"127.0.0.1\" }}\n\
         c2s_ports = {{ {c2s} }}\ns2s_ports = {{ {s2s} }}\nc2s_direct_tls_ports = {{ }}\ns2s_direct_tls_ports = {{ }}\n\
         http_ports = {{ }}\nhttps_ports = {{ }}\ncomponent_ports = {{ }}\nlog = {{ info = \"{root}/prosody.log\" }}\n\
         modules_enabled = {{ \"tls\", \"dialback\", \"saslauth\", \"disco\" }}\nmodules_disabled = {{ \"posix\" }}\n\
         c2s_require_encryption = true\ns2s_require_encryption = true\ns2s_secure_auth = false\n\
         authentication = \"internal_hashed\"\nssl = {{ certificate = \"{cert}\", key = \"{key}\" }}\nVirtualHost \"localhost\"\n",
        root = root.display(),
        cert = cert_path.display(),
        key = key_path.display(),
    );
    let conf_path = root.join("prosody.cfg.lua");
    std::fs::write(&conf_path, conf).unwrap();
    // Prosody refuses to run as root.
    let _server = Server::spawn(
        "prosody",
        as_user("prosody", "/usr/bin/prosody").arg("--config").arg(&conf_path),
        root.join("prosody.log"),
    )
    .wait_ready(&[c2s, s2s]);
    assert_upgrades(&cert, c2s, Protocol::XmppClient, ClientParams::with_domain("localhost"));
    assert_upgrades(&cert, s2s, Protocol::XmppServer, ClientParams::with_domain("localhost"));
    // Without the right domain the stream error names the server.
    let upgraded = drive(c2s, ClientUpgrade::new(Protocol::XmppClient, ClientParams::with_domain("wrong.example")));
    assert!(matches!(&upgraded.step, Step::Failed { reason, .. } if reason.contains("host-unknown")), "{:?}", upgraded.step);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: SSLRequest.

#[test]
fn postgres_ssl_request() {
    let cert = TestCert::new();
    let dir = service_dir("postgres");
    let root = dir.path().join("pg");
    std::fs::create_dir_all(&root).unwrap();
    run(Command::new("chown").arg("postgres").arg(&root));
    let (cert_path, key_path) = install_cert(&cert, &root, "postgres");
    let data = root.join("data");
    let bin = Path::new("/usr/lib/postgresql/15/bin");
    run(as_user("postgres", bin.join("initdb").to_str().unwrap()).arg("-D").arg(&data).args(["--auth=trust", "-U", "postgres"]));
    let start = |ssl: &str, port: u16| {
        Server::spawn(
            "postgres",
            as_user("postgres", bin.join("postgres").to_str().unwrap())
                .arg("-D")
                .arg(&data)
                .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string(), "-c"])
                .arg(format!("unix_socket_directories={}", root.display()))
                .args(["-c", &format!("ssl={ssl}"), "-c"])
                .arg(format!("ssl_cert_file={}", cert_path.display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", key_path.display())),
            root.join("postgres.log"),
        )
        .wait_ready(&[port])
    };
    let port = free_port();
    {
        let _server = start("on", port);
        assert_upgrades(&cert, port, Protocol::Postgres, ClientParams::default());
    }
    let port = free_port();
    let _server = start("off", port);
    assert_unsupported(port, Protocol::Postgres, ClientParams::default(), "answered N");
}

// ---------------------------------------------------------------------------------------------
// MariaDB: CLIENT_SSL and the SSL request.

#[test]
fn mysql_ssl_request_with_mariadb() {
    let cert = TestCert::new();
    let dir = service_dir("mariadb");
    let root = dir.path().join("my");
    std::fs::create_dir_all(root.join("data")).unwrap();
    run(Command::new("chown").arg("-R").arg("mysql").arg(&root));
    let (cert_path, key_path) = install_cert(&cert, &root, "mysql");
    let port = free_port();
    // An empty data dir with --skip-grant-tables is enough: the greeting comes before any login.
    let _server = Server::spawn(
        "mariadbd",
        as_user("mysql", "/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", root.join("data").display()))
            .args(["--bind-address=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--socket={}", root.join("sock").display()))
            .arg(format!("--pid-file={}", root.join("pid").display()))
            .args(["--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=16M"])
            .arg(format!("--ssl-cert={}", cert_path.display()))
            .arg(format!("--ssl-key={}", key_path.display())),
        root.join("mariadbd.log"),
    )
    .wait_ready(&[port]);
    assert_upgrades(&cert, port, Protocol::Mysql, ClientParams::default());
    assert_eq!(identify_banner(port).0, Identification::Protocol(Protocol::Mysql));
    assert_auto(&cert, port, None, Protocol::Mysql);
}

// ---------------------------------------------------------------------------------------------
// InspIRCd: IRC STARTTLS (m_starttls with m_ssl_gnutls).

#[test]
fn irc_starttls_with_inspircd() {
    let cert = TestCert::new();
    let dir = service_dir("inspircd");
    let root = dir.path();
    let port = free_port();
    std::fs::write(root.join("motd"), "bleedwatch test\n").unwrap();
    // resolvehostnames=yes makes it send the usual "*** Looking up your hostname" NOTICEs first;
    // the lookup goes to a dead loopback DNS port and gives up after a second.
    let conf = format!(
        "<config format=\"xml\">\n<server name=\"irc.bleedwatch.test\" description=\"bleedwatch test\" network=\"BleedwatchTest\">\n\
         <admin name=\"test\" nick=\"test\" email=\"test@bleedwatch.test\">\n\
         <bind address=\"127.0.0.1\" port=\"{port}\" type=\"clients\">\n\
         <class name=\"users\" commands=\"*\" privs=\"*\" usermodes=\"*\" chanmodes=\"*\" snomasks=\"*\">\n\
         <connect name=\"main\" allow=\"*\" resolvehostnames=\"yes\" useident=\"no\" timeout=\"20\" pingfreq=\"120\" maxconnwarn=\"off\" limit=\"100\" localmax=\"100\" globalmax=\"100\">\n\
         <dns server=\"127.0.0.1\" timeout=\"1\">\n<pid file=\"{root}/inspircd.pid\">\n\
         <log method=\"file\" type=\"* -USERINPUT -USEROUTPUT\" level=\"default\" target=\"{root}/ircd.log\">\n\
         <files motd=\"{root}/motd\">\n\
         <path configdir=\"{root}\" datadir=\"{root}\" logdir=\"{root}\" moduledir=\"/usr/lib/inspircd/modules\">\n\
         <module name=\"ssl_gnutls\">\n\
         <sslprofile name=\"gnutls\" provider=\"gnutls\" certfile=\"{cert}\" keyfile=\"{key}\" dhfile=\"\" hash=\"sha256\" requestclientcert=\"no\">\n\
         <module name=\"cap\">\n<module name=\"starttls\">\n<starttls provider=\"gnutls\">\n",
        root = root.display(),
        cert = cert.cert.display(),
        key = cert.key.display(),
    );
    let conf_path = root.join("inspircd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let _server = Server::spawn(
        "inspircd",
        Command::new("inspircd").args(["--runasroot", "--nofork"]).arg(format!("--config={}", conf_path.display())),
        root.join("ircd.log"),
    )
    .wait_ready(&[port]);
    assert_upgrades(&cert, port, Protocol::Irc, ClientParams::default());
    let (found, banner) = identify_banner(port);
    assert_eq!(found, Identification::Protocol(Protocol::Irc), "{:?}", String::from_utf8_lossy(&banner));
    assert_auto(&cert, port, None, Protocol::Irc);
}

// ---------------------------------------------------------------------------------------------
// xrdp: RDP with TLS security.

#[test]
fn rdp_with_xrdp() {
    let cert = TestCert::new();
    let dir = service_dir("xrdp");
    let root = dir.path();
    let port = free_port();
    let stock = std::fs::read_to_string("/etc/xrdp/xrdp.ini").unwrap();
    let mut ini = String::new();
    for line in stock.lines() {
        let replaced = match line {
            l if l.starts_with("port=") && ini.contains("[Globals]") && !ini.contains("\nport=tcp") => format!("port=tcp://.:{port}"),
            l if l.starts_with("security_layer=") => "security_layer=tls".to_string(),
            l if l.starts_with("certificate=") => format!("certificate={}", cert.cert.display()),
            l if l.starts_with("key_file=") => format!("key_file={}", cert.key.display()),
            l if l.starts_with("LogFile=") => format!("LogFile={}/xrdp.log", root.display()),
            l if l.starts_with("EnableSyslog=") => "EnableSyslog=false".to_string(),
            l => l.to_string(),
        };
        ini.push_str(&replaced);
        ini.push('\n');
    }
    assert!(ini.contains(&format!("port=tcp://.:{port}")), "xrdp.ini has no [Globals] port line");
    let ini_path = root.join("xrdp.ini");
    std::fs::write(&ini_path, ini).unwrap();
    let _server = Server::spawn("xrdp", Command::new("xrdp").arg("--nodaemon").arg("--config").arg(&ini_path), root.join("xrdp.log"))
        .wait_ready(&[port]);
    assert_upgrades(&cert, port, Protocol::Rdp, ClientParams::default());
}

// ---------------------------------------------------------------------------------------------
// Scripted servers: NNTP (INN cannot be installed on a host without a domain name, see README),
// and our own server role against openssl s_client. TLS behind them is a real `openssl s_server`.

/// A running `openssl s_server`.
struct Backend {
    _server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

/// `openssl s_server` with the test certificate, for one connection.
fn tls_backend(cert: &TestCert) -> Backend {
    let dir = service_dir("s_server");
    let port = free_port();
    let server = Server::spawn(
        "openssl s_server",
        Command::new("openssl")
            .args(["s_server", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert.cert)
            .arg("-key")
            .arg(&cert.key)
            .args(["-naccept", "1", "-quiet"]),
        dir.path().join("s_server.log"),
    );
    // Do not connect to probe readiness: that would use up the single accept.
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let listening = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default().lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1).is_some_and(|local| local.ends_with(&format!(":{port:04X}"))) && fields.get(3) == Some(&"0A")
        });
        if listening {
            break;
        }
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        thread::sleep(Duration::from_millis(50));
    }
    Backend { _server: server, port, _dir: dir }
}

/// Copies bytes both ways until either side closes (or the deadline passes).
fn splice(client: TcpStream, backend: TcpStream) {
    let deadline = Instant::now() + DIALOGUE_TIMEOUT;
    let pump = move |mut from: TcpStream, mut to: TcpStream| {
        thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while Instant::now() < deadline {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let a = pump(client.try_clone().unwrap(), backend.try_clone().unwrap());
    let b = pump(backend, client);
    let _ = a.join();
    let _ = b.join();
}

/// Serves one connection: plaintext dialogue from `dialogue`, then TLS from `openssl s_server`.
fn serve_one(backend: Backend, listener: TcpListener, mut dialogue: impl FnMut(&[u8]) -> ServerStep + Send + 'static, greeting: Vec<u8>) -> thread::JoinHandle<Result<(), String>> {
    thread::spawn(move || {
        let (mut client, _) = listener.accept().map_err(|e| e.to_string())?;
        client.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        client.write_all(&greeting).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + DIALOGUE_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            if Instant::now() > deadline {
                return Err("server dialogue timed out".to_string());
            }
            let step = match client.read(&mut buf) {
                Ok(0) => return Err("client closed".to_string()),
                Ok(n) => dialogue(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) => return Err(e.to_string()),
            };
            match step {
                ServerStep::Send(bytes) => client.write_all(&bytes).map_err(|e| e.to_string())?,
                ServerStep::NeedMore => {}
                ServerStep::Close { reason, .. } => return Err(format!("server closed: {reason}")),
                ServerStep::StartTls { send_first, leftover } => {
                    client.write_all(&send_first).map_err(|e| e.to_string())?;
                    let mut tls = TcpStream::connect(("127.0.0.1", backend.port)).map_err(|e| e.to_string())?;
                    tls.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                    tls.write_all(&leftover).map_err(|e| e.to_string())?;
                    splice(client, tls);
                    drop(backend);
                    return Ok(());
                }
            }
        }
    })
}

/// What INN's nnrpd says (texts from INN's nnrpd source: greeting, CAPABILITIES, STARTTLS).
const INN_GREETING: &[u8] = b"200 news.bleedwatch.test InterNetNews NNRP server INN 2.7.1 ready (posting ok)\r\n";
const INN_CAPABILITIES: &[u8] = b"101 Capability list:\r\nVERSION 2\r\nIMPLEMENTATION INN 2.7.1\r\nAUTHINFO USER\r\nHDR\r\n\
    LIST ACTIVE ACTIVE.TIMES COUNTS DISTRIB.PATS DISTRIBUTIONS HEADERS MODERATORS MOTD NEWSGROUPS OVERVIEW.FMT SUBSCRIPTIONS\r\n\
    NEWNEWS\r\nOVER\r\nPOST\r\nREADER\r\nSTARTTLS\r\nXPAT\r\n.\r\n";
const INN_STARTTLS: &[u8] = b"382 Begin TLS negotiation now\r\n";

#[test]
fn nntp_against_a_scripted_inn() {
    let cert = TestCert::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut line = Vec::new();
    let script = move |data: &[u8]| {
        line.extend_from_slice(data);
        let Some(end) = line.iter().position(|&b| b == b'\n') else { return ServerStep::NeedMore };
        let command: Vec<u8> = line.drain(..=end).collect();
        match command.as_slice() {
            b"CAPABILITIES\r\n" => ServerStep::Send(INN_CAPABILITIES.to_vec()),
            b"STARTTLS\r\n" => ServerStep::StartTls { send_first: INN_STARTTLS.to_vec(), leftover: std::mem::take(&mut line) },
            other => ServerStep::Close { send_last: Vec::new(), reason: format!("unexpected {:?}", String::from_utf8_lossy(other)) },
        }
    };
    let server = serve_one(tls_backend(&cert), listener, script, INN_GREETING.to_vec());
    assert_eq!(identify(INN_GREETING), Identification::Protocol(Protocol::Nntp));
    assert_upgrades(&cert, port, Protocol::Nntp, ClientParams::default());
    server.join().unwrap().unwrap();
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
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut dialogue = ServerDialogue::new(protocol, ServerParams::default());
        let greeting = dialogue.start();
        let server = serve_one(tls_backend(&cert), listener, move |data| dialogue.feed(data), greeting);
        let mut client = Command::new("timeout")
            .args(["20", "openssl", "s_client", "-brief", "-starttls", name, "-xmpphost", "localhost", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
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
        server.join().unwrap().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
