//! Certificate revocation lists (RFC 5280 §5): is a serial on the issuer's CRL?

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::X509Name;

use crate::{pem_or_der, reason_name, serial_hex, Finding, RevocationError, Status, REMOVE_FROM_CRL};

/// Checks `serial_hex` (lowercase hex, no leading zero bytes, as in the certificate summary) of
/// a certificate issued by `cert_issuer` (its issuer DN as the summary writes it) against a CRL
/// in DER or PEM.
///
/// With `issuer_der` (the issuer's certificate), the CRL must be issued under that name and its
/// signature must verify with that key; without it, only the issuer name is compared and the
/// finding says the signature was not verified. A CRL from another issuer cannot speak for the
/// certificate: the status is `unknown`. A stale CRL (past nextUpdate) is still used — a
/// revocation it lists remains true — but the detail says so.
pub fn check_crl(
    crl_bytes: &[u8],
    serial: &str,
    cert_issuer: &str,
    issuer_der: Option<&[u8]>,
    now_unix: i64,
) -> Result<Finding, RevocationError> {
    let der = pem_or_der(crl_bytes, "X509 CRL").map_err(RevocationError::MalformedCrl)?;
    let (rest, crl) = CertificateRevocationList::from_der(&der).map_err(|e| RevocationError::MalformedCrl(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RevocationError::MalformedCrl(format!("{} bytes after the CRL", rest.len())));
    }
    let mut notes = Vec::new();

    let issuer_cert = match issuer_der {
        Some(der) => Some(parse_certificate(der)?),
        None => None,
    };
    let crl_issuer = crl.issuer();
    let issued_by_the_issuer = match &issuer_cert {
        Some(issuer) => {
            if issuer.subject().to_string() != cert_issuer {
                return Err(RevocationError::WrongIssuer(issuer.subject().to_string()));
            }
            same_name(crl_issuer, issuer.subject())
        }
        None => crl_issuer.to_string() == cert_issuer,
    };
    if !issued_by_the_issuer {
        return Ok(Finding {
            status: Status::Unknown,
            revoked_at_unix: None,
            reason: None,
            detail: format!("the CRL is issued by \"{crl_issuer}\", not by the certificate's issuer"),
        });
    }
    match &issuer_cert {
        Some(issuer) => crl.verify_signature(issuer.public_key()).map_err(|e| RevocationError::CrlSignature(e.to_string()))?,
        None => notes.push("signature not verified (issuer certificate not available)".to_owned()),
    }
    if let Some(next_update) = crl.next_update() {
        if next_update.timestamp() < now_unix {
            notes.push(format!("stale CRL: nextUpdate {next_update} has passed"));
        }
    }

    let wanted = serial.trim().to_ascii_lowercase();
    for entry in crl.iter_revoked_certificates() {
        if serial_hex(entry.raw_serial()) != wanted {
            continue;
        }
        let code = entry.reason_code().map(|(_, code)| code.0);
        // removeFromCRL only appears in delta CRLs and undoes a hold: not revoked.
        if code == Some(REMOVE_FROM_CRL) {
            notes.push("listed as removeFromCRL".to_owned());
            break;
        }
        notes.insert(0, format!("serial {wanted} listed on the CRL (thisUpdate {})", crl.last_update()));
        return Ok(Finding {
            status: Status::Revoked,
            revoked_at_unix: Some(entry.revocation_date.timestamp()),
            reason: code.map(reason_name),
            detail: notes.join("; "),
        });
    }
    notes.insert(0, format!("serial {wanted} not on the CRL (thisUpdate {})", crl.last_update()));
    Ok(Finding { status: Status::Good, revoked_at_unix: None, reason: None, detail: notes.join("; ") })
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
