//! Key exchange as OpenSSL 1.0.1 does it: ServerKeyExchange messages for DHE and ECDHE suites, signed
//! by the lab identity's key (RFC 5246 §7.4.3; MD5+SHA-1 signatures before TLS 1.2), and the
//! premaster secret from the client's ClientKeyExchange (RSA key transport, DHE or ECDHE on P-256).

use bleedwatch_wire::codec::{put_prefixed, put_u16, put_u8, Prefix, Reader};
use bleedwatch_wire::types::KeyExchange;
use bleedwatch_wire::ProtocolVersion;
use md5::Md5;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::Signer;
use rand::RngCore;
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::identity::SigningKey;

/// RFC 3526 group 14 (2048-bit MODP), as a 2048-bit DHE server would send.
const MODP_2048: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

/// secp256r1, the one curve the lab offers.
pub const NAMED_CURVE_P256: u16 = 23;

/// Length of an RSA-transported premaster secret.
pub const RSA_PREMASTER_LEN: usize = 48;

#[derive(Debug, thiserror::Error)]
pub enum KxError {
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("no ServerKeyExchange for this key exchange")]
    NotEphemeral,
    #[error("malformed ClientKeyExchange")]
    Decode,
    #[error("client public value unusable: {0}")]
    BadPublic(&'static str),
}

/// The server's half of an ephemeral key exchange, kept from the ServerKeyExchange until the client's
/// ClientKeyExchange arrives.
pub enum EphemeralKey {
    Dhe { prime: BigUint, exponent: BigUint },
    Ecdhe(p256::ecdh::EphemeralSecret),
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EphemeralKey::Dhe { .. } => "EphemeralKey::Dhe(..)",
            EphemeralKey::Ecdhe(_) => "EphemeralKey::Ecdhe(..)",
        })
    }
}

impl EphemeralKey {
    /// The premaster secret from the client's public value (the body of ClientKeyExchange):
    /// DHE `dh_Yc<1..2^16-1>` gives Z without leading zeros (RFC 5246 §8.1.2), ECDHE
    /// `ecdh_Yc<1..2^8-1>` gives the x coordinate (RFC 4492 §5.10).
    pub fn premaster(&self, client_key_exchange: &[u8]) -> Result<Vec<u8>, KxError> {
        let mut r = Reader::new(client_key_exchange);
        match self {
            EphemeralKey::Dhe { prime, exponent } => {
                let yc = BigUint::from_bytes_be(r.vec16("dh_Yc").map_err(|_| KxError::Decode)?);
                r.expect_end("client_key_exchange").map_err(|_| KxError::Decode)?;
                // 1 < Yc < p - 1 keeps out the values that force a known secret.
                let one = BigUint::from(1u8);
                if yc <= one || yc >= prime - &one {
                    return Err(KxError::BadPublic("DH value out of range"));
                }
                let z = yc.modpow(exponent, prime).to_bytes_be();
                let start = z.iter().position(|b| *b != 0).unwrap_or(z.len());
                Ok(z[start..].to_vec())
            }
            EphemeralKey::Ecdhe(secret) => {
                let point = r.vec8("ecdh_Yc").map_err(|_| KxError::Decode)?;
                r.expect_end("client_key_exchange").map_err(|_| KxError::Decode)?;
                let public = p256::PublicKey::from_sec1_bytes(point).map_err(|_| KxError::BadPublic("not a P-256 point"))?;
                Ok(secret.diffie_hellman(&public).raw_secret_bytes().to_vec())
            }
        }
    }
}

/// The premaster secret of RSA key transport. Whatever goes wrong — a malformed message, a failed
/// PKCS#1 v1.5 decryption, a wrong length or a version other than the ClientHello's — gives a random
/// premaster instead of an alert, so the handshake fails only at Finished and the server is no
/// padding oracle (RFC 5246 §7.4.7.1).
pub fn rsa_premaster(key: &rsa::RsaPrivateKey, client_key_exchange: &[u8], version: ProtocolVersion, client_version: ProtocolVersion) -> Vec<u8> {
    let mut fallback = vec![0u8; RSA_PREMASTER_LEN];
    rand::thread_rng().fill_bytes(&mut fallback);
    fallback[..2].copy_from_slice(&client_version.0.to_be_bytes());
    // SSLv3 sends the ciphertext bare; TLS puts a two-byte length in front.
    let encrypted = if version == ProtocolVersion::SSL3 {
        Some(client_key_exchange)
    } else {
        let mut r = Reader::new(client_key_exchange);
        r.vec16("encrypted_pre_master_secret").ok().filter(|_| r.is_empty())
    };
    let Some(encrypted) = encrypted else { return fallback };
    match key.decrypt_blinded(&mut rand::thread_rng(), Pkcs1v15Encrypt, encrypted) {
        Ok(premaster) if premaster.len() == RSA_PREMASTER_LEN && premaster[..2] == client_version.0.to_be_bytes() => premaster,
        _ => fallback,
    }
}

