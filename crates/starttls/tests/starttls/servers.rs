//! The real-server harness shared by the dialect tests and the scanner tests: each server from a
//! Debian package (scripts/test-packages/starttls.txt) is started on free loopback ports with its own
//! configuration in a temp dir and a self-signed certificate made with the openssl CLI, and stopped
//! (SIGTERM, then SIGKILL) when its handle is dropped. Plus scripted servers (NNTP, our own server
//! role) with TLS from a real `openssl s_server` behind them. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bleedwatch_starttls::ServerStep;

pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const DIALOGUE_TIMEOUT: Duration = Duration::from_secs(15);
pub const CERT_CN: &str = "bleedwatch-starttls-test";

// ---------------------------------------------------------------------------------------------
// Fixtures: temp dirs, the certificate, ports, server processes.

/// A temp dir that service users (postfix, dovecot, postgres, mysql, prosody) can traverse.
pub fn service_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("bleedwatch-starttls-{name}-")).tempdir().unwrap();
    run(Command::new("chmod").arg("755").arg(dir.path()));
    dir
}

pub fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

fn output_of(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo (hex), computed with the openssl CLI, to check the
    /// scanner's own figure independently.
    pub spki_sha256: String,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// A self-signed RSA certificate made with the openssl CLI (one per test, removed with it).
    pub fn new() -> TestCert {
        let dir = service_dir("cert");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let der = dir.path().join("cert.der");
        let spki = dir.path().join("spki.der");
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN={CERT_CN}"))
            .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        run(Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert).arg("-out").arg(&der));
        run(Command::new("openssl").args(["pkey", "-pubout", "-outform", "DER", "-in"]).arg(&key).arg("-out").arg(&spki));
        let digest = output_of(Command::new("openssl").args(["dgst", "-sha256", "-r"]).arg(&spki));
        let spki_sha256 = digest.split_whitespace().next().unwrap().to_ascii_lowercase();
        assert_eq!(spki_sha256.len(), 64, "{digest}");
        run(Command::new("chmod").arg("644").arg(&key));
        let der = std::fs::read(der).unwrap();
        TestCert { cert, key, der, spki_sha256, _dir: dir }
    }
}

/// Copies the certificate and key into `dir` (owned by `owner`, key 0600) for servers that insist.
pub fn install_cert(cert: &TestCert, dir: &Path, owner: &str) -> (PathBuf, PathBuf) {
    let cert_path = dir.join("server-cert.pem");
    let key_path = dir.join("server-key.pem");
    std::fs::copy(&cert.cert, &cert_path).unwrap();
    std::fs::copy(&cert.key, &key_path).unwrap();
    run(Command::new("chmod").arg("600").arg(&key_path));
    run(Command::new("chown").arg(owner).arg(&cert_path).arg(&key_path));
    (cert_path, key_path)
}

/// A free loopback port. Ephemeral, so never the well-known port of any STARTTLS dialect: every
/// server here runs on an "unusual" port as far as the scanner's port hints go.
pub fn free_port() -> u16 {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(bleedwatch_starttls::Protocol::for_port(port).is_none(), "ephemeral port {port} is a well-known one");
    port
}

/// A running server; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    name: String,
    child: Child,
    log: PathBuf,
    /// Kept open: some servers (openssl s_server) treat end of input as "quit".
    _stdin: Option<ChildStdin>,
}

