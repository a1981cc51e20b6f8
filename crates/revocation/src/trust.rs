//! Whose signature a revocation answer needs, and why we believe that key: the issuer is the
//! certificate one step up a chain that rustls-webpki builds from the exposed certificate to a
//! trust anchor (the system's roots, or the CA file given for a private PKI). A certificate with
//! the right subject name proves nothing; one fetched over plain HTTP (AIA) is only a candidate
//! until such a chain goes through it.

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use webpki::{anchor_from_trusted_cert, EndEntityCert, KeyUsage, ALL_VERIFICATION_ALGS};

use crate::crl::parse_certificate;
use crate::{certificates_from_pem_or_der, RevocationError};

/// The certificates the user trusts to say who issued what.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    certs: Vec<Vec<u8>>,
    /// Where they came from (`the system roots`, a file name), for messages.
    origin: String,
}

impl TrustAnchors {
    /// The certificates of a PEM bundle or one DER certificate (`--ca-file`); each must be
    /// usable as an anchor.
    pub fn from_pem_or_der(bytes: &[u8], origin: &str) -> Result<TrustAnchors, RevocationError> {
        let certs = certificates_from_pem_or_der(bytes);
        if certs.is_empty() {
            return Err(RevocationError::MalformedCertificate(format!("{origin}: no certificate in it")));
        }
        for der in &certs {
            let der_ref = CertificateDer::from(der.as_slice());
            anchor_from_trusted_cert(&der_ref).map_err(|e| RevocationError::MalformedCertificate(format!("{origin}: {e}")))?;
        }
        Ok(TrustAnchors { certs, origin: origin.to_owned() })
    }

    /// The operating system's roots (rustls-native-certs: `/etc/ssl/certs` on Debian, or
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`). Certificates that cannot serve as anchors are skipped.
    pub fn system() -> TrustAnchors {
        let loaded = rustls_native_certs::load_native_certs();
        let certs = loaded
            .certs
            .into_iter()
            .filter(|der| anchor_from_trusted_cert(der).is_ok())
            .map(|der| der.as_ref().to_vec())
            .collect();
        TrustAnchors { certs, origin: "the system roots".to_owned() }
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The issuer of one certificate, verified: its signature on the certificate checks out and a
/// chain leads from it to a trust anchor. Only [`verify_issuer`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    leaf_sha256: String,
    der: Vec<u8>,
    path: String,
}

impl TrustedIssuer {
    /// The issuer certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 (hex) of the certificate this issuer was verified for.
    pub fn leaf_sha256(&self) -> &str {
        &self.leaf_sha256
    }

    /// The verified chain, for the record: `issuer ← … ← anchor`.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Builds the chain of `leaf_der` to one of `anchors` through `candidates` (the intermediates
/// the server sent, given issuer files, CA-issuer downloads: any order, extras ignored), valid
/// at `now_unix`, and returns the leaf's issuer on it (an intermediate, or the anchor itself).
pub fn verify_issuer(
    leaf_der: &[u8],
    candidates: &[Vec<u8>],
    anchors: &TrustAnchors,
    now_unix: i64,
) -> Result<TrustedIssuer, RevocationError> {
    if anchors.is_empty() {
        return Err(RevocationError::Untrusted(format!("no trust anchors in {}", anchors.origin)));
    }
    let leaf = CertificateDer::from(leaf_der);
    let end_entity = EndEntityCert::try_from(&leaf).map_err(|e| RevocationError::MalformedCertificate(e.to_string()))?;
    let anchor_ders: Vec<CertificateDer<'_>> = anchors.certs.iter().map(|der| CertificateDer::from(der.as_slice())).collect();
    let trust_anchors: Vec<TrustAnchor<'_>> = anchor_ders.iter().filter_map(|der| anchor_from_trusted_cert(der).ok()).collect();
    let intermediates: Vec<CertificateDer<'_>> = candidates.iter().map(|der| CertificateDer::from(der.as_slice())).collect();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(now_unix).unwrap_or(0)));
    let path = end_entity
        .verify_for_usage(ALL_VERIFICATION_ALGS, &trust_anchors, &intermediates, time, KeyUsage::server_auth(), None, None)
        .map_err(|e| RevocationError::Untrusted(format!("no chain to {} ({e:?})", anchors.origin)))?;
    let mut names: Vec<String> = path.intermediate_certificates().map(|cert| subject_text(cert.der().as_ref())).collect();
    let anchor = path.anchor();
    let anchor_der = anchor_ders
        .iter()
        .find(|der| {
            anchor_from_trusted_cert(der)
                .is_ok_and(|t| t.subject == anchor.subject && t.subject_public_key_info == anchor.subject_public_key_info)
        })
        .map(|der| der.as_ref().to_vec())
        .ok_or_else(|| RevocationError::Untrusted("the anchor of the chain is not among the anchors".to_owned()))?;
    names.push(format!("{} (anchor, {})", subject_text(&anchor_der), anchors.origin));
    let issuer_der = match path.intermediate_certificates().next() {
        Some(issuer) => issuer.der().as_ref().to_vec(),
        None => anchor_der,
    };
    Ok(TrustedIssuer { leaf_sha256: hex::encode(Sha256::digest(leaf_der)), der: issuer_der, path: names.join(" ← ") })
}

fn subject_text(der: &[u8]) -> String {
    parse_certificate(der).map(|cert| cert.subject().to_string()).unwrap_or_else(|_| "?".to_owned())
}
