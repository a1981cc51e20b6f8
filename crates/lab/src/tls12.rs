//! The cryptography of a TLS 1.0–1.2 connection as OpenSSL 1.0.1 runs it, for the lab server's
//! completed handshakes: the PRF (RFC 2246 §5 MD5⊕SHA-1, RFC 5246 §5 P_SHA256 / P_SHA384), the master
//! secret and key block, Finished verify_data, and record protection — AES-CBC with HMAC
//! (MAC-then-encrypt; chained IV in TLS 1.0, explicit IV from TLS 1.1) and AES-GCM (4-byte implicit
//! salt + 8-byte explicit nonce, RFC 5288). Only RustCrypto primitives; the framing stays in
//! `bleedwatch-wire`.

use aes::{Aes128, Aes256};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce, Tag};
use bleedwatch_wire::record::{RecordHeader, MAX_FRAGMENT_LEN};
use bleedwatch_wire::{CipherSuite, ContentType, ProtocolVersion};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use md5::Md5;
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384};

/// Length of the master secret (RFC 5246 §8.1).
pub const MASTER_SECRET_LEN: usize = 48;
/// Length of Finished.verify_data in TLS 1.0–1.2.
pub const VERIFY_DATA_LEN: usize = 12;
const AES_BLOCK: usize = 16;
const GCM_EXPLICIT_NONCE: usize = 8;
const GCM_SALT: usize = 4;
const GCM_TAG: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Wrong MAC, bad padding, bad tag or a ciphertext of impossible length: all look alike on the
    /// wire (bad_record_mac), as RFC 5246 §6.2.3.2 asks.
    #[error("record failed authentication")]
    BadRecordMac,
    /// Plaintext longer than 2^14 (record_overflow).
    #[error("decrypted record longer than 16384 bytes")]
    Overflow,
}

/// The hash the PRF and the handshake transcript use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrfHash {
    /// TLS 1.0 and 1.1: P_MD5 ⊕ P_SHA1, transcript MD5 ‖ SHA-1.
    Md5Sha1,
    Sha256,
    Sha384,
}

/// The record MAC of a CBC suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacHash {
    Sha1,
    Sha256,
    Sha384,
}

impl MacHash {
    pub fn output_len(self) -> usize {
        match self {
            MacHash::Sha1 => 20,
            MacHash::Sha256 => 32,
            MacHash::Sha384 => 48,
        }
    }
}

/// Bulk encryption of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkCipher {
    AesCbc { key_len: usize, mac: MacHash },
    AesGcm { key_len: usize },
}

/// What the lab needs to know to run a suite after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteSpec {
    pub suite: CipherSuite,
    pub cipher: BulkCipher,
    /// The TLS 1.2 PRF hash (SHA-384 for the `_SHA384` suites, SHA-256 for the rest).
    pub prf12: PrfHash,
}

impl SuiteSpec {
    /// The suites whose record protection the lab implements (AES-CBC-SHA1/SHA256/SHA384 and
    /// AES-GCM, with RSA, DHE-RSA, ECDHE-RSA or ECDHE-ECDSA key exchange). RC4, DES, 3DES, CAMELLIA,
    /// SEED and IDEA suites are still negotiated like 1.0.1f does, but cannot be completed.
    pub fn for_suite(suite: CipherSuite) -> Option<SuiteSpec> {
        use BulkCipher::{AesCbc, AesGcm};
        use MacHash::{Sha1 as S1, Sha256 as S256, Sha384 as S384};
        let (cipher, prf12) = match suite.0 {
            // *_AES_128_CBC_SHA: RSA, DHE-RSA, ECDHE-ECDSA, ECDHE-RSA
            0x002f | 0x0033 | 0xc009 | 0xc013 => (AesCbc { key_len: 16, mac: S1 }, PrfHash::Sha256),
            0x0035 | 0x0039 | 0xc00a | 0xc014 => (AesCbc { key_len: 32, mac: S1 }, PrfHash::Sha256),
            0x003c | 0x0067 | 0xc023 | 0xc027 => (AesCbc { key_len: 16, mac: S256 }, PrfHash::Sha256),
            0x003d | 0x006b => (AesCbc { key_len: 32, mac: S256 }, PrfHash::Sha256),
            0xc024 | 0xc028 => (AesCbc { key_len: 32, mac: S384 }, PrfHash::Sha384),
            0x009c | 0x009e | 0xc02b | 0xc02f => (AesGcm { key_len: 16 }, PrfHash::Sha256),
            0x009d | 0x009f | 0xc02c | 0xc030 => (AesGcm { key_len: 32 }, PrfHash::Sha384),
            _ => return None,
        };
        Some(SuiteSpec { suite, cipher, prf12 })
    }

