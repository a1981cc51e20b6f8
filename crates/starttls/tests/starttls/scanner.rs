//! The scanner level: `bleedwatch_probe::probe_endpoint` (the code behind `bleedwatch scan`) against
//! the same real servers, with the dialect forced (`--starttls NAME`) and found by itself
//! (`--starttls auto`, the default) on their unusual loopback ports, and against the same servers
//! configured without TLS. Each result must name the service, show the test certificate (its SPKI
//! SHA-256 as the openssl CLI computes it) and carry the verdict these OpenSSL 3 / GnuTLS builds
//! deserve: they do not negotiate the heartbeat extension and refuse heartbeat records, so
//! `no-heartbeat` on every version they accept.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bleedwatch_probe::StarttlsMode;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, ScanStatus, Verdict};
use bleedwatch_starttls::Protocol;

use crate::servers::{self, PgCluster, ScriptedServer, TestCert};

/// Far above any bound asserted below: a hang fails the test instead of stalling it.
const SCAN_GUARD: Duration = Duration::from_secs(120);

/// The scanner's defaults (`--starttls auto`, 5 s connect, 10 s handshake, 5 s heartbeat, 3 s banner
/// wait) with the given STARTTLS mode.
pub fn options(mode: StarttlsMode) -> EndpointOptions {
    EndpointOptions { starttls: mode, ..EndpointOptions::default() }
}

/// Runs the endpoint test on its own runtime; returns the result and how long it took.
pub fn scan_with(port: u16, host: Option<&str>, opts: &EndpointOptions) -> (EndpointResult, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let target = EndpointTarget { addr: SocketAddr::from(([127, 0, 0, 1], port)), host: host.map(str::to_string) };
    let started = Instant::now();
    let result = runtime
        .block_on(async { tokio::time::timeout(SCAN_GUARD, probe_endpoint(&target, opts)).await })
        .unwrap_or_else(|_| panic!("scan of port {port} did not end within {SCAN_GUARD:?}"));
    (result, started.elapsed())
}

pub fn scan(port: u16, host: Option<&str>, mode: StarttlsMode) -> (EndpointResult, Duration) {
    scan_with(port, host, &options(mode))
}

/// A successful scan of `service` that saw the test certificate and reached `verdict`.
pub fn assert_scanned(result: &EndpointResult, service: &str, verdict: Verdict, cert: &TestCert) {
    let what = format!("{service} on port {}", result.port);
    assert_eq!(result.service, service, "{what}: {result:#?}");
    assert_eq!(result.transport, "tcp", "{what}");
    assert_eq!(result.status, ScanStatus::Success, "{what}: {result:#?}");
    let leaf = result.certificate.as_ref().unwrap_or_else(|| panic!("{what}: no certificate: {result:#?}"));
    assert_eq!(leaf.spki_sha256, cert.spki_sha256, "{what}: not the test certificate");
    assert!(leaf.subject.contains(servers::CERT_CN), "{what}: {}", leaf.subject);
    assert_eq!(result.heartbleed, verdict, "{what}: {result:#?}");
    // TLS 1.2 is what all of them speak; every version was decided by an answer (the verdict, or
    // refused), none by a timeout.
    assert_eq!(result.versions.get("tls1.2"), Some(&verdict), "{what}: {:?}", result.versions);
    assert_eq!(result.versions.len(), 4, "{what}: {:?}", result.versions);
    assert!(result.versions.values().all(|v| *v == verdict || *v == Verdict::NotSupported), "{what}: {:?}", result.versions);
    assert!(result.leak.is_none(), "{what}: the safe probe reads no memory");
    if service != "tls" {
        assert!(result.banner.as_deref().is_some_and(|b| !b.is_empty()), "{what}: no STARTTLS transcript kept");
    }
}

/// A server that speaks its protocol without offering TLS: said so, promptly.
pub fn assert_not_offered(result: &EndpointResult, elapsed: Duration, what: &str) {
    assert_eq!(result.service, "plaintext-no-tls", "{what}: {result:#?}");
    assert_eq!(result.status, ScanStatus::StarttlsUnsupported, "{what}: {result:#?}");
    assert_eq!(result.heartbleed, Verdict::NotApplicable, "{what}: {result:#?}");
    assert!(result.reason.as_deref().is_some_and(|r| r.starts_with("STARTTLS not offered")), "{what}: {:?}", result.reason);
    assert!(result.certificate.is_none(), "{what}");
    assert!(elapsed < Duration::from_secs(5), "{what}: took {elapsed:?}");
}

