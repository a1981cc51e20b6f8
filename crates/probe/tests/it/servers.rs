//! Starting real servers from Debian packages on loopback for tests, and stopping them again.
//! A missing server binary fails the test (the README's test command installs them); set
//! BLEEDWATCH_SKIP_REAL_SERVERS=1 to skip these tests on a machine without them.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether to run tests that need `binary`; panics with instructions when it is missing.
pub fn require(binary: &str) -> bool {
    if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
        eprintln!("skipping: BLEEDWATCH_SKIP_REAL_SERVERS is set");
        return false;
    }
    let found = Command::new("sh").arg("-c").arg(format!("command -v {binary}")).stdout(Stdio::null()).status().map(|s| s.success());
    assert!(
        matches!(found, Ok(true)),
        "{binary} is not installed: run the README's test command (scripts/test.sh), or set BLEEDWATCH_SKIP_REAL_SERVERS=1"
    );
    true
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed (and reaped) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    name: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` and waits (bounded) until `addr` accepts connections.
    pub fn start(name: &str, mut cmd: Command, addr: SocketAddr) -> Server {
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let mut server = Server { child, addr, name: name.to_string() };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{} exited with {status} before listening on {addr}: {err}", server.name);
            }
            assert!(Instant::now() < deadline, "{} did not listen on {addr} within 15 s", server.name);
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

/// Key type of a test certificate.
#[derive(Clone, Copy)]
pub enum KeyKind {
    Rsa,
    Ecdsa,
}

/// Makes a self-signed certificate with the openssl CLI; returns (cert.pem, key.pem).
pub fn make_cert(dir: &Path, stem: &str, kind: KeyKind, cn: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let newkey = match kind {
        KeyKind::Rsa => "rsa:2048",
        KeyKind::Ecdsa => "ec",
    };
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", newkey]);
    if let KeyKind::Ecdsa = kind {
        cmd.args(["-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    let status = cmd
        .args(["-nodes", "-days", "30", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// SHA-256 of the certificate's public key (SPKI DER), computed with the openssl CLI, to check
/// the scanner's figure independently.
pub fn spki_sha256(cert: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum", cert.display()))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// Whether a socket on loopback listens on TCP `port` (state LISTEN), or has UDP `port` bound, from
/// /proc/net: checking this way takes no connection from a server that serves one at a time.
pub fn port_bound(udp: bool, port: u16) -> bool {
    let needle = format!(":{port:04X}");
    let files: &[&str] = if udp { &["/proc/net/udp", "/proc/net/udp6"] } else { &["/proc/net/tcp", "/proc/net/tcp6"] };
    files.iter().any(|p| {
        std::fs::read_to_string(p)
            .map(|t| {
                t.lines().skip(1).any(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.get(1).is_some_and(|a| a.ends_with(&needle)) && (udp || cols.get(3) == Some(&"0A"))
                })
            })
            .unwrap_or(false)
    })
}

pub use bleedwatch_testkit::{bind_loopback_shim, shared_openssl_dir, OpenSsl101};

/// A real `openssl s_server` of OpenSSL 1.0.1 on loopback, killed (and reaped) when dropped. Its
/// output goes to files in its temporary directory (shown when it fails to start). Its stdin stays
/// open: `s_server` ends when stdin does.
pub struct S101Server {
    child: Child,
    _stdin: Option<std::process::ChildStdin>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Drop for S101Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S101Server {
    /// `openssl-1.0.1x s_server -accept PORT <args> -cert -key` with a fresh certificate of `key`;
    /// DTLS when `args` has `-dtls1`. None when the shared binaries are absent.
    pub fn start(build: OpenSsl101, key: KeyKind, args: &[&str]) -> Option<S101Server> {
        let openssl_dir = shared_openssl_dir()?;
        let shim = bind_loopback_shim(&openssl_dir);
        let dir = tempfile::tempdir().unwrap();
        let (cert, keyfile) = make_cert(dir.path(), "s_server", key, "openssl101.test");
        let udp = args.contains(&"-dtls1");
        let port = if udp { std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port() } else { free_port() };
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let mut cmd = Command::new(openssl_dir.join("bin").join(build.binary_name()));
        cmd.arg("s_server")
            .args(["-accept", &port.to_string()])
            .args(args)
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&keyfile)
            .env("OPENSSL_CONF", "/dev/null")
            .env("LD_PRELOAD", &shim)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", build.binary_name()));
        let stdin = child.stdin.take();
        let mut server = S101Server { child, _stdin: stdin, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !port_bound(udp, port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{} s_server {args:?} exited with {status} before listening on {port}: {}", build.binary_name(), server.output());
            }
            assert!(Instant::now() < deadline, "{} s_server {args:?} did not listen on {port} within 15 s", build.binary_name());
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// What the server printed so far (stdout, then stderr).
    pub fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }
}