    pub fn prf_hash(&self, version: ProtocolVersion) -> PrfHash {
        if version.0 >= ProtocolVersion::TLS1_2.0 {
            self.prf12
        } else {
            PrfHash::Md5Sha1
        }
    }

    /// mac_key, enc_key and fixed IV lengths, in key-block order (RFC 5246 §6.3).
    fn key_block_lengths(&self) -> (usize, usize, usize) {
        match self.cipher {
            BulkCipher::AesCbc { key_len, mac } => (mac.output_len(), key_len, AES_BLOCK),
            BulkCipher::AesGcm { key_len } => (0, key_len, GCM_SALT),
        }
    }
}

/// P_hash (RFC 5246 §5): HMAC_hash(secret, A(i) + seed) with A(0) = seed, XORed into `out`.
fn p_hash_xor<M: Mac + KeyInit + Clone>(secret: &[u8], seed: &[u8], out: &mut [u8]) {
    let Ok(keyed) = <M as KeyInit>::new_from_slice(secret) else { return };
    let mut a = {
        let mut m = keyed.clone();
        m.update(seed);
        m.finalize().into_bytes()
    };
    for chunk in out.chunks_mut(a.len()) {
        let mut m = keyed.clone();
        m.update(&a);
        m.update(seed);
        let block = m.finalize().into_bytes();
        chunk.iter_mut().zip(block.iter()).for_each(|(o, b)| *o ^= b);
        let mut next = keyed.clone();
        next.update(&a);
        a = next.finalize().into_bytes();
    }
}

/// PRF(secret, label, seed) filling `out`. HMAC accepts keys of any length, so this cannot fail.
pub fn prf(hash: PrfHash, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    out.fill(0);
    let mut label_seed = Vec::with_capacity(label.len() + seed.len());
    label_seed.extend_from_slice(label);
    label_seed.extend_from_slice(seed);
    match hash {
        PrfHash::Md5Sha1 => {
            // S1 and S2 are the two halves of the secret, sharing the middle byte if its length is odd.
            let half = secret.len().div_ceil(2);
            p_hash_xor::<Hmac<Md5>>(&secret[..half], &label_seed, out);
            p_hash_xor::<Hmac<Sha1>>(&secret[secret.len() - half..], &label_seed, out);
        }
        PrfHash::Sha256 => p_hash_xor::<Hmac<Sha256>>(secret, &label_seed, out),
        PrfHash::Sha384 => p_hash_xor::<Hmac<Sha384>>(secret, &label_seed, out),
    }
}

/// master_secret = PRF(pre_master_secret, "master secret", client_random + server_random)[0..48].
pub fn master_secret(hash: PrfHash, premaster: &[u8], client_random: &[u8], server_random: &[u8]) -> [u8; MASTER_SECRET_LEN] {
    let mut seed = Vec::with_capacity(64);
    seed.extend_from_slice(client_random);
    seed.extend_from_slice(server_random);
    let mut out = [0u8; MASTER_SECRET_LEN];
    prf(hash, premaster, b"master secret", &seed, &mut out);
    out
}

/// All handshake messages so far (headers included), for the Finished hashes. Kept whole because the
/// hash is only known once the suite is chosen, and a handshake is a few kilobytes.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    messages: Vec<u8>,
}