fn dhe_params() -> (Vec<u8>, EphemeralKey) {
    let p = BigUint::parse_bytes(MODP_2048.as_bytes(), 16).unwrap_or_default();
    let g = BigUint::from(2u8);
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let exponent = BigUint::from_bytes_be(&secret);
    let ys = g.modpow(&exponent, &p);
    let mut out = Vec::with_capacity(3 * 258);
    put_prefixed(&mut out, Prefix::U16, |o| o.extend_from_slice(&p.to_bytes_be()));
    put_prefixed(&mut out, Prefix::U16, |o| o.extend_from_slice(&g.to_bytes_be()));
    put_prefixed(&mut out, Prefix::U16, |o| o.extend_from_slice(&ys.to_bytes_be()));
    (out, EphemeralKey::Dhe { prime: p, exponent })
}

fn ecdhe_params() -> (Vec<u8>, EphemeralKey) {
    let secret = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
    let point = p256::EncodedPoint::from(secret.public_key());
    let mut out = Vec::with_capacity(70);
    put_u8(&mut out, 3); // named_curve
    put_u16(&mut out, NAMED_CURVE_P256);
    put_prefixed(&mut out, Prefix::U8, |o| o.extend_from_slice(point.as_bytes()));
    (out, EphemeralKey::Ecdhe(secret))
}

