#![forbid(unsafe_code)]
//! Revocation checks for certificates whose keys Heartbleed exposed.
//!
//! * [`check_crl`]: is the serial on the issuer's CRL (fetched from the certificate's CRL
//!   distribution point over HTTP, or read from a file)? The CRL's signature is verified with the
//!   issuer's key when the issuer certificate is known.
//! * OCSP ([`ocsp::build_request`], [`ocsp::check_response`]): an RFC 6960 request (CertID with
//!   SHA-1 of the issuer's name and key, and a nonce) POSTed to the responder from the
//!   certificate's AIA, or one given; the answer's signature (issuer or delegated responder),
//!   nonce, CertID and freshness are checked before its good / revoked / unknown is believed.
//! * [`check_certificate`] runs every applicable check for one certificate and returns one
//!   [`CheckOutcome`] per source, failures included (status `error` with the reason), so the
//!   caller can record each with its time.
//!
//! Only plain `http://` is fetched: these URLs are HTTP by design and their content is signed.
//! The URLs come from certificates seen on the network; they are fetched only when the user asks
//! for a revocation check.

pub mod crl;
pub mod http;
pub mod ocsp;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crl::check_crl;
pub use http::HttpOptions;
pub use ocsp::{build_request, check_response, OcspQuery};

/// Why a check could not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("only http:// URLs are fetched: {0}")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Http(String),
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    #[error("cannot read {path}: {error}")]
    File { path: String, error: String },
    #[error("malformed CRL: {0}")]
    MalformedCrl(String),
    #[error("CRL signature does not verify with the issuer's key: {0}")]
    CrlSignature(String),
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    #[error("the issuer certificate given is for \"{0}\", not the certificate's issuer")]
    WrongIssuer(String),
    #[error("malformed OCSP response: {0}")]
    MalformedOcsp(String),
    #[error("OCSP responder refused: {0}")]
    OcspStatus(String),
    #[error("OCSP response signature: {0}")]
    OcspSignature(String),
    #[error("OCSP response does not answer for this certificate")]
    OcspNoMatch,
    #[error("OCSP response nonce does not match the request (replayed answer?)")]
    OcspNonce,
    #[error("OCSP response time: {0}")]
    OcspTime(String),
    #[error("bad serial number {0}")]
    Serial(String),
    #[error("the issuer certificate is needed (give it, or it must be at the certificate's CA-issuers URL)")]
    NoIssuer,
    #[error("encoding: {0}")]
    Encoding(String),
}

/// How the status was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Crl,
    Ocsp,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Crl => "crl",
            Method::Ocsp => "ocsp",
        }
    }
}

/// What a check concluded. `Error` means no conclusion (see the detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Good,
    Revoked,
    Unknown,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Good => "good",
            Status::Revoked => "revoked",
            Status::Unknown => "unknown",
            Status::Error => "error",
        }
    }
}

/// The conclusion of one CRL or OCSP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    pub revoked_at_unix: Option<i64>,
    /// RFC 5280 reason name (`keyCompromise`, ...), when given.
    pub reason: Option<String>,
    pub detail: String,
}

/// What a check needs to know about a certificate (all in bleedwatch's certificate summary).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateRef {
    pub cert_sha256: String,
    /// Serial, lowercase hex without leading zero bytes.
    pub serial: String,
    /// Issuer DN as the summary writes it.
    pub issuer: String,
    pub crl_urls: Vec<String>,
    pub ocsp_urls: Vec<String>,
    pub ca_issuer_urls: Vec<String>,
}

/// Where a CRL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlSource {
    Url(String),
    File(PathBuf),
}

impl CrlSource {
    /// `http://…` is a URL, anything else a file path.
    pub fn parse(text: &str) -> CrlSource {
        if text.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) || text.contains("://") {
            CrlSource::Url(text.to_owned())
        } else {
            CrlSource::File(PathBuf::from(text))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CrlSource::Url(url) => url.clone(),
            CrlSource::File(path) => path.display().to_string(),
        }
    }
}

