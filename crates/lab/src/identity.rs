//! The certificate chain and private key a lab server presents.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Committed lab RSA keys (see `keys/README.md`): public, for tests and the demo only.
pub const LAB_RSA_KEY_A: &str = include_str!("keys/lab-rsa-a.pem");
pub const LAB_RSA_KEY_B: &str = include_str!("keys/lab-rsa-b.pem");

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("unusable private key: {0}")]
    Key(String),
    #[error("unusable certificate: {0}")]
    Certificate(String),
    #[error("{path}: {error}")]
    Io { path: String, error: String },
}

/// The file, beside the inventory, that holds an installation's own server key.
pub const INSTALLATION_KEY_FILE: &str = "server-key.pem";

/// The key that signs ServerKeyExchange.
#[derive(Clone)]
pub enum SigningKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    EcdsaP256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::Rsa(_) => "SigningKey::Rsa(..)",
            SigningKey::EcdsaP256(_) => "SigningKey::EcdsaP256(..)",
        })
    }
}

/// A chain (leaf first, DER) with the leaf's private key.
#[derive(Debug, Clone)]
pub struct LabIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key: SigningKey,
    /// The key in PKCS#8 PEM, so the same key can be reissued in a new certificate.
    pub key_pem: String,
}

/// A server certificate's parameters: `names` as SANs, the first as CN, and `serial`.
fn server_params(names: &[&str], serial: u64) -> Result<CertificateParams, IdentityError> {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.first().copied().unwrap_or("localhost"));
    dn.push(DnType::OrganizationName, "bleedwatch lab");
    params.distinguished_name = dn;
    params.serial_number = Some(rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
    Ok(params)
}

impl LabIdentity {
    /// A self-signed certificate for `names` on the given PKCS#8 PEM key (RSA or ECDSA P-256).
    /// `serial` distinguishes reissues of the same key.
    pub fn self_signed(names: &[&str], key_pem: &str, serial: u64) -> Result<LabIdentity, IdentityError> {
        let key_pair = KeyPair::from_pem(key_pem)?;
        let mut params = server_params(names, serial)?;
        // A realistic one-year validity, so reports show a real "still valid until".
        let now = std::time::SystemTime::now();
        params.not_before = (now - std::time::Duration::from_secs(86_400)).into();
        params.not_after = (now + std::time::Duration::from_secs(365 * 86_400)).into();
        let cert = params.self_signed(&key_pair)?;
        Ok(LabIdentity { chain: vec![cert.der().to_vec()], key: signing_key(key_pem)?, key_pem: key_pem.to_string() })
    }

    /// A self-signed certificate on a freshly generated ECDSA P-256 key.
    pub fn generate_ecdsa(names: &[&str]) -> Result<LabIdentity, IdentityError> {
        let key = KeyPair::generate()?;
        LabIdentity::self_signed(names, &key.serialize_pem(), 1)
    }

    /// A self-signed certificate on lab RSA key A.
    pub fn rsa_lab(names: &[&str]) -> Result<LabIdentity, IdentityError> {
        LabIdentity::self_signed(names, LAB_RSA_KEY_A, 1)
    }

    /// Uses a chain given from outside (e.g. the certificate in a real capture) with `key_pem`.
    pub fn with_chain(chain: Vec<Vec<u8>>, key_pem: &str) -> Result<LabIdentity, IdentityError> {
        Ok(LabIdentity { chain, key: signing_key(key_pem)?, key_pem: key_pem.to_string() })
    }

    /// A chain and key given as PEM (`--cert`, `--key`): the certificates in order, leaf first;
    /// the key in PKCS#8, PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, P-256), and it
    /// must be the leaf's.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<LabIdentity, IdentityError> {
        let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(cert_pem)
            .map(|cert| cert.map(|der| der.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| IdentityError::Certificate(format!("bad PEM: {e}")))?;
        let leaf = chain.first().ok_or_else(|| IdentityError::Certificate("no CERTIFICATE in it".to_owned()))?;
        let key_pem = pkcs8_pem(key_pem)?;
        let spki = KeyPair::from_pem(&key_pem)?.public_key_der();
        // The leaf carries its subject public key info in canonical DER.
        if !leaf.windows(spki.len().max(1)).any(|window| window == spki.as_slice()) {
            return Err(IdentityError::Key("the key is not the certificate's".to_owned()));
        }
        Ok(LabIdentity { chain: chain.clone(), key: signing_key(&key_pem)?, key_pem })
    }

