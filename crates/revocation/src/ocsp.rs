//! OCSP (RFC 6960): build a request for one certificate, and judge the responder's answer —
//! signature (by the issuer, or by a responder certificate the issuer delegated to), nonce,
//! certificate identity and freshness — before believing its status.

use der::asn1::{BitString, Null, OctetString};
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode};
use sha1::{Digest, Sha1};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, OcspResponseStatus,
    Request, TbsRequest, Version,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::AlgorithmIdentifier;

use crate::crl::parse_certificate;
use crate::{reason_name, Finding, RevocationError, Status, UnknownReason, CLOCK_SKEW_SECONDS};

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_PKIX_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// A request ready to send, and what the answer must match.
#[derive(Debug, Clone)]
pub struct OcspQuery {
    /// DER of the OCSPRequest (POST it as `application/ocsp-request`).
    pub request_der: Vec<u8>,
    cert_id: CertId,
    nonce: Vec<u8>,
    issuer_der: Vec<u8>,
}

/// Builds an unsigned request for the certificate with serial `serial` (hex) issued by the
/// certificate `issuer_der` (a [`crate::TrustedIssuer`]'s), carrying `nonce` (RFC 6960 §4.4.1)
/// against replayed answers.
pub fn build_request(issuer_der: &[u8], serial: &str, nonce: &[u8]) -> Result<OcspQuery, RevocationError> {
    let issuer = x509_cert::Certificate::from_der(issuer_der).map_err(|e| RevocationError::MalformedCertificate(e.to_string()))?;
    let name_der = issuer.tbs_certificate.subject.to_der().map_err(encoding)?;
    let key_bits = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let serial_bytes = parse_serial(serial)?;
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned { oid: ID_SHA1, parameters: Some(Any::from(Null)) },
        issuer_name_hash: OctetString::new(Sha1::digest(&name_der).to_vec()).map_err(encoding)?,
        issuer_key_hash: OctetString::new(Sha1::digest(key_bits).to_vec()).map_err(encoding)?,
        serial_number: SerialNumber::new(&serial_bytes).map_err(|e| RevocationError::Serial(format!("{serial}: {e}")))?,
    };
    let nonce_extension = Extension {
        extn_id: ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(Nonce::new(nonce.to_vec()).map_err(encoding)?.to_der().map_err(encoding)?)
            .map_err(encoding)?,
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request { req_cert: cert_id.clone(), single_request_extensions: None }],
            request_extensions: Some(vec![nonce_extension]),
        },
        optional_signature: None,
    };
    Ok(OcspQuery {
        request_der: request.to_der().map_err(encoding)?,
        cert_id,
        nonce: nonce.to_vec(),
        issuer_der: issuer_der.to_vec(),
    })
}

