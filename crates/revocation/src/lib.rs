#![forbid(unsafe_code)]
//! Revocation checks for certificates whose keys Heartbleed exposed. An answer counts only when
//! it is verified: `revoked` (and `good`) come from a CRL or OCSP response signed by the
//! certificate's issuer, the issuer itself tied to a trust anchor, and current; anything else is
//! `unknown` with the reason ([`UnknownReason`]), which never advances the response funnel.
//!
//! * [`trust`]: the issuer is the next certificate on a chain rustls-webpki builds from the exposed
//!   certificate to a trust anchor ([`TrustAnchors`]: the system roots or a CA file).
//! * [`check_crl`]: the CRL must be issued under the issuer's name, signed by its key, and current
//!   (thisUpdate not in the future, nextUpdate present and not passed, [`CLOCK_SKEW_SECONDS`]
//!   allowed either way); then is the serial on it?
//! * OCSP ([`ocsp::build_request`], [`ocsp::check_response`]): an RFC 6960 request (CertID with
//!   SHA-1 of the issuer's name and key, and always a nonce) POSTed to the responder from the
//!   certificate's AIA, or one given; the answer's signature (issuer or delegated responder),
//!   nonce, CertID and freshness are checked before its good / revoked / unknown is believed.
//! * [`check_certificate`] runs every applicable check for one certificate and returns one
//!   [`CheckOutcome`] per source, failures included (status `unknown` with the reason), so the
//!   caller can record each with its time.
//!
//! Only plain `http://` is fetched: these URLs are HTTP by design and their content is signed.
//! The URLs come from certificates seen on the network; they are fetched only when the user asks
//! for a revocation check.

pub mod crl;
pub mod http;
pub mod ocsp;
pub mod trust;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crl::check_crl;
pub use http::HttpOptions;
pub use ocsp::{build_request, check_response, OcspQuery};
pub use trust::{verify_issuer, TrustAnchors, TrustedIssuer};

/// Clock difference tolerated between us and a CRL issuer or OCSP responder, either way.
pub const CLOCK_SKEW_SECONDS: i64 = 300;

/// Why a check could not give a verified answer.
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
    #[error("the CRL is issued by \"{0}\", not by the certificate's issuer")]
    CrlIssuer(String),
    #[error("CRL signature does not verify with the issuer's key: {0}")]
    CrlSignature(String),
    #[error("stale CRL: {0}")]
    CrlStale(String),
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
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
    #[error("OCSP response without our nonce, and not fresh enough to stand without it: {0}")]
    OcspNonceMissing(String),
    #[error("OCSP response time: {0}")]
    OcspTime(String),
    #[error("bad serial number {0}")]
    Serial(String),
    #[error("issuer not verified: {0}")]
    Untrusted(String),
    #[error("the issuer was verified for another certificate")]
    IssuerMismatch,
    #[error("encoding: {0}")]
    Encoding(String),
}

impl RevocationError {
    /// The reason recorded with the `unknown` this error leaves.
    pub fn unknown_reason(&self) -> UnknownReason {
        match self {
            RevocationError::UnsupportedUrl(_) | RevocationError::Http(_) | RevocationError::TooLarge(_) => {
                UnknownReason::FetchFailed
            }
            RevocationError::File { .. } => UnknownReason::FetchFailed,
            RevocationError::MalformedCrl(_)
            | RevocationError::MalformedCertificate(_)
            | RevocationError::MalformedOcsp(_)
            | RevocationError::Serial(_)
            | RevocationError::Encoding(_) => UnknownReason::Malformed,
            RevocationError::CrlIssuer(_) | RevocationError::OcspNoMatch => UnknownReason::NotForThisCertificate,
            RevocationError::CrlSignature(_) | RevocationError::OcspSignature(_) => UnknownReason::Signature,
            RevocationError::CrlStale(_) | RevocationError::OcspTime(_) => UnknownReason::Stale,
            RevocationError::OcspStatus(_) => UnknownReason::ResponderError,
            RevocationError::OcspNonce => UnknownReason::NonceMismatch,
            RevocationError::OcspNonceMissing(_) => UnknownReason::NonceMissing,
            RevocationError::Untrusted(_) | RevocationError::IssuerMismatch => UnknownReason::NoIssuer,
        }
    }
}

/// Why a check says `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownReason {
    /// No issuer certificate chained to a trust anchor: nothing to verify an answer with.
    NoIssuer,
    /// Signed by a key that is not the issuer's (nor a responder it delegated to).
    Signature,
    /// Past its nextUpdate, without one, or dated in the future.
    Stale,
    /// An OCSP answer without our nonce and older than the clock-skew allowance.
    NonceMissing,
    /// An OCSP answer carrying another request's nonce: replayed.
    NonceMismatch,
    /// The OCSP responder answered with an error status (tryLater, unauthorized, …).
    ResponderError,
    /// The OCSP responder does not know the certificate (certStatus unknown).
    ResponderUnknown,
    /// A CRL of another issuer, or an OCSP answer about other certificates.
    NotForThisCertificate,
    /// The CRL or answer could not be fetched or read.
    FetchFailed,
    /// Not a well-formed CRL, OCSP response or certificate.
    Malformed,
}

impl UnknownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownReason::NoIssuer => "no-issuer",
            UnknownReason::Signature => "signature",
            UnknownReason::Stale => "stale",
            UnknownReason::NonceMissing => "nonce-missing",
            UnknownReason::NonceMismatch => "nonce-mismatch",
            UnknownReason::ResponderError => "responder-error",
            UnknownReason::ResponderUnknown => "responder-unknown",
            UnknownReason::NotForThisCertificate => "not-for-this-certificate",
            UnknownReason::FetchFailed => "fetch-failed",
            UnknownReason::Malformed => "malformed",
        }
    }
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