    /// This installation's own identity: an RSA-2048 key generated on first use and kept in
    /// `dir` as [`INSTALLATION_KEY_FILE`] (mode 0600), reused after; a self-signed certificate for
    /// `names` on it. RSA so that clients offering only RSA key exchange are served too.
    pub fn per_installation(dir: &Path, names: &[&str]) -> Result<LabIdentity, IdentityError> {
        let path = dir.join(INSTALLATION_KEY_FILE);
        let key_pem = match std::fs::read(&path) {
            Ok(bytes) => {
                check_private(&path)?;
                pkcs8_pem(&bytes)?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => generate_installation_key(dir, &path)?,
            Err(error) => return Err(io_error(&path, &error)),
        };
        LabIdentity::self_signed(names, &key_pem, 1)
    }

    /// A self-signed certificate for `names` on a new RSA-2048 key that is kept nowhere (one
    /// run's own key).
    pub fn generate_rsa(names: &[&str]) -> Result<LabIdentity, IdentityError> {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| IdentityError::Key(e.to_string()))?;
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| IdentityError::Key(e.to_string()))?;
        LabIdentity::self_signed(names, &pem, 1)
    }

    pub fn is_rsa(&self) -> bool {
        matches!(self.key, SigningKey::Rsa(_))
    }
}

/// A small certificate authority for the demo: it issues the lab's certificates and publishes a
/// CRL signed with its key, so a revocation check can verify the CRL against it as a trust
/// anchor (`revocation check --ca-file`), as with a private PKI.
pub struct LabCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for LabCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabCa").finish_non_exhaustive()
    }
}

impl LabCa {
    /// A new CA named `name` on a fresh ECDSA P-256 key, valid from yesterday for a year.
    pub fn generate(name: &str) -> Result<LabCa, IdentityError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "bleedwatch lab");
        params.distinguished_name = dn;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let now = std::time::SystemTime::now();
        params.not_before = (now - std::time::Duration::from_secs(86_400)).into();
        params.not_after = (now + std::time::Duration::from_secs(365 * 86_400)).into();
        let cert = params.self_signed(&key)?;
        Ok(LabCa { cert, key })
    }

    /// The CA certificate, PEM (what `--ca-file` reads).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` on the PKCS#8 PEM key `key_pem`, with serial `serial`;
    /// the chain sent is the certificate and the CA's.
    pub fn issue(&self, names: &[&str], key_pem: &str, serial: u64) -> Result<LabIdentity, IdentityError> {
        let key_pair = KeyPair::from_pem(key_pem)?;
        let mut params = server_params(names, serial)?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let now = std::time::SystemTime::now();
        params.not_before = (now - std::time::Duration::from_secs(3_600)).into();
        params.not_after = (now + std::time::Duration::from_secs(180 * 86_400)).into();
        let cert = params.signed_by(&key_pair, &self.cert, &self.key)?;
        LabIdentity::with_chain(vec![cert.der().to_vec(), self.cert.der().to_vec()], key_pem)
    }

    /// A CRL (DER) listing `serials` as revoked for key compromise, current for a week.
    pub fn crl(&self, serials: &[u64]) -> Result<Vec<u8>, IdentityError> {
        let now = std::time::SystemTime::now();
        let params = rcgen::CertificateRevocationListParams {
            this_update: (now - std::time::Duration::from_secs(60)).into(),
            next_update: (now + std::time::Duration::from_secs(7 * 86_400)).into(),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()),
                    revocation_time: (now - std::time::Duration::from_secs(60)).into(),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.cert, &self.key)?.der().to_vec())
    }
}

