//! Certificate revocation lists (RFC 5280 §5): is a serial on the issuer's CRL?

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::X509Name;

use crate::{
    pem_or_der, reason_name, serial_hex, Finding, RevocationError, Status, TrustedIssuer, CLOCK_SKEW_SECONDS, REMOVE_FROM_CRL,
};

/// Checks `serial` (lowercase hex, no leading zero bytes, as in the certificate summary) against
/// a CRL in DER or PEM, for a certificate whose verified issuer is `issuer`.
///
/// The answer is believed only when the CRL is the issuer's (its name), signed with the issuer's
/// key (which must be allowed to sign CRLs), and current at `now_unix`: thisUpdate not in the
/// future and nextUpdate present and not passed, [`CLOCK_SKEW_SECONDS`] allowed either way. A
/// stale CRL is not used at all: a CA that stopped publishing says nothing about today, and an
/// old CRL is what an attacker who wants "good" would serve.
pub fn check_crl(crl_bytes: &[u8], serial: &str, issuer: &TrustedIssuer, now_unix: i64) -> Result<Finding, RevocationError> {
    let der = pem_or_der(crl_bytes, "X509 CRL").map_err(RevocationError::MalformedCrl)?;
    let (rest, crl) = CertificateRevocationList::from_der(&der).map_err(|e| RevocationError::MalformedCrl(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RevocationError::MalformedCrl(format!("{} bytes after the CRL", rest.len())));
    }
    let issuer_cert = parse_certificate(issuer.der())?;
    if !same_name(crl.issuer(), issuer_cert.subject()) {
        return Err(RevocationError::CrlIssuer(crl.issuer().to_string()));
    }
    crl.verify_signature(issuer_cert.public_key()).map_err(|e| RevocationError::CrlSignature(e.to_string()))?;
    if let Ok(Some(usage)) = issuer_cert.key_usage() {
        if !usage.value.crl_sign() {
            return Err(RevocationError::CrlSignature("the issuer's key usage does not include cRLSign".to_owned()));
        }
    }
    let this_update = crl.last_update();
    if this_update.timestamp() > now_unix + CLOCK_SKEW_SECONDS {
        return Err(RevocationError::CrlStale(format!("thisUpdate {this_update} is in the future")));
    }
    let next_update = crl.next_update().ok_or_else(|| RevocationError::CrlStale("no nextUpdate".to_owned()))?;
    if next_update.timestamp() < now_unix - CLOCK_SKEW_SECONDS {
        return Err(RevocationError::CrlStale(format!("nextUpdate {next_update} has passed")));
    }

    let verified = format!("signed by \"{}\", current until {next_update}", issuer_cert.subject());
    let wanted = serial.trim().to_ascii_lowercase();
    let mut notes = Vec::new();
    for entry in crl.iter_revoked_certificates() {
        if serial_hex(entry.raw_serial()) != wanted {
            continue;
        }
        let code = entry.reason_code().map(|(_, code)| code.0);
        // removeFromCRL only appears in delta CRLs and undoes a hold: not revoked.
        if code == Some(REMOVE_FROM_CRL) {
            notes.push("listed as removeFromCRL");
            break;
        }
        return Ok(Finding {
            status: Status::Revoked,
            revoked_at_unix: Some(entry.revocation_date.timestamp()),
            reason: code.map(reason_name),
            unknown_reason: None,
            detail: format!("serial {wanted} listed on the CRL (thisUpdate {this_update}, {verified})"),
        });
    }
    let mut detail = format!("serial {wanted} not on the CRL (thisUpdate {this_update}, {verified})");
    for note in notes {
        detail.push_str("; ");
        detail.push_str(note);
    }
    Ok(Finding { status: Status::Good, revoked_at_unix: None, reason: None, unknown_reason: None, detail })
}

pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, RevocationError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| RevocationError::MalformedCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RevocationError::MalformedCertificate(format!("{} bytes after the certificate", rest.len())));
    }
    Ok(cert)
}

/// Names compare by their DER, falling back to the RFC 4514-like text for encodings that differ
/// only in string types (PrintableString vs UTF8String).
fn same_name(a: &X509Name<'_>, b: &X509Name<'_>) -> bool {
    a.as_raw() == b.as_raw() || a.to_string() == b.to_string()
}
