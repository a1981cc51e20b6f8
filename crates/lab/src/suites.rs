//! The cipher suites OpenSSL 1.0.1f's default list offers with an RSA or ECDSA certificate (export and
//! anonymous suites left out), so the lab chooses what the real server would.

use bleedwatch_wire::types::KeyExchange;
use bleedwatch_wire::CipherSuite;

/// (suite, key exchange, TLS 1.2 only)
const SUITES: &[(u16, KeyExchange, bool)] = &[
    // RSA key transport
    (0x0004, KeyExchange::Rsa, false),
    (0x0005, KeyExchange::Rsa, false),
    (0x0007, KeyExchange::Rsa, false),
    (0x0009, KeyExchange::Rsa, false),
    (0x000a, KeyExchange::Rsa, false),
    (0x002f, KeyExchange::Rsa, false),
    (0x0035, KeyExchange::Rsa, false),
    (0x003c, KeyExchange::Rsa, true),
    (0x003d, KeyExchange::Rsa, true),
    (0x0041, KeyExchange::Rsa, false),
    (0x0084, KeyExchange::Rsa, false),
    (0x0096, KeyExchange::Rsa, false),
    (0x009c, KeyExchange::Rsa, true),
    (0x009d, KeyExchange::Rsa, true),
    // DHE with RSA signatures
    (0x0015, KeyExchange::Dhe, false),
    (0x0016, KeyExchange::Dhe, false),
    (0x0033, KeyExchange::Dhe, false),
    (0x0039, KeyExchange::Dhe, false),
    (0x0045, KeyExchange::Dhe, false),
    (0x0088, KeyExchange::Dhe, false),
    (0x009a, KeyExchange::Dhe, false),
    (0x0067, KeyExchange::Dhe, true),
    (0x006b, KeyExchange::Dhe, true),
    (0x009e, KeyExchange::Dhe, true),
    (0x009f, KeyExchange::Dhe, true),
    // ECDHE with RSA signatures
    (0xc011, KeyExchange::EcdheRsa, false),
    (0xc012, KeyExchange::EcdheRsa, false),
    (0xc013, KeyExchange::EcdheRsa, false),
    (0xc014, KeyExchange::EcdheRsa, false),
    (0xc027, KeyExchange::EcdheRsa, true),
    (0xc028, KeyExchange::EcdheRsa, true),
    (0xc02f, KeyExchange::EcdheRsa, true),
    (0xc030, KeyExchange::EcdheRsa, true),
    // ECDHE with ECDSA signatures
    (0xc007, KeyExchange::EcdheEcdsa, false),
    (0xc008, KeyExchange::EcdheEcdsa, false),
    (0xc009, KeyExchange::EcdheEcdsa, false),
    (0xc00a, KeyExchange::EcdheEcdsa, false),
    (0xc023, KeyExchange::EcdheEcdsa, true),
    (0xc024, KeyExchange::EcdheEcdsa, true),
    (0xc02b, KeyExchange::EcdheEcdsa, true),
    (0xc02c, KeyExchange::EcdheEcdsa, true),
];

/// OpenSSL's default: the client's order decides; the first suite the server can do wins.
pub fn choose(client_suites: &[CipherSuite], rsa_cert: bool, tls12: bool, ecdhe_ok: bool) -> Option<(CipherSuite, KeyExchange)> {
    client_suites.iter().find_map(|suite| {
        let (_, kx, tls12_only) = SUITES.iter().find(|(id, _, _)| *id == suite.0)?;
        let usable = match kx {
            KeyExchange::Rsa | KeyExchange::Dhe => rsa_cert,
            KeyExchange::EcdheRsa => rsa_cert && ecdhe_ok,
            KeyExchange::EcdheEcdsa => !rsa_cert && ecdhe_ok,
            _ => false,
        };
        (usable && (tls12 || !tls12_only)).then_some((*suite, *kx))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn client_order_and_certificate_type_decide() {
        let offer = [CipherSuite(0xc02c), CipherSuite(0xc030), CipherSuite(0x002f)];
        assert_eq!(choose(&offer, true, true, true).map(|c| c.0), Some(CipherSuite(0xc030)));
        assert_eq!(choose(&offer, true, false, true).map(|c| c.0), Some(CipherSuite(0x002f)));
        assert_eq!(choose(&offer, false, true, true).map(|c| c.0), Some(CipherSuite(0xc02c)));
        assert_eq!(choose(&offer, false, false, true), None);
        assert_eq!(choose(&offer, true, true, false).map(|c| c.0), Some(CipherSuite(0x002f)));
    }
}