impl Transcript {
    pub fn push(&mut self, message: &[u8]) {
        self.messages.extend_from_slice(message);
    }

    pub fn hash(&self, hash: PrfHash) -> Vec<u8> {
        match hash {
            PrfHash::Md5Sha1 => {
                let mut out = Md5::digest(&self.messages).to_vec();
                out.extend_from_slice(&Sha1::digest(&self.messages));
                out
            }
            PrfHash::Sha256 => Sha256::digest(&self.messages).to_vec(),
            PrfHash::Sha384 => Sha384::digest(&self.messages).to_vec(),
        }
    }
}

/// Which side's Finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// verify_data = PRF(master_secret, finished_label, Hash(handshake_messages))[0..12].
pub fn verify_data(hash: PrfHash, master: &[u8], side: Side, transcript: &Transcript) -> [u8; VERIFY_DATA_LEN] {
    let label: &[u8] = match side {
        Side::Client => b"client finished",
        Side::Server => b"server finished",
    };
    let mut out = [0u8; VERIFY_DATA_LEN];
    prf(hash, master, label, &transcript.hash(hash), &mut out);
    out
}

/// Equality without an early exit, for MACs and verify_data.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The two directions' record protection after a handshake: `client_write` opens what the client
/// sends, `server_write` seals what the server sends.
pub struct ConnectionKeys {
    pub client_write: RecordProtection,
    pub server_write: RecordProtection,
}

/// Derives the key block (PRF(master, "key expansion", server_random + client_random)) and splits it
/// into client and server MAC keys, encryption keys and IVs.
pub fn derive_keys(spec: &SuiteSpec, version: ProtocolVersion, master: &[u8], client_random: &[u8], server_random: &[u8]) -> ConnectionKeys {
    let (mac_len, key_len, iv_len) = spec.key_block_lengths();
    let mut seed = Vec::with_capacity(64);
    seed.extend_from_slice(server_random);
    seed.extend_from_slice(client_random);
    let mut block = vec![0u8; 2 * (mac_len + key_len + iv_len)];
    prf(spec.prf_hash(version), master, b"key expansion", &seed, &mut block);
    let (client_mac, rest) = block.split_at(mac_len);
    let (server_mac, rest) = rest.split_at(mac_len);
    let (client_key, rest) = rest.split_at(key_len);
    let (server_key, rest) = rest.split_at(key_len);
    let (client_iv, server_iv) = rest.split_at(iv_len);
    ConnectionKeys {
        client_write: RecordProtection::new(spec.cipher, version, client_mac, client_key, client_iv),
        server_write: RecordProtection::new(spec.cipher, version, server_mac, server_key, server_iv),
    }
}

#[derive(Clone)]
enum AesKey {
    Aes128([u8; 16]),
    Aes256([u8; 32]),
}

impl AesKey {
    fn new(key: &[u8]) -> AesKey {
        match key.len() {
            16 => {
                let mut k = [0u8; 16];
                k.copy_from_slice(key);
                AesKey::Aes128(k)
            }
            _ => {
                let mut k = [0u8; 32];
                k.iter_mut().zip(key).for_each(|(d, s)| *d = *s);
                AesKey::Aes256(k)
            }
        }
    }
}

enum Protection {
    Cbc {
        key: AesKey,
        mac: MacHash,
        mac_key: Vec<u8>,
        /// TLS 1.0 only: the IV of the next record, the last ciphertext block of the previous one.
        chained_iv: Option<[u8; AES_BLOCK]>,
    },
    Gcm {
        aead: GcmKey,
        salt: [u8; GCM_SALT],
    },
}

enum GcmKey {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// One direction of a protected connection: keys, the sequence number and, for TLS 1.0 CBC, the IV
/// chained from the previous record.
pub struct RecordProtection {
    protection: Protection,
    seq: u64,
}

impl std::fmt::Debug for RecordProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.protection {
            Protection::Cbc { .. } => "cbc",
            Protection::Gcm { .. } => "gcm",
        };
        f.debug_struct("RecordProtection").field("kind", &kind).field("seq", &self.seq).finish_non_exhaustive()
    }
}

