//! A throw-away certificate authority run with the openssl CLI (`openssl req`, `openssl ca`) for
//! the end-to-end revocation test: leaf certificates on new P-256 keys, revocation, CRLs.

use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

pub fn require_openssl() -> bool {
    if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
        eprintln!("skipping: BLEEDWATCH_SKIP_REAL_SERVERS is set");
        return false;
    }
    let found = Command::new("openssl").arg("version").stdout(Stdio::null()).status().map(|s| s.success());
    assert!(matches!(found, Ok(true)), "openssl is not installed: run scripts/test.sh, or set BLEEDWATCH_SKIP_REAL_SERVERS=1");
    true
}

fn run(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}

pub struct Ca {
    pub dir: TempDir,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::create_dir(path.join("newcerts")).unwrap();
        std::fs::write(path.join("index.txt"), "").unwrap();
        std::fs::write(path.join("serial"), "2000\n").unwrap();
        std::fs::write(path.join("crlnumber"), "01\n").unwrap();
        let config = format!(
            "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndir = {}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n\
             certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\n\
             default_md = sha256\ndefault_days = 30\ndefault_crl_days = 7\npolicy = policy_any\nunique_subject = no\n\
             [ policy_any ]\ncommonName = supplied\n\
             [ leaf ]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n\
             subjectAltName = DNS:localhost\ncrlDistributionPoints = URI:http://127.0.0.1:9/ca.crl\n",
            path.display()
        );
        std::fs::write(path.join("ca.cnf"), config).unwrap();
        run(
            path,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj",
                &format!("/CN={name}/O=bleedwatch tests"),
            ],
        );
        run(path, &["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"]);
        Ca { dir }
    }

    pub fn der(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.der")).unwrap()
    }

    /// A leaf for localhost on a new P-256 key: (certificate DER, PKCS#8 key PEM).
    pub fn issue(&self, name: &str) -> (Vec<u8>, String) {
        let path = self.dir.path();
        let (key, csr, pem, der) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.der"));
        run(path, &["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        run(path, &["ca", "-batch", "-config", "ca.cnf", "-extensions", "leaf", "-in", &csr, "-out", &pem, "-notext"]);
        run(path, &["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
        (std::fs::read(path.join(der)).unwrap(), std::fs::read_to_string(path.join(key)).unwrap())
    }

    pub fn revoke(&self, name: &str) {
        run(self.dir.path(), &["ca", "-config", "ca.cnf", "-revoke", &format!("{name}.pem"), "-crl_reason", "keyCompromise"]);
    }

    /// Publishes a CRL (DER) and returns its path.
    pub fn crl(&self) -> std::path::PathBuf {
        run(self.dir.path(), &["ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl.pem"]);
        run(self.dir.path(), &["crl", "-in", "ca.crl.pem", "-outform", "DER", "-out", "ca.crl"]);
        self.dir.path().join("ca.crl")
    }
}