impl Server {
    /// Starts `command` in the directory of `log` (its temp dir: a crashing server's core file
    /// lands there, not in the source tree).
    pub fn spawn(name: &str, command: &mut Command, log: PathBuf) -> Server {
        let out = std::fs::File::create(log.with_extension("stdout")).unwrap();
        let err = out.try_clone().unwrap();
        if let Some(dir) = log.parent() {
            command.current_dir(dir);
        }
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
    pub fn wait_ready(mut self, ports: &[u16]) -> Server {
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

    pub fn logs(&self) -> String {
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
pub fn as_user(user: &str, program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid", user, "--regid", user, "--init-groups", program]);
    command
}

// ---------------------------------------------------------------------------------------------
// Postfix: SMTP and submission.

pub struct Postfix {
    pub smtp: u16,
    /// A second smtpd, named "submission" in the logs (as on port 587).
    pub submission: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

/// A Postfix instance with `smtpd` on two free ports; `banner` replaces `smtpd_banner`.
pub fn postfix(cert: &TestCert, tls: bool, banner: Option<&str>) -> Postfix {
    let (smtp, submission) = (free_port(), free_port());
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
    Postfix { smtp, submission, _server: server, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// Dovecot: IMAP, POP3, ManageSieve, LMTP.

pub struct Dovecot {
    pub imap: u16,
    pub pop3: u16,
    pub sieve: u16,
    pub lmtp: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

pub fn dovecot(cert: &TestCert, tls: bool) -> Dovecot {
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

// ---------------------------------------------------------------------------------------------
// vsftpd: FTP AUTH TLS.

pub struct Vsftpd {
    pub port: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

pub fn vsftpd(cert: &TestCert, tls: bool, banner: Option<&str>) -> Vsftpd {
    let port = free_port();
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
    Vsftpd { port, _server: server, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// slapd: LDAP StartTLS.

pub struct Slapd {
    pub port: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

pub fn slapd(cert: &TestCert, tls: bool) -> Slapd {
    let port = free_port();
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
    Slapd { port, _server: server, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// Prosody: XMPP c2s and s2s.

pub struct Prosody {
    pub c2s: u16,
    pub s2s: u16,
    /// The VirtualHost: XMPP servers answer `host-unknown` to any other `to=`.
    pub domain: &'static str,
    _server: Server,
    _dir: tempfile::TempDir,
}

pub fn prosody(cert: &TestCert) -> Prosody {
    let dir = service_dir("prosody");
    let root = dir.path();
    let (c2s, s2s) = (free_port(), free_port());
    let (cert_path, key_path) = install_cert(cert, root, "prosody");
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
    let server = Server::spawn(
        "prosody",
        as_user("prosody", "/usr/bin/prosody").arg("--config").arg(&conf_path),
        root.join("prosody.log"),
    )
    .wait_ready(&[c2s, s2s]);
    Prosody { c2s, s2s, domain: "localhost", _server: server, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: SSLRequest.

/// An initialised PostgreSQL data directory; [`PgCluster::start`] runs a server on it.
pub struct PgCluster {
    root: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    cert_path: PathBuf,
    key_path: PathBuf,
    _dir: tempfile::TempDir,
}

pub struct Postgres {
    pub port: u16,
    _server: Server,
}

impl PgCluster {
    pub fn init(cert: &TestCert) -> PgCluster {
        let dir = service_dir("postgres");
        let root = dir.path().join("pg");
        std::fs::create_dir_all(&root).unwrap();
        run(Command::new("chown").arg("postgres").arg(&root));
        let (cert_path, key_path) = install_cert(cert, &root, "postgres");
        let data = root.join("data");
        // The newest installed major version (Debian 12 ships 15).
        let mut majors: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .collect();
        majors.sort();
        let bin = majors.pop().expect("no PostgreSQL server under /usr/lib/postgresql");
        run(as_user("postgres", bin.join("initdb").to_str().unwrap()).arg("-D").arg(&data).args(["--auth=trust", "-U", "postgres"]));
        PgCluster { root, data, bin, cert_path, key_path, _dir: dir }
    }

    /// A server on a free port with `ssl=on` or `ssl=off` (one at a time per cluster).
    pub fn start(&self, ssl: bool) -> Postgres {
        let port = free_port();
        let server = Server::spawn(
            "postgres",
            as_user("postgres", self.bin.join("postgres").to_str().unwrap())
                .arg("-D")
                .arg(&self.data)
                .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string(), "-c"])
                .arg(format!("unix_socket_directories={}", self.root.display()))
                .args(["-c", if ssl { "ssl=on" } else { "ssl=off" }, "-c"])
                .arg(format!("ssl_cert_file={}", self.cert_path.display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", self.key_path.display())),
            self.root.join("postgres.log"),
        )
        .wait_ready(&[port]);
        Postgres { port, _server: server }
    }
}

// ---------------------------------------------------------------------------------------------
// MariaDB: CLIENT_SSL and the SSL request.

pub struct Mariadb {
    pub port: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

pub fn mariadb(cert: &TestCert) -> Mariadb {
    let dir = service_dir("mariadb");
    let root = dir.path().join("my");
    std::fs::create_dir_all(root.join("data")).unwrap();
    run(Command::new("chown").arg("-R").arg("mysql").arg(&root));
    let (cert_path, key_path) = install_cert(cert, &root, "mysql");
    let port = free_port();
    // An empty data dir with --skip-grant-tables is enough: the greeting comes before any login.
    let server = Server::spawn(
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
    Mariadb { port, _server: server, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// InspIRCd: IRC STARTTLS (m_starttls with m_ssl_gnutls).

pub struct Inspircd {
    pub port: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

pub fn inspircd(cert: &TestCert) -> Inspircd {
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
    let server = Server::spawn(
        "inspircd",
        Command::new("inspircd").args(["--runasroot", "--nofork"]).arg(format!("--config={}", conf_path.display())),
        root.join("ircd.log"),
    )
    .wait_ready(&[port]);
    Inspircd { port, _server: server, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// xrdp: RDP with TLS security.

pub struct Xrdp {
    pub port: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

pub fn xrdp(cert: &TestCert) -> Xrdp {
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
    let server = Server::spawn("xrdp", Command::new("xrdp").arg("--nodaemon").arg("--config").arg(&ini_path), root.join("xrdp.log"))
        .wait_ready(&[port]);
    Xrdp { port, _server: server, _dir: dir }
}

// ---------------------------------------------------------------------------------------------
// Scripted servers: a plaintext dialogue played by a script, then TLS from a real `openssl
// s_server` spliced in behind it. Used for NNTP (INN cannot be installed on a host without a
// domain name, see the crate README) and for our own server role against real clients.

/// A running `openssl s_server` with the test certificate (OpenSSL 3: no heartbeat extension).
pub struct TlsBackend {
    pub port: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

/// Whether something listens on loopback TCP `port`, from /proc (connecting would use up a
/// single-accept server).
fn listening(port: u16) -> bool {
    std::fs::read_to_string("/proc/net/tcp").unwrap_or_default().lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1).is_some_and(|local| local.ends_with(&format!(":{port:04X}"))) && fields.get(3) == Some(&"0A")
    })
}

/// `openssl s_server` for `accepts` connections in turn (`None`: as many as come).
pub fn tls_backend(cert: &TestCert, accepts: Option<u32>) -> TlsBackend {
    let dir = service_dir("s_server");
    let port = free_port();
    let mut command = Command::new("openssl");
    command.args(["s_server", "-accept"]).arg(format!("127.0.0.1:{port}")).arg("-cert").arg(&cert.cert).arg("-key").arg(&cert.key).arg("-quiet");
    if let Some(n) = accepts {
        command.args(["-naccept", &n.to_string()]);
    }
    let server = Server::spawn("openssl s_server", &mut command, dir.path().join("s_server.log"));
    let deadline = Instant::now() + START_TIMEOUT;
    while !listening(port) {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        thread::sleep(Duration::from_millis(50));
    }
    TlsBackend { port, _server: server, _dir: dir }
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

/// A connection's script: the greeting to send first, and a function from client bytes to the next
/// step (as [`bleedwatch_starttls::ServerDialogue::feed`]).
pub type Script = (Vec<u8>, Box<dyn FnMut(&[u8]) -> ServerStep + Send>);

/// Plays one connection: the scripted plaintext dialogue, then TLS from the backend.
fn serve_connection(mut client: TcpStream, backend_port: u16, script: Script) -> Result<(), String> {
    let (greeting, mut dialogue) = script;
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
            ServerStep::Close { send_last, reason } => {
                let _ = client.write_all(&send_last);
                return Err(format!("server closed: {reason}"));
            }
            ServerStep::StartTls { send_first, leftover } => {
                client.write_all(&send_first).map_err(|e| e.to_string())?;
                let mut tls = TcpStream::connect(("127.0.0.1", backend_port)).map_err(|e| e.to_string())?;
                tls.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                tls.write_all(&leftover).map_err(|e| e.to_string())?;
                splice(client, tls);
                return Ok(());
            }
        }
    }
}

/// A scripted STARTTLS server on a free port: every connection gets a fresh script from `script`;
/// TLS comes from an `openssl s_server` that takes connections one after another (so clients must
/// not overlap, as the scanner's version sweep does not). Stopped, with every connection thread
/// joined, when dropped.
pub struct ScriptedServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
    /// How each connection ended, in order: Ok once it reached TLS.
    outcomes: Arc<Mutex<Vec<Result<(), String>>>>,
    _backend: TlsBackend,
}

impl ScriptedServer {
    pub fn start(cert: &TestCert, script: impl Fn() -> Script + Send + 'static) -> ScriptedServer {
        let backend = tls_backend(cert, None);
        let backend_port = backend.port;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes: Arc<Mutex<Vec<Result<(), String>>>> = Arc::default();
        let (stop_flag, results) = (stop.clone(), outcomes.clone());
        let acceptor = thread::spawn(move || {
            let mut connections = Vec::new();
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let script = script();
                        let results = results.clone();
                        connections.push(thread::spawn(move || {
                            let outcome = serve_connection(client, backend_port, script);
                            results.lock().unwrap().push(outcome);
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(10)),
                    Err(e) => panic!("accept: {e}"),
                }
            }
            for connection in connections {
                let _ = connection.join();
            }
        });
        ScriptedServer { port, stop, acceptor: Some(acceptor), outcomes, _backend: backend }
    }

    /// How the connections so far ended.
    pub fn outcomes(&self) -> Vec<Result<(), String>> {
        self.outcomes.lock().unwrap().clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// What INN's nnrpd says (texts from INN's nnrpd source: greeting, CAPABILITIES, STARTTLS).
pub const INN_GREETING: &[u8] = b"200 news.bleedwatch.test InterNetNews NNRP server INN 2.7.1 ready (posting ok)\r\n";
const INN_CAPABILITIES: &[u8] = b"101 Capability list:\r\nVERSION 2\r\nIMPLEMENTATION INN 2.7.1\r\nAUTHINFO USER\r\nHDR\r\n\
    LIST ACTIVE ACTIVE.TIMES COUNTS DISTRIB.PATS DISTRIBUTIONS HEADERS MODERATORS MOTD NEWSGROUPS OVERVIEW.FMT SUBSCRIPTIONS\r\n\
    NEWNEWS\r\nOVER\r\nPOST\r\nREADER\r\nSTARTTLS\r\nXPAT\r\n.\r\n";
const INN_STARTTLS: &[u8] = b"382 Begin TLS negotiation now\r\n";

/// One connection of a scripted INN nnrpd that offers STARTTLS.
pub fn inn_script() -> Script {
    let mut line = Vec::new();
    let dialogue = move |data: &[u8]| {
        line.extend_from_slice(data);
        let Some(end) = line.iter().position(|&b| b == b'\n') else { return ServerStep::NeedMore };
        let command: Vec<u8> = line.drain(..=end).collect();
        match command.as_slice() {
            b"CAPABILITIES\r\n" => ServerStep::Send(INN_CAPABILITIES.to_vec()),
            b"STARTTLS\r\n" => ServerStep::StartTls { send_first: INN_STARTTLS.to_vec(), leftover: std::mem::take(&mut line) },
            other => ServerStep::Close { send_last: Vec::new(), reason: format!("unexpected {:?}", String::from_utf8_lossy(other)) },
        }
    };
    (INN_GREETING.to_vec(), Box::new(dialogue))
}

/// What an IRC server answers a line before registration.
const IRC_NOT_REGISTERED: &[u8] = b":irc.example 451 * :You have not registered\r\n";

/// One connection of an IRC server that sends nothing first, answers anything but STARTTLS before
/// registration with numerics (a TLS ClientHello too) and knows no CAP.
pub fn silent_irc_script() -> Script {
    let mut pending = Vec::new();
    let dialogue = move |data: &[u8]| {
        pending.extend_from_slice(data);
        if pending.first() == Some(&0x16) {
            pending.clear();
            return ServerStep::Send(IRC_NOT_REGISTERED.to_vec());
        }
        let mut out = Vec::new();
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if line.starts_with(b"STARTTLS") {
                out.extend_from_slice(b":irc.example 670 * :STARTTLS successful, go ahead with TLS handshake\r\n");
                return ServerStep::StartTls { send_first: out, leftover: std::mem::take(&mut pending) };
            } else if line.starts_with(b"CAP") {
                out.extend_from_slice(b":irc.example 421 * CAP :Unknown command\r\n");
            } else {
                out.extend_from_slice(IRC_NOT_REGISTERED);
            }
        }
        if out.is_empty() {
            ServerStep::NeedMore
        } else {
            ServerStep::Send(out)
        }
    };
    (Vec::new(), Box::new(dialogue))
}
