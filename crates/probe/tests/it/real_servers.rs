//! The scanner against real TLS servers from Debian packages, started on loopback by each test.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, ProbeMode, ScanStatus, Verdict};

use crate::servers::{free_port, make_cert, require, spki_sha256, KeyKind, Server};

async fn scan(addr: SocketAddr, host: Option<&str>) -> EndpointResult {
    let opts = EndpointOptions {
        mode: ProbeMode::Safe,
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(15), heartbeat: Duration::from_secs(15) },
        ..EndpointOptions::default()
    };
    let started = std::time::Instant::now();
    let r = probe_endpoint(&EndpointTarget { addr, host: host.map(str::to_owned) }, &opts).await;
    // Every verdict below comes from an answer, never from waiting out a deadline.
    assert!(started.elapsed() < Duration::from_secs(12), "took {:?}: {r:#?}", started.elapsed());
    r
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn openssl3_s_server_has_no_heartbeat() {
    if !require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "s_server", KeyKind::Rsa, "s-server.test");
    let port = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-www", "-quiet", "-cert"]).arg(&cert).arg("-key").arg(&key);
    let server = Server::start("openssl s_server", cmd, addr(port));
    let r = scan(server.addr, None).await;
    assert_eq!(r.status, ScanStatus::Success, "{r:#?}");
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
    assert_eq!(r.versions["tls1.2"], Verdict::NoHeartbeat);
    let c = r.certificate.as_ref().unwrap();
    assert_eq!(c.subject, "CN=s-server.test");
    assert_eq!(c.key_type, "rsa");
    assert_eq!(c.spki_sha256, spki_sha256(&cert));
}

#[tokio::test]
async fn gnutls_with_heartbeat_is_not_vulnerable() {
    if !require("gnutls-serv") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "gnutls", KeyKind::Ecdsa, "gnutls.test");
    let port = free_port();
    let mut cmd = Command::new("gnutls-serv");
    cmd.args(["--heartbeat", "--echo", "-p", &port.to_string(), "--x509certfile"]).arg(&cert).arg("--x509keyfile").arg(&key);
    let server = Server::start("gnutls-serv", cmd, addr(port));
    let r = scan(server.addr, None).await;
    assert_eq!(r.heartbleed, Verdict::NotVulnerable, "{r:#?}");
    let tls12 = r.details.iter().find(|d| d.negotiated.as_deref() == Some("tls1.2")).unwrap();
    assert_eq!(tls12.heartbeat_extension.as_deref(), Some("peer_allowed_to_send"), "{tls12:#?}");
    assert_eq!(r.certificate.as_ref().unwrap().key_type, "ec");
    assert_eq!(r.certificate.as_ref().unwrap().spki_sha256, spki_sha256(&cert));
}

#[tokio::test]
async fn nginx_with_rsa_and_ecdsa_certificates() {
    if !require("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rsa_cert, rsa_key) = make_cert(dir.path(), "rsa", KeyKind::Rsa, "rsa.nginx.test");
    let (ec_cert, ec_key) = make_cert(dir.path(), "ec", KeyKind::Ecdsa, "ec.nginx.test");
    let (rsa_port, ec_port) = (free_port(), free_port());
    let prefix = dir.path();
    let conf = format!(
        "master_process off;\nworker_processes 1;\nerror_log {p}/error.log;\npid {p}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
         server {{ listen 127.0.0.1:{rsa_port} ssl; ssl_certificate {rc}; ssl_certificate_key {rk}; return 200 ok; }}\n\
         server {{ listen 127.0.0.1:{ec_port} ssl; ssl_certificate {ec}; ssl_certificate_key {ek}; return 200 ok; }}\n}}\n",
        p = prefix.display(),
        rc = rsa_cert.display(),
        rk = rsa_key.display(),
        ec = ec_cert.display(),
        ek = ec_key.display(),
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(prefix).arg("-c").arg(&conf_path).args(["-g", "daemon off;"]);
    let server = Server::start("nginx", cmd, addr(rsa_port));
    for (port, key_type, cert) in [(rsa_port, "rsa", &rsa_cert), (ec_port, "ec", &ec_cert)] {
        let r = scan(addr(port), None).await;
        assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
        let c = r.certificate.as_ref().unwrap();
        assert_eq!(c.key_type, key_type);
        assert_eq!(c.spki_sha256, spki_sha256(cert));
    }
    drop(server);
}

#[tokio::test]
async fn tls13_only_server_is_not_applicable_with_its_certificate() {
    if !require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "tls13", KeyKind::Ecdsa, "tls13.test");
    let port = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-tls1_3", "-accept", &format!("127.0.0.1:{port}"), "-www", "-quiet", "-cert"]).arg(&cert).arg("-key").arg(&key);
    let server = Server::start("openssl s_server -tls1_3", cmd, addr(port));
    let r = scan(server.addr, Some("tls13.test")).await;
    assert_eq!(r.heartbleed, Verdict::NotApplicable, "{r:#?}");
    assert_eq!(r.versions["tls1.3"], Verdict::NotApplicable);
    assert_eq!(r.versions["tls1.2"], Verdict::NotSupported);
    let c = r.certificate.as_ref().unwrap();
    assert_eq!(c.subject, "CN=tls13.test");
    assert_eq!(c.spki_sha256, spki_sha256(&cert));
}

/// A server that refuses an SNI name it does not know with a fatal unrecognized_name alert (sslyze#202)
/// is retried without SNI, and the result records that SNI did not work.
#[tokio::test]
async fn sni_refused_is_retried_without_sni() {
    if !require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "sni", KeyKind::Rsa, "expected.test");
    let port = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-www", "-quiet", "-servername", "expected.test", "-servername_fatal"])
        .args(["-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .args(["-cert2"])
        .arg(&cert)
        .arg("-key2")
        .arg(&key);
    let server = Server::start("openssl s_server -servername_fatal", cmd, addr(port));
    let r = scan(server.addr, Some("other.test")).await;
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
    assert_eq!(r.sni, None, "the retry without SNI is what worked: {r:#?}");
    let refused = r.details.iter().find(|d| d.sni && d.reason.as_deref().unwrap_or("").contains("unrecognized_name"));
    assert!(refused.is_some(), "the refused attempt with SNI is kept: {:#?}", r.details);
    // The expected name works directly.
    let r = scan(server.addr, Some("expected.test")).await;
    assert_eq!(r.sni.as_deref(), Some("expected.test"), "{r:#?}");
}