fn record_mac(mac: MacHash, key: &[u8], seq: u64, typ: ContentType, version: ProtocolVersion, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 13];
    header[..8].copy_from_slice(&seq.to_be_bytes());
    header[8] = typ.0;
    header[9..11].copy_from_slice(&version.0.to_be_bytes());
    header[11..13].copy_from_slice(&(content.len() as u16).to_be_bytes());
    fn run<M: Mac + KeyInit>(key: &[u8], header: &[u8], content: &[u8]) -> Vec<u8> {
        let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else { return Vec::new() };
        m.update(header);
        m.update(content);
        m.finalize().into_bytes().to_vec()
    }
    match mac {
        MacHash::Sha1 => run::<Hmac<Sha1>>(key, &header, content),
        MacHash::Sha256 => run::<Hmac<Sha256>>(key, &header, content),
        MacHash::Sha384 => run::<Hmac<Sha384>>(key, &header, content),
    }
}

fn gcm_aad(seq: u64, typ: ContentType, version: ProtocolVersion, plaintext_len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = typ.0;
    aad[9..11].copy_from_slice(&version.0.to_be_bytes());
    aad[11..13].copy_from_slice(&(plaintext_len as u16).to_be_bytes());
    aad
}

/// CBC over whole blocks (padding is TLS's own, added by the caller). `data.len()` is a multiple of 16.
fn cbc_encrypt(key: &AesKey, iv: &[u8; AES_BLOCK], data: &mut [u8]) {
    let len = data.len();
    let _ = match key {
        AesKey::Aes128(k) => cbc::Encryptor::<Aes128>::new(k.into(), iv.into()).encrypt_padded_mut::<NoPadding>(data, len).map(|_| ()),
        AesKey::Aes256(k) => cbc::Encryptor::<Aes256>::new(k.into(), iv.into()).encrypt_padded_mut::<NoPadding>(data, len).map(|_| ()),
    };
}

fn cbc_decrypt(key: &AesKey, iv: &[u8; AES_BLOCK], data: &mut [u8]) -> bool {
    match key {
        AesKey::Aes128(k) => cbc::Decryptor::<Aes128>::new(k.into(), iv.into()).decrypt_padded_mut::<NoPadding>(data).is_ok(),
        AesKey::Aes256(k) => cbc::Decryptor::<Aes256>::new(k.into(), iv.into()).decrypt_padded_mut::<NoPadding>(data).is_ok(),
    }
}

impl RecordProtection {
    fn new(cipher: BulkCipher, version: ProtocolVersion, mac_key: &[u8], key: &[u8], iv: &[u8]) -> RecordProtection {
        let protection = match cipher {
            BulkCipher::AesCbc { mac, .. } => {
                // TLS 1.0 chains IVs across records, starting from the key block's IV (RFC 2246 §6.2.3.2);
                // TLS 1.1+ sends a fresh IV in front of each record.
                let chained_iv = (version.0 < ProtocolVersion::TLS1_1.0).then(|| {
                    let mut first = [0u8; AES_BLOCK];
                    first.iter_mut().zip(iv).for_each(|(d, s)| *d = *s);
                    first
                });
                Protection::Cbc { key: AesKey::new(key), mac, mac_key: mac_key.to_vec(), chained_iv }
            }
            BulkCipher::AesGcm { .. } => {
                let mut salt = [0u8; GCM_SALT];
                salt.iter_mut().zip(iv).for_each(|(d, s)| *d = *s);
                let aead = match AesKey::new(key) {
                    AesKey::Aes128(k) => GcmKey::Aes128(Box::new(Aes128Gcm::new(&k.into()))),
                    AesKey::Aes256(k) => GcmKey::Aes256(Box::new(Aes256Gcm::new(&k.into()))),
                };
                Protection::Gcm { aead, salt }
            }
        };
        RecordProtection { protection, seq: 0 }
    }

