//! ServerKeyExchange messages for DHE and ECDHE suites, signed by the lab identity's key, built the way
//! OpenSSL 1.0.1 builds them (RFC 5246 §7.4.3; MD5+SHA-1 signatures before TLS 1.2). The lab never
//! completes a key exchange, but a client (or scanner) expects a well-formed, verifiable message.

use bleedwatch_wire::codec::{put_prefixed, put_u16, put_u8, Prefix};
use bleedwatch_wire::types::KeyExchange;
use md5::Md5;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::Signer;
use rsa::{BigUint, Pkcs1v15Sign};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::identity::SigningKey;

/// RFC 3526 group 14 (2048-bit MODP), as a 2048-bit DHE server would send.
const MODP_2048: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

/// secp256r1, the one curve the lab offers.
pub const NAMED_CURVE_P256: u16 = 23;

#[derive(Debug, thiserror::Error)]
pub enum KxError {
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("no ServerKeyExchange for this key exchange")]
    NotEphemeral,
}

fn dhe_params() -> Vec<u8> {
    use rand::RngCore;
    let p = BigUint::parse_bytes(MODP_2048.as_bytes(), 16).unwrap_or_default();
    let g = BigUint::from(2u8);
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let ys = g.modpow(&BigUint::from_bytes_be(&secret), &p);
    let mut out = Vec::with_capacity(3 * 258);
    put_prefixed(&mut out, Prefix::U16, |o| o.extend_from_slice(&p.to_bytes_be()));
    put_prefixed(&mut out, Prefix::U16, |o| o.extend_from_slice(&g.to_bytes_be()));
    put_prefixed(&mut out, Prefix::U16, |o| o.extend_from_slice(&ys.to_bytes_be()));
    out
}

fn ecdhe_params() -> Vec<u8> {
    let secret = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
    let point = p256::EncodedPoint::from(secret.public_key());
    let mut out = Vec::with_capacity(70);
    put_u8(&mut out, 3); // named_curve
    put_u16(&mut out, NAMED_CURVE_P256);
    put_prefixed(&mut out, Prefix::U8, |o| o.extend_from_slice(point.as_bytes()));
    out
}

/// The body of a ServerKeyExchange for `kx`, signed over both randoms and the parameters.
pub fn server_key_exchange(
    kx: KeyExchange,
    key: &SigningKey,
    tls12: bool,
    client_random: &[u8],
    server_random: &[u8],
) -> Result<Vec<u8>, KxError> {
    let params = match kx {
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
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::LabIdentity;
    use p256::ecdsa::signature::Verifier;
    use rsa::traits::PublicKeyParts;

    #[test]
    fn rsa_dhe_tls12_signature_verifies() {
        let id = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let body = server_key_exchange(KeyExchange::Dhe, &id.key, true, &[1; 32], &[2; 32]).unwrap();
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
        let body = server_key_exchange(KeyExchange::EcdheEcdsa, &id.key, true, &[1; 32], &[2; 32]).unwrap();
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
    fn pre_tls12_rsa_uses_md5_sha1() {
        let id = LabIdentity::rsa_lab(&["localhost"]).unwrap();
        let body = server_key_exchange(KeyExchange::EcdheRsa, &id.key, false, &[1; 32], &[2; 32]).unwrap();
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