/// Judges a responder's answer to `query` at time `now_unix`.
pub fn check_response(response_der: &[u8], query: &OcspQuery, now_unix: i64) -> Result<Finding, RevocationError> {
    let response = OcspResponse::from_der(response_der).map_err(malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(RevocationError::OcspStatus(format!("{:?}", response.response_status)));
    }
    let bytes = response.response_bytes.ok_or_else(|| RevocationError::MalformedOcsp("successful but empty".to_owned()))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(RevocationError::MalformedOcsp(format!("unsupported response type {}", bytes.response_type)));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(malformed)?;
    let signer = verify_signature(&basic, &query.issuer_der, now_unix)?;

    let echoed = match basic
        .tbs_response_data
        .response_extensions
        .iter()
        .flatten()
        .find(|extension| extension.extn_id == ID_PKIX_OCSP_NONCE)
    {
        Some(extension) => Some(Nonce::from_der(extension.extn_value.as_bytes()).map_err(malformed)?),
        None => None,
    };
    if echoed.as_ref().is_some_and(|echoed| echoed.0.as_bytes() != query.nonce.as_slice()) {
        return Err(RevocationError::OcspNonce);
    }

    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|single| same_cert_id(&single.cert_id, &query.cert_id))
        .ok_or(RevocationError::OcspNoMatch)?;
    let this_update = unix(&single.this_update);
    if this_update > now_unix + CLOCK_SKEW_SECONDS {
        return Err(RevocationError::OcspTime(format!("thisUpdate {} is in the future", text(&single.this_update))));
    }
    if let Some(next_update) = &single.next_update {
        if unix(next_update) < now_unix - CLOCK_SKEW_SECONDS {
            return Err(RevocationError::OcspTime(format!("stale response: nextUpdate {} has passed", text(next_update))));
        }
    }
    // RFC 6960 lets a responder ignore the nonce (pre-signed answers). Such an answer could be a
    // replay of any earlier one, so it is believed only when it was made within the clock-skew
    // allowance of now; the detail says the nonce was dropped either way.
    let nonce_note = if echoed.is_some() {
        ""
    } else if this_update >= now_unix - CLOCK_SKEW_SECONDS {
        ", nonce-missing: the responder dropped our nonce; thisUpdate is within the clock-skew allowance"
    } else {
        return Err(RevocationError::OcspNonceMissing(format!(
            "thisUpdate {} is more than {CLOCK_SKEW_SECONDS} s old",
            text(&single.this_update)
        )));
    };
    let produced = text(&basic.tbs_response_data.produced_at);
    let signed_by = match signer {
        Signer::Issuer => "signed by the issuer".to_owned(),
        Signer::Delegated(subject) => format!("signed by delegated responder \"{subject}\""),
    };
    Ok(match &single.cert_status {
        CertStatus::Good(_) => Finding {
            status: Status::Good,
            revoked_at_unix: None,
            reason: None,
            unknown_reason: None,
            detail: format!("good (producedAt {produced}, {signed_by}{nonce_note})"),
        },
        CertStatus::Revoked(info) => {
            let reason = info.revocation_reason.map(|r| reason_name(r as u8));
            Finding {
                status: Status::Revoked,
                revoked_at_unix: Some(unix(&info.revocation_time)),
                reason,
                unknown_reason: None,
                detail: format!("revoked at {} (producedAt {produced}, {signed_by}{nonce_note})", text(&info.revocation_time)),
            }
        }
        CertStatus::Unknown(_) => Finding {
            status: Status::Unknown,
            revoked_at_unix: None,
            reason: None,
            unknown_reason: Some(UnknownReason::ResponderUnknown),
            detail: format!("the responder does not know this certificate (producedAt {produced}, {signed_by}{nonce_note})"),
        },
    })
}

enum Signer {
    Issuer,
    Delegated(String),
}

/// RFC 6960 §4.2.2.2: the response is signed by the issuer itself, or by a certificate the issuer
/// signed for this purpose (extended key usage id-kp-OCSPSigning), valid now.
fn verify_signature(basic: &BasicOcspResponse, issuer_der: &[u8], now_unix: i64) -> Result<Signer, RevocationError> {
    let issuer = parse_certificate(issuer_der)?;
    let tbs = basic.tbs_response_data.to_der().map_err(encoding)?;
    let algorithm_der = basic.signature_algorithm.to_der().map_err(encoding)?;
    let (_, algorithm) = AlgorithmIdentifier::from_der(&algorithm_der)
        .map_err(|e| RevocationError::MalformedOcsp(format!("signature algorithm: {e}")))?;
    let signature = signature_bits(&basic.signature)?;
    let verifies = |signer: &X509Certificate<'_>| {
        x509_parser::verify::verify_signature(signer.public_key(), &algorithm, &signature, &tbs).is_ok()
    };
    if verifies(&issuer) {
        return Ok(Signer::Issuer);
    }
    let mut tried = Vec::new();
    for candidate in basic.certs.iter().flatten() {
        let der = candidate.to_der().map_err(encoding)?;
        let responder = parse_certificate(&der)?;
        let subject = responder.subject().to_string();
        let delegated = responder.issuer().as_raw() == issuer.subject().as_raw()
            && responder.verify_signature(Some(issuer.public_key())).is_ok()
            && responder.extended_key_usage().ok().flatten().is_some_and(|eku| eku.value.ocsp_signing)
            && responder.validity().not_before.timestamp() <= now_unix + CLOCK_SKEW_SECONDS
            && responder.validity().not_after.timestamp() >= now_unix - CLOCK_SKEW_SECONDS;
        if delegated && verifies(&responder) {
            return Ok(Signer::Delegated(subject));
        }
        tried.push(subject);
    }
    Err(RevocationError::OcspSignature(if tried.is_empty() {
        "does not verify with the issuer's key".to_owned()
    } else {
        format!("neither the issuer nor an authorised responder signed it (certificates sent: {})", tried.join(", "))
    }))
}