    /// The protected fragment of one record carrying `plaintext` (at most 2^14 bytes), as sent
    /// under a record header of `typ` and `version`. Advances the sequence number.
    pub fn seal(&mut self, typ: ContentType, version: ProtocolVersion, plaintext: &[u8]) -> Vec<u8> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        match &mut self.protection {
            Protection::Cbc { key, mac, mac_key, chained_iv } => {
                let tag = record_mac(*mac, mac_key, seq, typ, version, plaintext);
                let unpadded = plaintext.len() + tag.len() + 1;
                let pad = (AES_BLOCK - unpadded % AES_BLOCK) % AES_BLOCK;
                let mut body = Vec::with_capacity(AES_BLOCK + unpadded + pad);
                body.extend_from_slice(plaintext);
                body.extend_from_slice(&tag);
                // pad bytes and the padding_length byte all carry the padding length.
                body.extend(std::iter::repeat_n(pad as u8, pad + 1));
                match chained_iv {
                    Some(iv) => {
                        cbc_encrypt(key, iv, &mut body);
                        if let Some(last) = body.rchunks_exact(AES_BLOCK).next() {
                            iv.copy_from_slice(last);
                        }
                        body
                    }
                    None => {
                        let mut iv = [0u8; AES_BLOCK];
                        rand::thread_rng().fill_bytes(&mut iv);
                        cbc_encrypt(key, &iv, &mut body);
                        let mut out = Vec::with_capacity(AES_BLOCK + body.len());
                        out.extend_from_slice(&iv);
                        out.extend_from_slice(&body);
                        out
                    }
                }
            }
            Protection::Gcm { aead, salt } => {
                // The explicit nonce is the sequence number, as OpenSSL does: unique per key.
                let explicit = seq.to_be_bytes();
                let mut nonce = [0u8; GCM_SALT + GCM_EXPLICIT_NONCE];
                nonce[..GCM_SALT].copy_from_slice(salt);
                nonce[GCM_SALT..].copy_from_slice(&explicit);
                let aad = gcm_aad(seq, typ, version, plaintext.len());
                let mut body = plaintext.to_vec();
                let tag = match aead {
                    GcmKey::Aes128(k) => k.encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut body),
                    GcmKey::Aes256(k) => k.encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut body),
                };
                let mut out = Vec::with_capacity(GCM_EXPLICIT_NONCE + body.len() + GCM_TAG);
                out.extend_from_slice(&explicit);
                out.extend_from_slice(&body);
                // Encryption only fails for inputs far beyond a record's size.
                if let Ok(tag) = tag {
                    out.extend_from_slice(&tag);
                }
                out
            }
        }
    }

    /// `plaintext` as whole records (header included), split into 2^14-byte fragments as
    /// `do_ssl3_write` splits them.
    pub fn seal_records(&mut self, typ: ContentType, version: ProtocolVersion, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |this: &mut Self, chunk: &[u8]| {
            let fragment = this.seal(typ, version, chunk);
            RecordHeader { content_type: typ, version, length: fragment.len() as u16 }.encode(&mut out);
            out.extend_from_slice(&fragment);
        };
        if plaintext.is_empty() {
            push(self, &[]);
        }
        for chunk in plaintext.chunks(MAX_FRAGMENT_LEN) {
            push(self, chunk);
        }
        out
    }

    /// The plaintext of a protected fragment received under a header of `typ` and `version`.
    pub fn open(&mut self, typ: ContentType, version: ProtocolVersion, fragment: &[u8]) -> Result<Vec<u8>, RecordError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let plaintext = match &mut self.protection {
            Protection::Cbc { key, mac, mac_key, chained_iv } => {
                let explicit = chained_iv.is_none();
                let iv_len = if explicit { AES_BLOCK } else { 0 };
                let min = iv_len + (mac.output_len() + 1).div_ceil(AES_BLOCK) * AES_BLOCK;
                if fragment.len() < min || !(fragment.len() - iv_len).is_multiple_of(AES_BLOCK) {
                    return Err(RecordError::BadRecordMac);
                }
                let mut iv = [0u8; AES_BLOCK];
                let (iv_bytes, ciphertext) = fragment.split_at(iv_len);
                match chained_iv {
                    Some(chained) => iv = *chained,
                    None => iv.copy_from_slice(iv_bytes),
                }
                let mut body = ciphertext.to_vec();
                if let (Some(chained), Some(last)) = (chained_iv.as_mut(), ciphertext.rchunks_exact(AES_BLOCK).next()) {
                    chained.copy_from_slice(last);
                }
                if !cbc_decrypt(key, &iv, &mut body) {
                    return Err(RecordError::BadRecordMac);
                }
                let pad = body.last().copied().unwrap_or(0) as usize;
                let padding_ok = pad + 1 + mac.output_len() <= body.len()
                    && body[body.len() - pad - 1..].iter().all(|b| *b as usize == pad);
                // Check a MAC even when the padding is wrong, so both failures take similar time.
                let strip = if padding_ok { pad + 1 } else { 0 };
                let content_len = body.len() - strip - mac.output_len();
                let (content, tag) = body[..body.len() - strip].split_at(content_len);
                let expected = record_mac(*mac, mac_key, seq, typ, version, content);
                if !(constant_time_eq(tag, &expected) && padding_ok) {
                    return Err(RecordError::BadRecordMac);
                }
                body.truncate(content_len);
                body
            }
            Protection::Gcm { aead, salt } => {
                if fragment.len() < GCM_EXPLICIT_NONCE + GCM_TAG {
                    return Err(RecordError::BadRecordMac);
                }
                let (explicit, rest) = fragment.split_at(GCM_EXPLICIT_NONCE);
                let (ciphertext, tag) = rest.split_at(rest.len() - GCM_TAG);
                let mut nonce = [0u8; GCM_SALT + GCM_EXPLICIT_NONCE];
                nonce[..GCM_SALT].copy_from_slice(salt);
                nonce[GCM_SALT..].copy_from_slice(explicit);
                let aad = gcm_aad(seq, typ, version, ciphertext.len());
                let mut body = ciphertext.to_vec();
                let tag = Tag::from_slice(tag);
                let opened = match aead {
                    GcmKey::Aes128(k) => k.decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut body, tag),
                    GcmKey::Aes256(k) => k.decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut body, tag),
                };
                opened.map_err(|_| RecordError::BadRecordMac)?;
                body
            }
        };
        if plaintext.len() > MAX_FRAGMENT_LEN {
            return Err(RecordError::Overflow);
        }
        Ok(plaintext)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n', ':'], "")).unwrap()
    }

    #[test]
    fn prf_sha256_known_answer() {
        // The widely published TLS 1.2 PRF test vector (IETF TLS list, 100 bytes of P_SHA256).
        let mut out = [0u8; 100];
        prf(PrfHash::Sha256, &unhex("9bbe436ba940f017b17652849a71db35"), b"test label", &unhex("a0ba9f936cda311827a6f796ffd5198c"), &mut out);
        let expected = unhex(
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa0\
             22f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66",
        );
        assert_eq!(out.to_vec(), expected);
    }

    #[test]
    fn prf_sha384_known_answer() {
        // The companion SHA-384 vector (148 bytes), also reproduced by OpenSSL 3's TLS1-PRF KDF.
        let mut out = [0u8; 148];
        prf(PrfHash::Sha384, &unhex("b80b733d6ceefcdc71566ea48e5567df"), b"test label", &unhex("cd665cf6a8447dd6ff8b27555edb7465"), &mut out);
        let expected = unhex(
            "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700\
             884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d9184259b5bf8cd4d90fa0d31e2dec479e4f1a2\
             6066f2eea9a69236a3e52655c9e9aee691c8f3a26854308d5eaa3be85e0990703d73e56f",
        );
        assert_eq!(out.to_vec(), expected);
    }

    #[test]
    fn prf_md5_sha1_known_answer() {
        // TLS 1.0/1.1 PRF with an odd-length secret (the halves share the middle byte); expected
        // output from `openssl kdf -keylen 48 -kdfopt digest:MD5-SHA1 -kdfopt
        // hexsecret:0102030405060708090a0b0c0d0e0f1011 -kdfopt seed:"test label" -kdfopt
        // hexseed:a0ba9f936cda311827a6f796ffd5198c TLS1-PRF` (OpenSSL 3.0).
        let mut out = [0u8; 48];
        prf(PrfHash::Md5Sha1, &unhex("0102030405060708090a0b0c0d0e0f1011"), b"test label", &unhex("a0ba9f936cda311827a6f796ffd5198c"), &mut out);
        let expected = unhex("f96994cf16db57ee5af560084e1b9fa2e1bffde1858bf529381315f67d71d3ef413428a3edebf81e734fa15cc890008d");
        assert_eq!(out.to_vec(), expected);
    }

    fn pair(suite: u16, version: ProtocolVersion) -> (RecordProtection, RecordProtection) {
        let spec = SuiteSpec::for_suite(CipherSuite(suite)).unwrap();
        let master = [7u8; 48];
        // Both ends derive from the same secrets; the client's sealing side is the server's opening side.
        let server = derive_keys(&spec, version, &master, &[1; 32], &[2; 32]);
        let client = derive_keys(&spec, version, &master, &[1; 32], &[2; 32]);
        (server.server_write, client.server_write)
    }

    #[test]
    fn record_round_trip_every_suite_and_version() {
        let suites = [0x002f, 0x0035, 0x003c, 0xc013, 0xc014, 0xc028, 0x009c, 0xc02f, 0xc030, 0xc02b];
        for suite in suites {
            for version in [ProtocolVersion::TLS1_0, ProtocolVersion::TLS1_1, ProtocolVersion::TLS1_2] {
                let spec = SuiteSpec::for_suite(CipherSuite(suite)).unwrap();
                let gcm_or_sha2 = !matches!(spec.cipher, BulkCipher::AesCbc { mac: MacHash::Sha1, .. });
                if gcm_or_sha2 && version != ProtocolVersion::TLS1_2 {
                    continue;
                }
                let (mut sealer, mut opener) = pair(suite, version);
                for len in [0usize, 1, 15, 16, 19, 100, 16384] {
                    let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
                    let fragment = sealer.seal(ContentType::APPLICATION_DATA, version, &plaintext);
                    assert_ne!(&fragment[..], &plaintext[..]);
                    let opened = opener.open(ContentType::APPLICATION_DATA, version, &fragment).unwrap();
                    assert_eq!(opened, plaintext, "suite {suite:#06x} {version} len {len}");
                }
            }
        }
    }

    #[test]
    fn tampering_and_replay_fail_as_bad_record_mac() {
        for suite in [0x002f, 0xc02f] {
            let (mut sealer, mut opener) = pair(suite, ProtocolVersion::TLS1_2);
            let fragment = sealer.seal(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, b"hello heartbeat");
            for i in [0, fragment.len() / 2, fragment.len() - 1] {
                let mut bad = fragment.clone();
                bad[i] ^= 1;
                let (_, mut fresh) = pair(suite, ProtocolVersion::TLS1_2);
                assert_eq!(fresh.open(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &bad), Err(RecordError::BadRecordMac));
            }
            // The content type is authenticated too.
            let (_, mut fresh) = pair(suite, ProtocolVersion::TLS1_2);
            assert!(fresh.open(ContentType::APPLICATION_DATA, ProtocolVersion::TLS1_2, &fragment).is_err());
            // Sequence numbers: the first open works, the same record again does not.
            assert!(opener.open(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &fragment).is_ok());
            assert!(opener.open(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &fragment).is_err());
            // Short fragments are rejected, not sliced.
            for len in 0..fragment.len() {
                let (_, mut fresh) = pair(suite, ProtocolVersion::TLS1_2);
                assert!(fresh.open(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &fragment[..len]).is_err());
            }
        }
    }

    #[test]
    fn record_sizes_match_openssl() {
        // encrypted-heartbleed-vulnerable-1.0.1f-tls12.pcap: AES128-SHA, TLS 1.2; a 16403-byte
        // heartbeat response became records of 16432 and 64 bytes, the request (3 bytes) one of 48.
        let (mut sealer, _) = pair(0x002f, ProtocolVersion::TLS1_2);
        let records = sealer.seal_records(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &[0u8; 16403]);
        let mut d = bleedwatch_wire::record::Deframer::new();
        d.push(&records).unwrap();
        let mut lens = Vec::new();
        while let Some(r) = d.next_record().unwrap() {
            lens.push(r.fragment.len());
        }
        assert_eq!(lens, vec![16432, 64]);
        assert_eq!(sealer.seal(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &[1, 0x40, 0]).len(), 48);
        // s_client-1.0.1f-normal-session: ECDHE-RSA-AES256-GCM-SHA384, a 37-byte heartbeat in 61 bytes.
        let (mut gcm, _) = pair(0xc030, ProtocolVersion::TLS1_2);
        assert_eq!(gcm.seal(ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &[0u8; 37]).len(), 61);
    }

    #[test]
    fn tls10_cbc_chains_iv_without_sending_it() {
        let (mut sealer, mut opener) = pair(0x002f, ProtocolVersion::TLS1_0);
        let a = sealer.seal(ContentType::APPLICATION_DATA, ProtocolVersion::TLS1_0, b"same");
        let b = sealer.seal(ContentType::APPLICATION_DATA, ProtocolVersion::TLS1_0, b"same");
        // No explicit IV: 4 + 20 + pad to 32 bytes.
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(opener.open(ContentType::APPLICATION_DATA, ProtocolVersion::TLS1_0, &a).unwrap(), b"same");
        assert_eq!(opener.open(ContentType::APPLICATION_DATA, ProtocolVersion::TLS1_0, &b).unwrap(), b"same");
    }

    #[test]
    fn finished_depends_on_side_and_transcript() {
        let mut t = Transcript::default();
        t.push(b"client hello bytes");
        let client = verify_data(PrfHash::Sha256, &[9; 48], Side::Client, &t);
        let server = verify_data(PrfHash::Sha256, &[9; 48], Side::Server, &t);
        assert_ne!(client, server);
        // Cross-check against the PRF directly.
        let mut direct = [0u8; 12];
        prf(PrfHash::Sha256, &[9; 48], b"client finished", &Sha256::digest(b"client hello bytes"), &mut direct);
        assert_eq!(client, direct);
        assert_eq!(t.hash(PrfHash::Md5Sha1).len(), 36);
        assert!(constant_time_eq(&client, &direct));
        assert!(!constant_time_eq(&client, &server));
    }

    #[test]
    fn suites_the_lab_can_complete() {
        for id in [0x002f, 0x0035, 0xc013, 0xc014, 0xc02f, 0xc030, 0x009c, 0xc02b, 0xc009, 0x0033, 0x0039, 0x009e, 0x009f] {
            assert!(SuiteSpec::for_suite(CipherSuite(id)).is_some(), "{id:#06x}");
        }
        // DES, RC4, 3DES, CAMELLIA, SEED, IDEA: negotiated like 1.0.1f, never completed.
        for id in [0x0015, 0x0005, 0x000a, 0x0041, 0x0096, 0x0007, 0xc011, 0xc012] {
            assert!(SuiteSpec::for_suite(CipherSuite(id)).is_none(), "{id:#06x}");
        }
        assert_eq!(SuiteSpec::for_suite(CipherSuite(0xc030)).unwrap().prf_hash(ProtocolVersion::TLS1_2), PrfHash::Sha384);
        assert_eq!(SuiteSpec::for_suite(CipherSuite(0xc030)).unwrap().prf_hash(ProtocolVersion::TLS1_1), PrfHash::Md5Sha1);
    }
}
