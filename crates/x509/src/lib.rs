#![forbid(unsafe_code)]
//! Certificate summaries for bleedwatch's scan output and inventory.
//!
//! This crate is pure: it takes DER bytes (as found in a TLS `Certificate`
//! message) and returns a [`CertSummary`] with owned, serialisable fields.
//! Parsing is done by `x509-parser`; none of its (or `nom`'s) types leak out
//! of this crate's API.
//!
//! Text taken from the certificate (subject, issuer, SANs, URLs) is kept
//! exactly as the certificate states it, hostile content included: callers
//! that render it (HTML, terminals) must escape it themselves.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error as ParserError;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS,
    OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS, OID_PKIX_ACCESS_DESCRIPTOR_OCSP, OID_SIG_ED25519,
    OID_SIG_ED448,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::{PublicKey, RSAPublicKey};
use x509_parser::time::ASN1Time;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a certificate could not be summarised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// No bytes at all.
    #[error("empty certificate")]
    Empty,
    /// The input ends before the length its outer DER header declares.
    #[error("truncated certificate DER")]
    Truncated,
    /// The bytes are not a well-formed X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// A complete certificate was followed by extra bytes. A TLS
    /// `Certificate` entry holds exactly one certificate, so this is rejected
    /// rather than silently ignored.
    #[error("{0} trailing bytes after the certificate")]
    TrailingData(usize),
    /// A validity date cannot be written as RFC 3339 (year outside 0..=9999).
    #[error("validity date out of range: {0}")]
    DateOutOfRange(i64),
}

pub use bleedwatch_verdict::CertSummary;

/// Summarise one DER-encoded certificate.
///
/// Any input is accepted: malformed, truncated or trailing-garbage DER gives
/// an [`X509Error`], never a panic. Extensions whose contents cannot be parsed
/// are skipped rather than failing the whole summary, so that a scan still
/// reports what it can about odd certificates.
pub fn summarize(der: &[u8]) -> Result<CertSummary, X509Error> {
    if der.is_empty() {
        return Err(X509Error::Empty);
    }
    if declares_more_than(der) {
        return Err(X509Error::Truncated);
    }
    let (rest, cert) = X509Certificate::from_der(der).map_err(map_parse_error)?;
    if !rest.is_empty() {
        return Err(X509Error::TrailingData(rest.len()));
    }

    let validity = cert.validity();
    let not_before_unix = validity.not_before.timestamp();
    let not_after_unix = validity.not_after.timestamp();
    let (key_type, key_bits) = describe_key(cert.public_key());
    let names = extension_names(&cert);

    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: serial_hex(cert.raw_serial()),
        sans: names.sans,
        not_before: rfc3339(&validity.not_before)?,
        not_after: rfc3339(&validity.not_after)?,
        not_before_unix,
        not_after_unix,
        spki_sha256: sha256_hex(cert.public_key().raw),
        cert_sha256: sha256_hex(der),
        key_type,
        key_bits,
        signature_algorithm: oid_name(&cert.signature_algorithm.algorithm),
        self_signed: is_self_signed(&cert),
        crl_urls: names.crl_urls,
        ocsp_urls: names.ocsp_urls,
        ca_issuer_urls: names.ca_issuer_urls,
        der: base64::engine::general_purpose::STANDARD.encode(der),
    })
}

/// Summarise every certificate of a chain (leaf first, as sent by a server).
///
/// Returns one result per input certificate, in the same order, so a single
/// malformed intermediate does not hide the summaries of the others.
pub fn summarize_chain<C: AsRef<[u8]>>(chain: &[C]) -> Vec<Result<CertSummary, X509Error>> {
    chain.iter().map(|der| summarize(der.as_ref())).collect()
}

/// Fuzzing entry point (`fuzz/fuzz_targets/x509_summary.rs`): a certificate as a server sent it.
pub fn fuzz_summarize(data: &[u8]) {
    let _ = summarize(data);
}

/// Whether the outer DER element (or its header) claims more bytes than
/// `der` holds, i.e. the input was cut short rather than garbled.
fn declares_more_than(der: &[u8]) -> bool {
    use x509_parser::der_parser::asn1_rs::{FromDer as _, Header, Length};
    match Header::from_der(der) {
        Ok((content, header)) => match header.length() {
            Length::Definite(declared) => content.len() < declared,
            Length::Indefinite => false,
        },
        Err(x509_parser::nom::Err::Incomplete(_)) => true,
        Err(_) => false,
    }
}