/// What a check concluded. `Good` and `Revoked` are verified answers; `Unknown` comes with an
/// [`UnknownReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Good,
    Revoked,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Good => "good",
            Status::Revoked => "revoked",
            Status::Unknown => "unknown",
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
    /// Set exactly when the status is `unknown`.
    pub unknown_reason: Option<UnknownReason>,
    pub detail: String,
}

impl Finding {
    fn unknown(why: UnknownReason, detail: String) -> Finding {
        Finding { status: Status::Unknown, revoked_at_unix: None, reason: None, unknown_reason: Some(why), detail }
    }
}

impl From<RevocationError> for Finding {
    fn from(error: RevocationError) -> Finding {
        Finding::unknown(error.unknown_reason(), error.to_string())
    }
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
    pub unknown_reason: Option<UnknownReason>,
    pub detail: String,
    pub checked_at_ms: i64,
}

/// Runs every applicable check for `cert`: each CRL source and each OCSP responder. `issuer` is
/// the certificate's verified issuer ([`verify_issuer`]), or why there is none: then every check
/// is `unknown` (`no-issuer`) without fetching anything, since no answer could be verified.
/// Returns nothing when the certificate names no CRL or OCSP location and none was given.
pub async fn check_certificate(
    cert: &CertificateRef,
    issuer: &Result<TrustedIssuer, RevocationError>,
    options: &CheckOptions,
) -> Vec<CheckOutcome> {
    let issuer = match issuer {
        Ok(issuer) if issuer.leaf_sha256() != cert.cert_sha256.to_ascii_lowercase() => Err(RevocationError::IssuerMismatch),
        Ok(issuer) => Ok(issuer),
        Err(error) => Err(error.clone()),
    };
    let mut outcomes = Vec::new();
    if options.use_crl {
        let sources = options
            .crl_sources
            .clone()
            .unwrap_or_else(|| cert.crl_urls.iter().map(|url| CrlSource::Url(url.clone())).collect());
        for source in sources {
            let result = match &issuer {
                Ok(issuer) => match load_crl(&source, &options.http).await {
                    Ok(bytes) => check_crl(&bytes, &cert.serial, issuer, now_unix()),
                    Err(error) => Err(error),
                },
                Err(error) => Err(error.clone()),
            };
            outcomes.push(outcome(cert, Method::Crl, source.describe(), result));
        }
    }
    if options.use_ocsp {
        let urls = options.ocsp_urls.clone().unwrap_or_else(|| cert.ocsp_urls.clone());
        for url in urls {
            let result = match &issuer {
                Ok(issuer) => query_ocsp(&url, issuer, &cert.serial, &options.http).await,
                Err(error) => Err(error.clone()),
            };
            outcomes.push(outcome(cert, Method::Ocsp, url, result));
        }
    }
    outcomes
}

/// Asks the responder at `url` about the certificate with serial `serial` issued by `issuer`,
/// with a fresh random nonce.
pub async fn query_ocsp(url: &str, issuer: &TrustedIssuer, serial: &str, options: &HttpOptions) -> Result<Finding, RevocationError> {
    let nonce: [u8; 16] = rand::random();
    let query = build_request(issuer.der(), serial, &nonce)?;
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

/// Every certificate at the certificate's CA-issuers URLs (DER or PEM; PKCS#7 bundles are not
/// read). Fetched over plain HTTP, so they are only candidates for [`verify_issuer`].
pub async fn fetch_ca_issuers(cert: &CertificateRef, options: &HttpOptions) -> Result<Vec<Vec<u8>>, RevocationError> {
    let mut found = Vec::new();
    let mut last_error = None;
    for url in &cert.ca_issuer_urls {
        match http::get(url, options.max_small_bytes, options).await {
            Ok(bytes) => found.extend(certificates_from_pem_or_der(&bytes)),
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error) if found.is_empty() => Err(error),
        _ => Ok(found),
    }
}

/// The verified issuer of `leaf_der` from `candidates`, else (when that fails and the
/// certificate names CA-issuer URLs) from the candidates plus what those URLs serve.
pub async fn resolve_issuer(
    cert: &CertificateRef,
    leaf_der: &[u8],
    candidates: &[Vec<u8>],
    anchors: &TrustAnchors,
    options: &HttpOptions,
) -> Result<TrustedIssuer, RevocationError> {
    let first = verify_issuer(leaf_der, candidates, anchors, now_unix());
    if first.is_ok() || cert.ca_issuer_urls.is_empty() {
        return first;
    }
    let mut more = candidates.to_vec();
    match fetch_ca_issuers(cert, options).await {
        Ok(fetched) => more.extend(fetched),
        Err(error) => return first.map_err(|e| RevocationError::Untrusted(format!("{e}; CA-issuers URL: {error}"))),
    }
    verify_issuer(leaf_der, &more, anchors, now_unix())
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

fn outcome(cert: &CertificateRef, method: Method, source: String, result: Result<Finding, RevocationError>) -> CheckOutcome {
    let finding = result.unwrap_or_else(Finding::from);
    CheckOutcome {
        cert_sha256: cert.cert_sha256.clone(),
        method,
        source,
        status: finding.status,
        revoked_at_unix: finding.revoked_at_unix,
        reason: finding.reason,
        unknown_reason: finding.unknown_reason,
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

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
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
    }
}