/// The body of a ServerKeyExchange for `kx`, signed over both randoms and the parameters, with the
/// ephemeral key needed to finish the exchange.
pub fn server_key_exchange(
    kx: KeyExchange,
    key: &SigningKey,
    tls12: bool,
    client_random: &[u8],
    server_random: &[u8],
) -> Result<(Vec<u8>, EphemeralKey), KxError> {
    let (params, ephemeral) = match kx {
        KeyExchange::Dhe => dhe_params(),
        KeyExchange::EcdheRsa | KeyExchange::EcdheEcdsa => ecdhe_params(),
        _ => return Err(KxError::NotEphemeral),
    };
    let mut signed = Vec::with_capacity(64 + params.len());
    signed.extend_from_slice(client_random);
    signed.extend_from_slice(server_random);
    signed.extend_from_slice(&params);

    let mut body = params;
    let signature = match (key, tls12) {
        (SigningKey::Rsa(k), true) => {
            body.extend_from_slice(&[4, 1]); // sha256, rsa
            k.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&signed)).map_err(|e| KxError::Sign(e.to_string()))?
        }
        (SigningKey::Rsa(k), false) => {
            let mut digest = Md5::digest(&signed).to_vec();
            digest.extend_from_slice(&Sha1::digest(&signed));
            k.sign(Pkcs1v15Sign::new_unprefixed(), &digest).map_err(|e| KxError::Sign(e.to_string()))?
        }
        (SigningKey::EcdsaP256(k), true) => {
            body.extend_from_slice(&[4, 3]); // sha256, ecdsa
            let sig: p256::ecdsa::Signature = k.sign(&signed);
            sig.to_der().as_bytes().to_vec()
        }
        (SigningKey::EcdsaP256(k), false) => {
            let sig: p256::ecdsa::Signature =
                k.sign_prehash(&Sha1::digest(&signed)).map_err(|e| KxError::Sign(e.to_string()))?;
            sig.to_der().as_bytes().to_vec()
        }
    };
    put_prefixed(&mut body, Prefix::U16, |o| o.extend_from_slice(&signature));
    Ok((body, ephemeral))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::identity::LabIdentity;
    use p256::ecdsa::signature::Verifier;
    use rsa::traits::PublicKeyParts;

    #[test]
    fn rsa_dhe_tls12_signature_verifies() {
        let id = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let (body, _) = server_key_exchange(KeyExchange::Dhe, &id.key, true, &[1; 32], &[2; 32]).unwrap();
        let SigningKey::Rsa(k) = &id.key else { panic!() };
        // p (2+256) g (2+1) Ys (2+<=256) sigalg (2) sig (2+256)
        let mut r = bleedwatch_wire::codec::Reader::new(&body);
        let p = r.vec16("p").unwrap().to_vec();
        let g = r.vec16("g").unwrap().to_vec();
        let ys = r.vec16("ys").unwrap().to_vec();
        let params_len = r.offset();
        assert_eq!(p.len(), 256);
        assert_eq!(g, vec![2]);
        assert!(!ys.is_empty());
        assert_eq!(r.take(2, "alg").unwrap(), &[4, 1]);
        let sig = r.vec16("sig").unwrap();
        assert_eq!(sig.len(), k.size());
        let mut signed = vec![1u8; 32];
        signed.extend_from_slice(&[2; 32]);
        signed.extend_from_slice(&body[..params_len]);
        k.to_public_key().verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&signed), sig).unwrap();
    }

    #[test]
    fn ecdsa_ecdhe_signature_verifies() {
        let id = LabIdentity::generate_ecdsa(&["localhost"]).unwrap();
        let (body, _) = server_key_exchange(KeyExchange::EcdheEcdsa, &id.key, true, &[1; 32], &[2; 32]).unwrap();
        assert_eq!(&body[..4], &[3, 0, 23, 65]);
        let params_len = 4 + 65;
        assert_eq!(&body[params_len..params_len + 2], &[4, 3]);
        let SigningKey::EcdsaP256(k) = &id.key else { panic!() };
        let sig = p256::ecdsa::Signature::from_der(&body[params_len + 4..]).unwrap();
        let mut signed = vec![1u8; 32];
        signed.extend_from_slice(&[2; 32]);
        signed.extend_from_slice(&body[..params_len]);
        k.verifying_key().verify(&signed, &sig).unwrap();
    }

    #[test]
    fn ecdhe_premaster_agrees_with_the_client() {
        let id = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let (body, ephemeral) = server_key_exchange(KeyExchange::EcdheRsa, &id.key, true, &[1; 32], &[2; 32]).unwrap();
        let server_public = p256::PublicKey::from_sec1_bytes(&body[4..4 + 65]).unwrap();
        let client = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
        let client_point = p256::EncodedPoint::from(client.public_key());
        let mut cke = vec![65];
        cke.extend_from_slice(client_point.as_bytes());
        let premaster = ephemeral.premaster(&cke).unwrap();
        assert_eq!(premaster, client.diffie_hellman(&server_public).raw_secret_bytes().to_vec());
        assert!(matches!(ephemeral.premaster(&cke[..30]), Err(KxError::Decode)));
        let mut off_curve = cke.clone();
        off_curve[40] ^= 1;
        assert!(matches!(ephemeral.premaster(&off_curve), Err(KxError::BadPublic(_))));
    }

    #[test]
    fn dhe_premaster_agrees_with_the_client() {
        let id = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let (body, ephemeral) = server_key_exchange(KeyExchange::Dhe, &id.key, false, &[1; 32], &[2; 32]).unwrap();
        let mut r = bleedwatch_wire::codec::Reader::new(&body);
        let p = BigUint::from_bytes_be(r.vec16("p").unwrap());
        let _g = r.vec16("g").unwrap();
        let ys = BigUint::from_bytes_be(r.vec16("ys").unwrap());
        let xc = BigUint::from(0x1234_5678_9abc_def1u64);
        let yc = BigUint::from(2u8).modpow(&xc, &p);
        let mut cke = Vec::new();
        put_prefixed(&mut cke, Prefix::U16, |o| o.extend_from_slice(&yc.to_bytes_be()));
        let expected = ys.modpow(&xc, &p).to_bytes_be();
        assert_eq!(ephemeral.premaster(&cke).unwrap(), expected);
        // Yc = 1 and Yc = p - 1 are refused.
        for bad in [BigUint::from(1u8), &p - BigUint::from(1u8)] {
            let mut cke = Vec::new();
            put_prefixed(&mut cke, Prefix::U16, |o| o.extend_from_slice(&bad.to_bytes_be()));
            assert!(matches!(ephemeral.premaster(&cke), Err(KxError::BadPublic(_))));
        }
    }

    #[test]
    fn rsa_premaster_decrypts_or_falls_back_to_random() {
        let id = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let SigningKey::Rsa(k) = &id.key else { panic!() };
        let mut premaster = vec![3u8, 3];
        premaster.extend_from_slice(&[0x42; 46]);
        let encrypted = k.to_public_key().encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, &premaster).unwrap();
        let mut cke = Vec::new();
        put_prefixed(&mut cke, Prefix::U16, |o| o.extend_from_slice(&encrypted));
        assert_eq!(rsa_premaster(k, &cke, ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_2), premaster);
        // SSLv3 has no length prefix.
        assert_eq!(rsa_premaster(k, &encrypted, ProtocolVersion::SSL3, ProtocolVersion::TLS1_2), premaster);
        // Wrong client version inside, garbage, or truncation: a random premaster, never an error.
        let wrong_version = rsa_premaster(k, &cke, ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_1);
        assert_ne!(wrong_version, premaster);
        assert_eq!(wrong_version.len(), 48);
        let mut garbled = cke.clone();
        garbled[10] ^= 0xff;
        assert_ne!(rsa_premaster(k, &garbled, ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_2), premaster);
        assert_eq!(rsa_premaster(k, &cke[..5], ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_2).len(), 48);
    }

    #[test]
    fn pre_tls12_rsa_uses_md5_sha1() {
        let id = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let (body, _) = server_key_exchange(KeyExchange::EcdheRsa, &id.key, false, &[1; 32], &[2; 32]).unwrap();
        let params_len = 4 + 65;
        let SigningKey::Rsa(k) = &id.key else { panic!() };
        let mut signed = vec![1u8; 32];
        signed.extend_from_slice(&[2; 32]);
        signed.extend_from_slice(&body[..params_len]);
        let mut digest = Md5::digest(&signed).to_vec();
        digest.extend_from_slice(&Sha1::digest(&signed));
        k.to_public_key().verify(Pkcs1v15Sign::new_unprefixed(), &digest, &body[params_len + 2..]).unwrap();
    }
}