/// Called only once the outer element is known to be complete, so an
/// "incomplete" report here means inner lengths disagree: malformed.
fn map_parse_error(error: x509_parser::nom::Err<ParserError>) -> X509Error {
    match error {
        x509_parser::nom::Err::Incomplete(_) => {
            X509Error::Malformed("inner element overruns the certificate".to_owned())
        }
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
            X509Error::Malformed(e.to_string())
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn serial_hex(raw: &[u8]) -> String {
    // DER adds a 0x00 byte in front of serials whose top bit is set; people
    // (and openssl) write the number without it.
    let significant = match raw.iter().position(|&byte| byte != 0) {
        Some(first) => raw.get(first..).unwrap_or(raw),
        None => return "00".to_owned(),
    };
    hex::encode(significant)
}

fn rfc3339(time: &ASN1Time) -> Result<String, X509Error> {
    let seconds = time.timestamp();
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|utc| utc.format(&Rfc3339).ok())
        .ok_or(X509Error::DateOutOfRange(seconds))
}

fn oid_name(oid: &x509_parser::der_parser::oid::Oid) -> String {
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map(str::to_owned)
        .unwrap_or_else(|_| oid.to_id_string())
}

fn describe_key(spki: &SubjectPublicKeyInfo) -> (String, Option<u32>) {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION || *algorithm == OID_PKCS1_RSASSAPSS {
        let name = if *algorithm == OID_PKCS1_RSAENCRYPTION {
            "rsa"
        } else {
            "rsa-pss"
        };
        // Parse the RSAPublicKey directly: PSS keys are not decoded by `parsed()`.
        let bits = RSAPublicKey::from_der(&spki.subject_public_key.data)
            .ok()
            .and_then(|(_, key)| unsigned_bit_length(key.modulus));
        return (name.to_owned(), bits);
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve_bits = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|params| params.as_oid().ok())
            .and_then(|curve| named_curve_bits(&curve.to_id_string()));
        let bits = curve_bits.or_else(|| match spki.parsed() {
            Ok(PublicKey::EC(point)) => u32::try_from(point.key_size()).ok().filter(|&b| b > 0),
            _ => None,
        });
        return ("ec".to_owned(), bits);
    }
    if *algorithm == OID_SIG_ED25519 {
        return ("ed25519".to_owned(), Some(256));
    }
    if *algorithm == OID_SIG_ED448 {
        return ("ed448".to_owned(), Some(448));
    }
    if *algorithm == OID_KEY_TYPE_DSA {
        // The DSA key size is that of p, in the algorithm parameters
        // (Dss-Parms ::= SEQUENCE { p, q, g }); the SPKI only holds y.
        let bits = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|params| dsa_p_bits(params.data));
        return ("dsa".to_owned(), bits);
    }
    (algorithm.to_id_string(), None)
}

fn named_curve_bits(curve_oid: &str) -> Option<u32> {
    match curve_oid {
        "1.2.840.10045.3.1.7" => Some(256),   // P-256
        "1.3.132.0.34" => Some(384),          // P-384
        "1.3.132.0.35" => Some(521),          // P-521
        "1.3.132.0.10" => Some(256),          // secp256k1
        "1.2.840.10045.3.1.1" => Some(192),   // P-192
        "1.3.132.0.33" => Some(224),          // P-224
        "1.3.36.3.3.2.8.1.1.7" => Some(256),  // brainpoolP256r1
        "1.3.36.3.3.2.8.1.1.11" => Some(384), // brainpoolP384r1
        "1.3.36.3.3.2.8.1.1.13" => Some(512), // brainpoolP512r1
        _ => None,
    }
}

fn dsa_p_bits(params_content: &[u8]) -> Option<u32> {
    // `params_content` is the inside of the Dss-Parms SEQUENCE; p comes first.
    let (_, p) = x509_parser::der_parser::der::parse_der_integer(params_content).ok()?;
    unsigned_bit_length(p.as_slice().ok()?)
}

/// Bit length of a big-endian unsigned integer, ignoring leading zero bytes.
fn unsigned_bit_length(big_endian: &[u8]) -> Option<u32> {
    let first = big_endian.iter().position(|&byte| byte != 0)?;
    let significant = big_endian.get(first..)?;
    let top = *significant.first()?;
    let bytes = u32::try_from(significant.len()).ok()?;
    bytes.checked_mul(8)?.checked_sub(top.leading_zeros())
}