/// Forced and auto-detected, the same answer.
fn assert_forced_and_found(cert: &TestCert, port: u16, host: Option<&str>, protocol: Protocol, verdict: Verdict) {
    let service = format!("{}-starttls", protocol.name());
    let (forced, _) = scan(port, host, StarttlsMode::Force(protocol));
    assert_scanned(&forced, &service, verdict, cert);
    let (found, elapsed) = scan(port, host, StarttlsMode::Auto);
    assert_scanned(&found, &service, verdict, cert);
    // On top of the scan itself, auto costs a direct-TLS try that fails at once, and for a
    // client-first dialect the banner wait and wrong guesses that fail at once too.
    let bound = options(StarttlsMode::Auto).banner_wait + Duration::from_secs(3);
    assert!(elapsed < bound, "auto {service} took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// Real servers offering STARTTLS.

#[test]
fn scanner_postfix_smtp_and_submission() {
    let cert = TestCert::new();
    // A banner that names no protocol: auto-detection has to probe with EHLO.
    let postfix = servers::postfix(&cert, true, Some("$myhostname ready"));
    assert_forced_and_found(&cert, postfix.smtp, None, Protocol::Smtp, Verdict::NoHeartbeat);
    assert_forced_and_found(&cert, postfix.submission, None, Protocol::Smtp, Verdict::NoHeartbeat);
}

#[test]
fn scanner_dovecot_imap_pop3_sieve_lmtp() {
    let cert = TestCert::new();
    let dovecot = servers::dovecot(&cert, true);
    assert_forced_and_found(&cert, dovecot.imap, None, Protocol::Imap, Verdict::NoHeartbeat);
    assert_forced_and_found(&cert, dovecot.pop3, None, Protocol::Pop3, Verdict::NoHeartbeat);
    assert_forced_and_found(&cert, dovecot.sieve, None, Protocol::Sieve, Verdict::NoHeartbeat);
    assert_forced_and_found(&cert, dovecot.lmtp, None, Protocol::Lmtp, Verdict::NoHeartbeat);
}

#[test]
fn scanner_vsftpd_ftp() {
    let cert = TestCert::new();
    let vsftpd = servers::vsftpd(&cert, true, None);
    assert_forced_and_found(&cert, vsftpd.port, None, Protocol::Ftp, Verdict::NoHeartbeat);
    // A banner that does not say FTP: EHLO draws vsftpd's 530, so it is FTP.
    let plain_banner = servers::vsftpd(&cert, true, Some("Welcome to the file service."));
    assert_forced_and_found(&cert, plain_banner.port, None, Protocol::Ftp, Verdict::NoHeartbeat);
}

#[test]
fn scanner_slapd_ldap() {
    let cert = TestCert::new();
    let slapd = servers::slapd(&cert, true);
    assert_forced_and_found(&cert, slapd.port, None, Protocol::Ldap, Verdict::NoHeartbeat);
}

#[test]
fn scanner_prosody_xmpp_c2s_and_s2s() {
    let cert = TestCert::new();
    let prosody = servers::prosody(&cert);
    assert_forced_and_found(&cert, prosody.c2s, Some(prosody.domain), Protocol::XmppClient, Verdict::NoHeartbeat);
    assert_forced_and_found(&cert, prosody.s2s, Some(prosody.domain), Protocol::XmppServer, Verdict::NoHeartbeat);
}

#[test]
fn scanner_postgresql() {
    let cert = TestCert::new();
    let cluster = PgCluster::init(&cert);
    {
        let server = cluster.start(true);
        assert_forced_and_found(&cert, server.port, None, Protocol::Postgres, Verdict::NoHeartbeat);
    }
    // Not offered: ssl=off answers the SSLRequest with N.
    let server = cluster.start(false);
    let (forced, elapsed) = scan(server.port, None, StarttlsMode::Force(Protocol::Postgres));
    assert_not_offered(&forced, elapsed, "postgres ssl=off, forced");
    let (found, elapsed) = scan(server.port, None, StarttlsMode::Auto);
    assert_not_offered(&found, elapsed, "postgres ssl=off, auto");
}

#[test]
fn scanner_mariadb() {
    let cert = TestCert::new();
    let mariadb = servers::mariadb(&cert);
    assert_forced_and_found(&cert, mariadb.port, None, Protocol::Mysql, Verdict::NoHeartbeat);
}

#[test]
fn scanner_inspircd_irc() {
    let cert = TestCert::new();
    let inspircd = servers::inspircd(&cert);
    assert_forced_and_found(&cert, inspircd.port, None, Protocol::Irc, Verdict::NoHeartbeat);
}

/// Real InspIRCd, forced and found, is tested without a wait: well under the banner wait for both.
#[test]
fn scanner_inspircd_irc_is_prompt() {
    let cert = TestCert::new();
    let inspircd = servers::inspircd(&cert);
    for mode in [StarttlsMode::Force(Protocol::Irc), StarttlsMode::Auto] {
        let (result, elapsed) = scan(inspircd.port, None, mode);
        assert_scanned(&result, "irc-starttls", Verdict::NoHeartbeat, &cert);
        assert!(elapsed < Duration::from_secs(1), "{mode:?} took {elapsed:?}");
    }
}

/// An IRC server that says nothing until spoken to and answers our ClientHello with a numeric
/// (`451 … You have not registered`) is IRC: recognised from that answer, with no banner wait.
#[test]
fn scanner_irc_recognised_from_its_answer_to_the_hello() {
    let cert = TestCert::new();
    let server = ScriptedServer::start(&cert, servers::silent_irc_script);
    let (result, elapsed) = scan(server.port, None, StarttlsMode::Auto);
    assert_scanned(&result, "irc-starttls", Verdict::NoHeartbeat, &cert);
    assert!(elapsed < options(StarttlsMode::Auto).banner_wait, "took {elapsed:?}");
}

#[test]
fn scanner_xrdp_rdp() {
    let cert = TestCert::new();
    let xrdp = servers::xrdp(&cert);
    assert_forced_and_found(&cert, xrdp.port, None, Protocol::Rdp, Verdict::NoHeartbeat);
}

#[test]
fn scanner_scripted_inn_nntp() {
    let cert = TestCert::new();
    let inn = ScriptedServer::start(&cert, servers::inn_script);
    assert_forced_and_found(&cert, inn.port, None, Protocol::Nntp, Verdict::NoHeartbeat);
}

// ---------------------------------------------------------------------------------------------
// Real servers without TLS.

#[test]
fn scanner_postfix_without_tls() {
    let cert = TestCert::new();
    let postfix = servers::postfix(&cert, false, None);
    for mode in [StarttlsMode::Force(Protocol::Smtp), StarttlsMode::Auto] {
        let (result, elapsed) = scan(postfix.smtp, None, mode);
        assert_not_offered(&result, elapsed, &format!("postfix without TLS, {mode:?}"));
        assert!(result.reason.as_deref().unwrap().contains("STARTTLS not among"), "{:?}", result.reason);
    }
}

#[test]
fn scanner_dovecot_without_tls() {
    let cert = TestCert::new();
    let dovecot = servers::dovecot(&cert, false);
    for (port, protocol) in [(dovecot.imap, Protocol::Imap), (dovecot.pop3, Protocol::Pop3), (dovecot.sieve, Protocol::Sieve)] {
        for mode in [StarttlsMode::Force(protocol), StarttlsMode::Auto] {
            let (result, elapsed) = scan(port, None, mode);
            assert_not_offered(&result, elapsed, &format!("dovecot {protocol} without TLS, {mode:?}"));
        }
    }
}

#[test]
fn scanner_vsftpd_without_tls() {
    let cert = TestCert::new();
    let vsftpd = servers::vsftpd(&cert, false, None);
    for mode in [StarttlsMode::Force(Protocol::Ftp), StarttlsMode::Auto] {
        let (result, elapsed) = scan(vsftpd.port, None, mode);
        assert_not_offered(&result, elapsed, &format!("vsftpd without TLS, {mode:?}"));
    }
}

#[test]
fn scanner_slapd_without_tls() {
    let cert = TestCert::new();
    let slapd = servers::slapd(&cert, false);
    for mode in [StarttlsMode::Force(Protocol::Ldap), StarttlsMode::Auto] {
        let (result, elapsed) = scan(slapd.port, None, mode);
        assert_not_offered(&result, elapsed, &format!("slapd without TLS, {mode:?}"));
    }
}