fn signature_bits(bits: &BitString) -> Result<x509_parser::der_parser::asn1_rs::BitString<'_>, RevocationError> {
    let bytes = bits.as_bytes().ok_or_else(|| RevocationError::MalformedOcsp("signature is not whole bytes".to_owned()))?;
    Ok(x509_parser::der_parser::asn1_rs::BitString::new(0, bytes))
}

fn same_cert_id(answer: &CertId, asked: &CertId) -> bool {
    answer.hash_algorithm.oid == asked.hash_algorithm.oid
        && answer.issuer_name_hash == asked.issuer_name_hash
        && answer.issuer_key_hash == asked.issuer_key_hash
        && answer.serial_number.as_bytes() == asked.serial_number.as_bytes()
}

fn unix(time: &OcspGeneralizedTime) -> i64 {
    i64::try_from(time.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn text(time: &OcspGeneralizedTime) -> String {
    time.0.to_date_time().to_string()
}

fn parse_serial(serial: &str) -> Result<Vec<u8>, RevocationError> {
    let digits = serial.trim();
    let padded = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits.to_owned() };
    let bytes = hex::decode(&padded).map_err(|e| RevocationError::Serial(format!("{serial}: {e}")))?;
    if bytes.is_empty() {
        return Err(RevocationError::Serial("empty serial number".to_owned()));
    }
    Ok(bytes)
}

fn encoding(error: der::Error) -> RevocationError {
    RevocationError::Encoding(error.to_string())
}

fn malformed(error: der::Error) -> RevocationError {
    RevocationError::MalformedOcsp(error.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_hex_with_optional_odd_digit() {
        assert_eq!(parse_serial("0100").unwrap(), vec![1, 0]);
        assert_eq!(parse_serial("abc").unwrap(), vec![0x0a, 0xbc]);
        assert!(parse_serial("").is_err());
        assert!(parse_serial("xyz").is_err());
    }

    #[test]
    fn garbage_is_a_malformed_response_not_a_panic() {
        let query = OcspQuery { request_der: vec![], cert_id: dummy_cert_id(), nonce: vec![1], issuer_der: vec![] };
        for input in [&b""[..], b"\x30", b"\x30\x03\x0a\x01\x00", b"not der at all"] {
            assert!(check_response(input, &query, 0).is_err());
        }
        // A well-formed "tryLater" answer is reported as such.
        let try_later = OcspResponse::try_later().to_der().unwrap();
        assert!(matches!(check_response(&try_later, &query, 0), Err(RevocationError::OcspStatus(s)) if s == "TryLater"));
    }

    fn dummy_cert_id() -> CertId {
        CertId {
            hash_algorithm: AlgorithmIdentifierOwned { oid: ID_SHA1, parameters: None },
            issuer_name_hash: OctetString::new(vec![0; 20]).unwrap(),
            issuer_key_hash: OctetString::new(vec![0; 20]).unwrap(),
            serial_number: SerialNumber::new(&[1]).unwrap(),
        }
    }
}