#[derive(Default)]
struct ExtensionNames {
    sans: Vec<String>,
    crl_urls: Vec<String>,
    ocsp_urls: Vec<String>,
    ca_issuer_urls: Vec<String>,
}

fn extension_names(cert: &X509Certificate<'_>) -> ExtensionNames {
    let mut names = ExtensionNames::default();
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                names
                    .sans
                    .extend(san.general_names.iter().filter_map(san_text));
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for point in points.iter() {
                    if let Some(DistributionPointName::FullName(full_names)) =
                        &point.distribution_point
                    {
                        names
                            .crl_urls
                            .extend(full_names.iter().filter_map(uri_text));
                    }
                }
            }
            ParsedExtension::AuthorityInfoAccess(access) => {
                for description in access.iter() {
                    let Some(uri) = uri_text(&description.access_location) else {
                        continue;
                    };
                    if description.access_method == OID_PKIX_ACCESS_DESCRIPTOR_OCSP {
                        names.ocsp_urls.push(uri);
                    } else if description.access_method == OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS {
                        names.ca_issuer_urls.push(uri);
                    }
                }
            }
            _ => {}
        }
    }
    names
}

fn uri_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::URI(uri) => Some((*uri).to_owned()),
        _ => None,
    }
}

fn san_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
        GeneralName::IPAddress(bytes) => Some(ip_text(bytes)),
        GeneralName::RFC822Name(email) => Some(format!("email:{email}")),
        GeneralName::URI(uri) => Some(format!("uri:{uri}")),
        _ => None,
    }
}

fn ip_text(bytes: &[u8]) -> String {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        return IpAddr::V4(Ipv4Addr::from(octets)).to_string();
    }
    if let Ok(octets) = <[u8; 16]>::try_from(bytes) {
        return IpAddr::V6(Ipv6Addr::from(octets)).to_string();
    }
    // Not an address (name constraints use address+mask; SANs should not):
    // keep the raw bytes visible instead of dropping them.
    format!("ip-bytes:{}", hex::encode(bytes))
}

fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return false;
    }
    match cert.verify_signature(None) {
        Ok(()) => true,
        Err(ParserError::SignatureUnsupportedAlgorithm) => authority_key_matches_subject_key(cert),
        Err(_) => false,
    }
}

/// For self-issued certificates whose signature cannot be checked here: an
/// AKI naming a different key means another key signed it.
fn authority_key_matches_subject_key(cert: &X509Certificate<'_>) -> bool {
    let mut subject_key = None;
    let mut authority_key = None;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key = Some(id.0),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key = aki.key_identifier.as_ref().map(|id| id.0)
            }
            _ => {}
        }
    }
    match (authority_key, subject_key) {
        (None, _) => true,
        (Some(authority), Some(subject)) => authority == subject,
        (Some(_), None) => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serial_strips_sign_padding_only() {
        assert_eq!(serial_hex(&[0x00, 0xc0, 0xff, 0xee]), "c0ffee");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
    }

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(unsigned_bit_length(&[0x00, 0x80, 0x00]), Some(16));
        assert_eq!(unsigned_bit_length(&[0x7f, 0x00]), Some(15));
        assert_eq!(unsigned_bit_length(&[0x01]), Some(1));
        assert_eq!(unsigned_bit_length(&[0x00, 0x00]), None);
        assert_eq!(unsigned_bit_length(&[]), None);
    }

    #[test]
    fn ip_sans_are_written_as_addresses() {
        assert_eq!(ip_text(&[127, 0, 0, 1]), "127.0.0.1");
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        assert_eq!(ip_text(&v6), "2001:db8::1");
        assert_eq!(ip_text(&[1, 2, 3]), "ip-bytes:010203");
    }

    #[test]
    fn named_curves_have_their_field_size() {
        assert_eq!(named_curve_bits("1.3.132.0.35"), Some(521));
        assert_eq!(named_curve_bits("1.2.3"), None);
    }

    #[test]
    fn empty_and_garbage_input_are_errors() {
        assert_eq!(summarize(&[]), Err(X509Error::Empty));
        assert!(summarize(b"not a certificate").is_err());
        assert_eq!(summarize(&[0x30]), Err(X509Error::Truncated));
        assert_eq!(
            summarize(&[0x30, 0x82, 0xff, 0xff]),
            Err(X509Error::Truncated)
        );
        assert!(matches!(
            summarize(&[0x30, 0x00]),
            Err(X509Error::Malformed(_))
        ));
    }
}
