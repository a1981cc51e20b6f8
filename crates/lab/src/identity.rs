//! The certificate chain and private key a lab server presents.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rsa::pkcs8::DecodePrivateKey;

/// Committed lab RSA keys (see `keys/README.md`): public, for tests and the demo only.
pub const LAB_RSA_KEY_A: &str = include_str!("keys/lab-rsa-a.pem");
pub const LAB_RSA_KEY_B: &str = include_str!("keys/lab-rsa-b.pem");

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("unusable private key: {0}")]
    Key(String),
}

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

impl LabIdentity {
    /// A self-signed certificate for `names` on the given PKCS#8 PEM key (RSA or ECDSA P-256).
    /// `serial` distinguishes reissues of the same key.
    pub fn self_signed(names: &[&str], key_pem: &str, serial: u64) -> Result<LabIdentity, IdentityError> {
        let key_pair = KeyPair::from_pem(key_pem)?;
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().copied().unwrap_or("localhost"));
        dn.push(DnType::OrganizationName, "bleedwatch lab");
        params.distinguished_name = dn;
        params.serial_number = Some(rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
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

    pub fn is_rsa(&self) -> bool {
        matches!(self.key, SigningKey::Rsa(_))
    }
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
}