/// Which checks to run.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Replaces the certificate's CRL distribution points.
    pub crl_sources: Option<Vec<CrlSource>>,
    /// Replaces the certificate's OCSP responders.
    pub ocsp_urls: Option<Vec<String>>,
    pub use_crl: bool,
    pub use_ocsp: bool,
    pub http: HttpOptions,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { crl_sources: None, ocsp_urls: None, use_crl: true, use_ocsp: true, http: HttpOptions::default() }
    }
}

/// One check of one certificate, ready to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub cert_sha256: String,
    pub method: Method,
    /// The URL or file the answer came from.
    pub source: String,
    pub status: Status,
    pub revoked_at_unix: Option<i64>,
    pub reason: Option<String>,
    pub detail: String,
    pub checked_at_ms: i64,
}

/// Runs every applicable check for `cert`: each CRL source and each OCSP responder.
/// `issuer_der` is the issuer's certificate (needed for OCSP, and to verify CRL signatures).
/// Returns nothing when the certificate names no CRL or OCSP location and none was given.
pub async fn check_certificate(cert: &CertificateRef, issuer_der: Option<&[u8]>, options: &CheckOptions) -> Vec<CheckOutcome> {
    let mut outcomes = Vec::new();
    if options.use_crl {
        let sources = options
            .crl_sources
            .clone()
            .unwrap_or_else(|| cert.crl_urls.iter().map(|url| CrlSource::Url(url.clone())).collect());
        for source in sources {
            let result = match load_crl(&source, &options.http).await {
                Ok(bytes) => check_crl(&bytes, &cert.serial, &cert.issuer, issuer_der, now_unix()),
                Err(error) => Err(error),
            };
            outcomes.push(outcome(cert, Method::Crl, source.describe(), result));
        }
    }
    if options.use_ocsp {
        let urls = options.ocsp_urls.clone().unwrap_or_else(|| cert.ocsp_urls.clone());
        for url in urls {
            let result = match issuer_der {
                Some(issuer) => match check_issuer(issuer, &cert.issuer) {
                    Ok(()) => query_ocsp(&url, issuer, &cert.serial, &options.http).await,
                    Err(error) => Err(error),
                },
                None => Err(RevocationError::NoIssuer),
            };
            outcomes.push(outcome(cert, Method::Ocsp, url, result));
        }
    }
    outcomes
}

/// Asks the responder at `url` about the certificate with serial `serial` issued by `issuer_der`.
pub async fn query_ocsp(url: &str, issuer_der: &[u8], serial: &str, options: &HttpOptions) -> Result<Finding, RevocationError> {
    let nonce: [u8; 16] = rand::random();
    let query = build_request(issuer_der, serial, &nonce)?;
    let answer = http::post(url, "application/ocsp-request", query.request_der.clone(), options.max_small_bytes, options).await?;
    check_response(&answer, &query, now_unix())
}

/// Reads a CRL from its source.
pub async fn load_crl(source: &CrlSource, options: &HttpOptions) -> Result<Vec<u8>, RevocationError> {
    match source {
        CrlSource::Url(url) => http::get(url, options.max_crl_bytes, options).await,
        CrlSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| RevocationError::File { path: path.display().to_string(), error: e.to_string() }),
    }
}

