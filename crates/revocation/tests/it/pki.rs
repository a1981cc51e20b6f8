//! A throw-away certificate authority run with the openssl CLI (`openssl req`, `openssl ca`) in a
//! temporary directory: issues leaf certificates whose CRL and OCSP URLs point at a loopback server,
//! revokes them, publishes CRLs, and answers OCSP requests with OpenSSL's own responder.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bleedwatch_revocation::TrustAnchors;

use tempfile::TempDir;

/// Whether to run tests that need the openssl CLI; panics with instructions when it is missing.
pub fn require_openssl() -> bool {
    if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
        eprintln!("skipping: BLEEDWATCH_SKIP_REAL_SERVERS is set");
        return false;
    }
    let found = Command::new("openssl").arg("version").stdout(Stdio::null()).status().map(|s| s.success());
    assert!(
        matches!(found, Ok(true)),
        "openssl is not installed: run the README's test command (scripts/test.sh), or set BLEEDWATCH_SKIP_REAL_SERVERS=1"
    );
    true
}

pub fn run(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub struct Ca {
    pub dir: TempDir,
}

impl Ca {
    /// A CA named `name` (several CAs may share a name, to test forgeries) whose certificates
    /// point at `base_url` (`http://127.0.0.1:PORT`) for their CRL, OCSP and CA certificate.
    pub fn new(name: &str, base_url: &str) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::create_dir(path.join("newcerts")).unwrap();
        std::fs::write(path.join("index.txt"), "").unwrap();
        std::fs::write(path.join("serial"), "1000\n").unwrap();
        std::fs::write(path.join("crlnumber"), "01\n").unwrap();
        std::fs::write(path.join("ca.cnf"), config(path, base_url)).unwrap();
        run(
            path,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
                "-subj", &format!("/CN={name}/O=bleedwatch tests"),
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        run(path, &["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"]);
        Ca { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn der(&self) -> Vec<u8> {
        std::fs::read(self.path().join("ca.der")).unwrap()
    }

    /// Issues a leaf for `localhost` on a new P-256 key, with `extensions` (a section of ca.cnf);
    /// returns the certificate DER and the PKCS#8 key PEM.
    pub fn issue(&self, name: &str, extensions: &str) -> (Vec<u8>, String) {
        let path = self.path();
        let (key, csr, pem, der) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.der"));
        run(
            path,
            &[
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-keyout", &key, "-out",
                &csr, "-subj", "/CN=localhost",
            ],
        );
        run(path, &["ca", "-batch", "-config", "ca.cnf", "-extensions", extensions, "-in", &csr, "-out", &pem, "-notext"]);
        run(path, &["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
        (std::fs::read(path.join(der)).unwrap(), std::fs::read_to_string(path.join(key)).unwrap())
    }

    pub fn revoke(&self, name: &str, reason: &str) {
        run(self.path(), &["ca", "-config", "ca.cnf", "-revoke", &format!("{name}.pem"), "-crl_reason", reason]);
    }

    /// Publishes a CRL; returns (PEM bytes, DER bytes).
    pub fn crl(&self) -> (Vec<u8>, Vec<u8>) {
        run(self.path(), &["ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl.pem"]);
        run(self.path(), &["crl", "-in", "ca.crl.pem", "-outform", "DER", "-out", "ca.crl"]);
        (std::fs::read(self.path().join("ca.crl.pem")).unwrap(), std::fs::read(self.path().join("ca.crl")).unwrap())
    }

    /// A CRL dated by the caller (`YYYYMMDDHHMMSSZ`), e.g. one whose nextUpdate passed long ago,
    /// as a CA that stopped publishing leaves behind; returns its DER.
    pub fn crl_dated(&self, last_update: &str, next_update: &str) -> Vec<u8> {
        run(
            self.path(),
            &[
                "ca", "-config", "ca.cnf", "-gencrl", "-crl_lastupdate", last_update, "-crl_nextupdate", next_update, "-out",
                "dated.crl.pem",
            ],
        );
        run(self.path(), &["crl", "-in", "dated.crl.pem", "-outform", "DER", "-out", "dated.crl"]);
        std::fs::read(self.path().join("dated.crl")).unwrap()
    }

    /// This CA as the only trust anchor (what `--ca-file ca.pem` gives).
    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_pem_or_der(&std::fs::read(self.file("ca.pem")).unwrap(), "ca.pem").unwrap()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// OpenSSL's OCSP responder, one request at a time: `openssl ocsp -index` with the request
    /// read from a file and the response written to one (OpenSSL 3's `-port` listens on every
    /// interface, so the loopback HTTP front in `http.rs` carries the bytes instead). The response
    /// is signed with `signer` (`ca` or a delegated responder certificate issued by `issue`).
    pub fn ocsp_answer(&self, request: &[u8], signer: &str) -> Vec<u8> {
        let path = self.path();
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let (request_file, response_file) = (format!("ocsp-req-{n}.der"), format!("ocsp-resp-{n}.der"));
        std::fs::write(path.join(&request_file), request).unwrap();
        let (signer_cert, signer_key) = (format!("{signer}.pem"), format!("{signer}.key"));
        run(
            path,
            &[
                "ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", &signer_cert, "-rkey", &signer_key, "-reqin",
                &request_file, "-respout", &response_file, "-ndays", "1",
            ],
        );
        std::fs::read(path.join(response_file)).unwrap()
    }
}

fn config(dir: &Path, base_url: &str) -> String {
    format!(
        r#"[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 30
default_crl_days = 7
policy = policy_any
unique_subject = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ leaf ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
crlDistributionPoints = URI:{base_url}/ca.crl
authorityInfoAccess = OCSP;URI:{base_url}/ocsp, caIssuers;URI:{base_url}/ca.der

[ ocsp_signer ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
"#,
        dir = dir.display()
    )
}

/// OpenSSL's own OCSP responder (`openssl ocsp -index … -port PORT`) over this CA's index,
/// signing with `signer`. `-port` takes no address and OpenSSL 3 listens on every interface, so it
/// runs under the `bind_loopback.c` shim from `../shared/data/openssl` (built with `cc`), which
/// keeps it on loopback. Killed and reaped when dropped.
pub struct OcspResponder {
    child: Child,
    pub url: String,
}

impl OcspResponder {
    /// None (with a note) when the shared directory with the shim is not beside the repository.
    pub fn start(ca: &Ca, signer: &str) -> Option<OcspResponder> {
        let shim = loopback_shim()?;
        let port = std::net::TcpListener::bind("[::1]:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("openssl")
            .args(["ocsp", "-index", "index.txt", "-CA", "ca.pem", "-ndays", "1", "-port", &port.to_string()])
            .args(["-rsigner", &format!("{signer}.pem"), "-rkey", &format!("{signer}.key")])
            .env("LD_PRELOAD", &shim)
            .current_dir(ca.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Ready when it says so: a probing connection would hang it (it serves one connection at
        // a time and waits on an empty one). The shim names the address it bound ("ACCEPT [::1]:P",
        // on standard output).
        let (lines, ready) = std::sync::mpsc::channel();
        let outputs: [Box<dyn std::io::Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        for output in outputs {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        let mut responder = OcspResponder { child, url: String::new() };
        let deadline = Instant::now() + Duration::from_secs(10);
        // The two lines come on different streams, so either may arrive first.
        let mut seen = Vec::new();
        let mut waiting = false;
        while let Ok(line) = ready.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(addr) = line.strip_prefix("ACCEPT ").and_then(|rest| rest.split_whitespace().next()) {
                responder.url = format!("http://{addr}/");
            }
            waiting |= line.contains("waiting for OCSP client connections");
            seen.push(line);
            if waiting && !responder.url.is_empty() {
                return Some(responder);
            }
        }
        panic!("openssl ocsp did not get ready on port {port} within 10 s: {seen:?}");
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loopback_shim() -> Option<PathBuf> {
    bleedwatch_testkit::shared_openssl_dir().map(|dir| bleedwatch_testkit::bind_loopback_shim(&dir))
}