/// Any supported private key PEM as PKCS#8 PEM (what rcgen and [`signing_key`] read).
fn pkcs8_pem(key_pem: &[u8]) -> Result<String, IdentityError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| IdentityError::Key(format!("bad PEM: {e}")))?;
    let pkcs8 = match key {
        PrivateKeyDer::Pkcs8(der) => der.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(der) => rsa::RsaPrivateKey::from_pkcs1_der(der.secret_pkcs1_der())
            .and_then(|key| key.to_pkcs8_der().map_err(rsa::pkcs1::Error::from))
            .map_err(|e| IdentityError::Key(format!("RSA PRIVATE KEY: {e}")))?
            .as_bytes()
            .to_vec(),
        PrivateKeyDer::Sec1(der) => p256::SecretKey::from_sec1_der(der.secret_sec1_der())
            .map_err(|e| IdentityError::Key(format!("EC PRIVATE KEY (P-256 only): {e}")))?
            .to_pkcs8_der()
            .map_err(|e| IdentityError::Key(e.to_string()))?
            .as_bytes()
            .to_vec(),
        _ => return Err(IdentityError::Key("unsupported key type".to_owned())),
    };
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// Generates the installation's key and writes it (0600, created under a temporary name and
/// renamed, so a half-written key is never read). Another process that won the race keeps its key.
fn generate_installation_key(dir: &Path, path: &Path) -> Result<String, IdentityError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| IdentityError::Key(e.to_string()))?;
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| IdentityError::Key(e.to_string()))?.to_string();
    let temporary = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| io_error(&temporary, &e))?;
    file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| io_error(&temporary, &e))?;
    drop(file);
    if path.exists() {
        let _ = std::fs::remove_file(&temporary);
        let bytes = std::fs::read(path).map_err(|e| io_error(path, &e))?;
        return pkcs8_pem(&bytes);
    }
    std::fs::rename(&temporary, path).map_err(|e| io_error(path, &e))?;
    Ok(pem)
}

/// A private key others can read is no longer this installation's alone.
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| io_error(path, &e))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::Io {
            path: path.display().to_string(),
            error: format!("private key readable by others (mode {:o}): chmod 600 it, or delete it to make a new one", mode & 0o777),
        });
    }
    Ok(())
}

fn io_error(path: &Path, error: &std::io::Error) -> IdentityError {
    IdentityError::Io { path: path.display().to_string(), error: error.to_string() }
}

fn signing_key(key_pem: &str) -> Result<SigningKey, IdentityError> {
    if let Ok(rsa_key) = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem) {
        return Ok(SigningKey::Rsa(Box::new(rsa_key)));
    }
    p256::ecdsa::SigningKey::from_pkcs8_pem(key_pem)
        .map(SigningKey::EcdsaP256)
        .map_err(|e| IdentityError::Key(format!("neither RSA nor ECDSA P-256 PKCS#8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_and_ecdsa_identities() {
        let rsa = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        assert!(rsa.is_rsa());
        assert_eq!(rsa.chain.len(), 1);
        let ec = LabIdentity::generate_ecdsa(&["lab.test"]).unwrap();
        assert!(!ec.is_rsa());
        // Reissuing the same key gives a different certificate.
        let again = LabIdentity::self_signed(&["localhost"], LAB_RSA_KEY_A, 2).unwrap();
        assert_ne!(again.chain[0], rsa.chain[0]);
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    #[test]
    fn identities_from_pem_files() {
        let lab = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let cert = pem("CERTIFICATE", &lab.chain[0]);
        let given = LabIdentity::from_pem(cert.as_bytes(), LAB_RSA_KEY_A.as_bytes()).unwrap();
        assert_eq!(given.chain, lab.chain);
        assert!(given.is_rsa());
        // PKCS#1 is read too.
        let pkcs1 = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&rsa::RsaPrivateKey::from_pkcs8_pem(LAB_RSA_KEY_A).unwrap()).unwrap();
        let pkcs1 = pem("RSA PRIVATE KEY", pkcs1.as_bytes());
        assert_eq!(LabIdentity::from_pem(cert.as_bytes(), pkcs1.as_bytes()).unwrap().chain, lab.chain);
        // Another key than the certificate's, or no certificate, is refused.
        assert!(matches!(LabIdentity::from_pem(cert.as_bytes(), LAB_RSA_KEY_B.as_bytes()), Err(IdentityError::Key(_))));
        assert!(LabIdentity::from_pem(b"", LAB_RSA_KEY_A.as_bytes()).is_err());
        assert!(LabIdentity::from_pem(cert.as_bytes(), b"not a key").is_err());
        let ec = LabIdentity::generate_ecdsa(&["lab.test"]).unwrap();
        let ec_cert = pem("CERTIFICATE", &ec.chain[0]);
        assert!(!LabIdentity::from_pem(ec_cert.as_bytes(), ec.key_pem.as_bytes()).unwrap().is_rsa());
    }
}