/// Fetches the issuer certificate from the certificate's CA-issuers URLs (DER or PEM; PKCS#7
/// bundles are not read). The first certificate whose subject is the certificate's issuer wins.
pub async fn fetch_issuer(cert: &CertificateRef, options: &HttpOptions) -> Result<Vec<u8>, RevocationError> {
    let mut last_error = RevocationError::NoIssuer;
    for url in &cert.ca_issuer_urls {
        match http::get(url, options.max_small_bytes, options).await {
            Ok(bytes) => match select_issuer(cert, &certificates_from_pem_or_der(&bytes)) {
                Some(der) => return Ok(der.to_vec()),
                None => last_error = RevocationError::MalformedCertificate(format!("{url}: no certificate for \"{}\"", cert.issuer)),
            },
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// Every certificate in a PEM bundle, or the single DER certificate given.
pub fn certificates_from_pem_or_der(bytes: &[u8]) -> Vec<Vec<u8>> {
    if !looks_like_pem(bytes) {
        return if bytes.is_empty() { Vec::new() } else { vec![bytes.to_vec()] };
    }
    x509_parser::pem::Pem::iter_from_buffer(bytes)
        .filter_map(Result::ok)
        .filter(|pem| pem.label == "CERTIFICATE")
        .map(|pem| pem.contents)
        .collect()
}

/// The candidate whose subject is `cert`'s issuer.
pub fn select_issuer<'a>(cert: &CertificateRef, candidates: &'a [Vec<u8>]) -> Option<&'a [u8]> {
    candidates.iter().map(Vec::as_slice).find(|der| {
        crl::parse_certificate(der).is_ok_and(|candidate| candidate.subject().to_string() == cert.issuer)
    })
}

/// The issuer certificate must be the one named by the certificate: with another, an OCSP
/// responder would answer "unknown" for a question nobody asked.
fn check_issuer(issuer_der: &[u8], expected_subject: &str) -> Result<(), RevocationError> {
    let issuer = crl::parse_certificate(issuer_der)?;
    let subject = issuer.subject().to_string();
    if subject == expected_subject {
        Ok(())
    } else {
        Err(RevocationError::WrongIssuer(subject))
    }
}

fn outcome(cert: &CertificateRef, method: Method, source: String, result: Result<Finding, RevocationError>) -> CheckOutcome {
    let finding = result.unwrap_or_else(|error| Finding {
        status: Status::Error,
        revoked_at_unix: None,
        reason: None,
        detail: error.to_string(),
    });
    CheckOutcome {
        cert_sha256: cert.cert_sha256.clone(),
        method,
        source,
        status: finding.status,
        revoked_at_unix: finding.revoked_at_unix,
        reason: finding.reason,
        detail: finding.detail,
        checked_at_ms: now_ms(),
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    bytes.get(start..).is_some_and(|rest| rest.starts_with(b"-----BEGIN"))
}

/// The DER inside a PEM block labelled `label`, or the input when it is not PEM.
pub(crate) fn pem_or_der(bytes: &[u8], label: &str) -> Result<Vec<u8>, String> {
    if !looks_like_pem(bytes) {
        return Ok(bytes.to_vec());
    }
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("bad PEM: {e}"))?;
        if pem.label == label {
            return Ok(pem.contents);
        }
    }
    Err(format!("no \"{label}\" PEM block"))
}

/// Lowercase hex without leading zero bytes (as bleedwatch's certificate summary writes serials).
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    match raw.iter().position(|&b| b != 0) {
        Some(first) => hex::encode(raw.get(first..).unwrap_or(raw)),
        None => "00".to_owned(),
    }
}

pub(crate) const REMOVE_FROM_CRL: u8 = 8;

/// RFC 5280 §5.3.1 reason names.
pub(crate) fn reason_name(code: u8) -> String {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        other => return format!("reason {other}"),
    }
    .to_owned()
}

fn now_unix() -> i64 {
    now_ms() / 1000
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_match_the_summary_spelling() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
    }

    #[test]
    fn crl_sources_are_urls_or_files() {
        assert_eq!(CrlSource::parse("http://ca/x.crl"), CrlSource::Url("http://ca/x.crl".into()));
        assert_eq!(CrlSource::parse("https://ca/x.crl"), CrlSource::Url("https://ca/x.crl".into()));
        assert_eq!(CrlSource::parse("ca/x.crl"), CrlSource::File("ca/x.crl".into()));
    }

    #[test]
    fn reason_names_follow_rfc_5280() {
        assert_eq!(reason_name(1), "keyCompromise");
        assert_eq!(reason_name(7), "reason 7");
    }

    #[test]
    fn pem_detection_and_garbage() {
        assert_eq!(pem_or_der(b"\x30\x00", "X509 CRL").ok(), Some(vec![0x30, 0x00]));
        assert!(pem_or_der(b"-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n", "X509 CRL").is_err());
        assert!(certificates_from_pem_or_der(b"").is_empty());
        assert!(check_crl(b"garbage", "01", "CN=x", None, 0).is_err());
    }
}
