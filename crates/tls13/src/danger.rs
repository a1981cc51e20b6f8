//! A certificate "verifier" that verifies nothing.
//!
//! **Never use anything in this module to protect data.** [`CaptureAnyServerCert`]
//! accepts every certificate chain and every handshake signature, so a
//! connection built with it is open to any man in the middle. It exists only
//! so that bleedwatch can *look at* the certificate a TLS 1.3 server presents
//! (expired, self-signed, wrong name, weak key: exactly the ones worth
//! reporting) without trusting it or sending anything over the connection.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};

/// Accepts any server certificate and remembers the chain it was shown.
///
/// One instance per connection: only the first chain presented is kept.
/// See the [module documentation](self): this must never protect real traffic.
#[derive(Debug)]
pub struct CaptureAnyServerCert {
    provider: Arc<CryptoProvider>,
    chain: OnceLock<Vec<Vec<u8>>>,
}

impl CaptureAnyServerCert {
    /// A capturing verifier advertising the signature schemes of `provider`
    /// plus those it cannot check (so servers with such keys still answer).
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self {
            provider,
            chain: OnceLock::new(),
        }
    }

    /// The crypto provider given to [`CaptureAnyServerCert::new`].
    pub fn provider(&self) -> Arc<CryptoProvider> {
        Arc::clone(&self.provider)
    }

    /// The chain the server presented (DER, leaf first), once it has.
    pub fn captured_chain(&self) -> Option<Vec<Vec<u8>>> {
        self.chain.get().cloned()
    }
}

impl ServerCertVerifier for CaptureAnyServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|cert| cert.as_ref().to_vec())
            .collect();
        // A second call cannot happen on one connection; keep the first chain.
        let _ = self.chain.set(chain);
        Ok(ServerCertVerified::assertion())
    }

    // Signatures are not checked either: servers whose keys the provider
    // cannot verify (RSA below 2048 bits, P-521, Ed448) must still show
    // their certificate, and nothing is ever sent over this connection.
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = self
            .provider
            .signature_verification_algorithms
            .supported_schemes();
        for extra in [
            SignatureScheme::ECDSA_NISTP521_SHA512,
            SignatureScheme::ED448,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
        ] {
            if !schemes.contains(&extra) {
                schemes.push(extra);
            }
        }
        schemes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn captures_leaf_first_and_keeps_the_first_chain() {
        let verifier =
            CaptureAnyServerCert::new(Arc::new(rustls::crypto::ring::default_provider()));
        assert_eq!(verifier.captured_chain(), None);
        let leaf = CertificateDer::from(vec![1u8, 2, 3]);
        let intermediate = CertificateDer::from(vec![4u8, 5]);
        let name = ServerName::try_from("example.com").unwrap();
        verifier
            .verify_server_cert(&leaf, &[intermediate], &name, &[], UnixTime::now())
            .unwrap();
        verifier
            .verify_server_cert(
                &CertificateDer::from(vec![9u8]),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .unwrap();
        assert_eq!(
            verifier.captured_chain(),
            Some(vec![vec![1, 2, 3], vec![4, 5]])
        );
    }

    #[test]
    fn advertises_schemes_it_cannot_check() {
        let verifier =
            CaptureAnyServerCert::new(Arc::new(rustls::crypto::ring::default_provider()));
        let schemes = verifier.supported_verify_schemes();
        assert!(schemes.contains(&SignatureScheme::ED448));
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(schemes.contains(&SignatureScheme::ED25519));
    }
}
