//! Wire values as open enums: a newtype over the integer with named constants, so that an unknown
//! value from a peer is kept and reported rather than rejected or lost.

macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident($int:ty) { $($(#[$vmeta:meta])* $variant:ident = $value:expr => $text:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $int);

        impl $name {
            $($(#[$vmeta])* pub const $variant: $name = $name($value);)*

            /// The standard name, or `None` for a value we do not know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }
    };
}

open_enum! {
    /// TLS record content type.
    ContentType(u8) {
        CHANGE_CIPHER_SPEC = 20 => "change_cipher_spec",
        ALERT = 21 => "alert",
        HANDSHAKE = 22 => "handshake",
        APPLICATION_DATA = 23 => "application_data",
        HEARTBEAT = 24 => "heartbeat",
    }
}

open_enum! {
    /// Protocol version as it appears on the wire (record layer and hello messages).
    ProtocolVersion(u16) {
        SSL3 = 0x0300 => "ssl3",
        TLS1_0 = 0x0301 => "tls1.0",
        TLS1_1 = 0x0302 => "tls1.1",
        TLS1_2 = 0x0303 => "tls1.2",
        TLS1_3 = 0x0304 => "tls1.3",
        DTLS1_0 = 0xfeff => "dtls1.0",
        DTLS1_2 = 0xfefd => "dtls1.2",
    }
}

impl ProtocolVersion {
    /// The versions a raw ClientHello can probe, newest first.
    pub const PROBEABLE_TLS: [ProtocolVersion; 4] =
        [ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_1, ProtocolVersion::TLS1_0, ProtocolVersion::SSL3];

    pub fn is_dtls(self) -> bool {
        self.0 >> 8 == 0xfe
    }

    /// Parses the names `name()` gives (and common spellings such as `tls12`, `TLSv1.2`).
    pub fn from_name(s: &str) -> Option<ProtocolVersion> {
        let norm: String = s.to_ascii_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let norm = norm.replace('v', "");
        Some(match norm.as_str() {
            "ssl3" | "ssl30" => ProtocolVersion::SSL3,
            "tls10" | "tls1" => ProtocolVersion::TLS1_0,
            "tls11" => ProtocolVersion::TLS1_1,
            "tls12" => ProtocolVersion::TLS1_2,
            "tls13" => ProtocolVersion::TLS1_3,
            "dtls10" | "dtls1" => ProtocolVersion::DTLS1_0,
            "dtls12" => ProtocolVersion::DTLS1_2,
            _ => return None,
        })
    }

    /// Orders versions by age, oldest first, across TLS and DTLS numbering (DTLS counts down).
    pub fn rank(self) -> u16 {
        match self {
            ProtocolVersion::DTLS1_0 => 0x0302,
            ProtocolVersion::DTLS1_2 => 0x0303,
            v => v.0,
        }
    }
}

open_enum! {
    /// Handshake message type.
    HandshakeType(u8) {
        HELLO_REQUEST = 0 => "hello_request",
        CLIENT_HELLO = 1 => "client_hello",
        SERVER_HELLO = 2 => "server_hello",
        HELLO_VERIFY_REQUEST = 3 => "hello_verify_request",
        NEW_SESSION_TICKET = 4 => "new_session_ticket",
        CERTIFICATE = 11 => "certificate",
        SERVER_KEY_EXCHANGE = 12 => "server_key_exchange",
        CERTIFICATE_REQUEST = 13 => "certificate_request",
        SERVER_HELLO_DONE = 14 => "server_hello_done",
        CERTIFICATE_VERIFY = 15 => "certificate_verify",
        CLIENT_KEY_EXCHANGE = 16 => "client_key_exchange",
        FINISHED = 20 => "finished",
        CERTIFICATE_STATUS = 22 => "certificate_status",
    }
}

open_enum! {
    /// Alert description.
    AlertDescription(u8) {
        CLOSE_NOTIFY = 0 => "close_notify",
        UNEXPECTED_MESSAGE = 10 => "unexpected_message",
        BAD_RECORD_MAC = 20 => "bad_record_mac",
        RECORD_OVERFLOW = 22 => "record_overflow",
        DECOMPRESSION_FAILURE = 30 => "decompression_failure",
        HANDSHAKE_FAILURE = 40 => "handshake_failure",
        NO_CERTIFICATE = 41 => "no_certificate",
        BAD_CERTIFICATE = 42 => "bad_certificate",
        UNSUPPORTED_CERTIFICATE = 43 => "unsupported_certificate",
        CERTIFICATE_REVOKED = 44 => "certificate_revoked",
        CERTIFICATE_EXPIRED = 45 => "certificate_expired",
        CERTIFICATE_UNKNOWN = 46 => "certificate_unknown",
        ILLEGAL_PARAMETER = 47 => "illegal_parameter",
        UNKNOWN_CA = 48 => "unknown_ca",
        ACCESS_DENIED = 49 => "access_denied",
        DECODE_ERROR = 50 => "decode_error",
        DECRYPT_ERROR = 51 => "decrypt_error",
        PROTOCOL_VERSION = 70 => "protocol_version",
        INSUFFICIENT_SECURITY = 71 => "insufficient_security",
        INTERNAL_ERROR = 80 => "internal_error",
        INAPPROPRIATE_FALLBACK = 86 => "inappropriate_fallback",
        USER_CANCELED = 90 => "user_canceled",
        NO_RENEGOTIATION = 100 => "no_renegotiation",
        MISSING_EXTENSION = 109 => "missing_extension",
        UNSUPPORTED_EXTENSION = 110 => "unsupported_extension",
        UNRECOGNIZED_NAME = 112 => "unrecognized_name",
        NO_APPLICATION_PROTOCOL = 120 => "no_application_protocol",
    }
}

open_enum! {
    /// Hello extension type.
    ExtensionType(u16) {
        SERVER_NAME = 0 => "server_name",
        STATUS_REQUEST = 5 => "status_request",
        SUPPORTED_GROUPS = 10 => "supported_groups",
        EC_POINT_FORMATS = 11 => "ec_point_formats",
        SIGNATURE_ALGORITHMS = 13 => "signature_algorithms",
        HEARTBEAT = 15 => "heartbeat",
        ALPN = 16 => "application_layer_protocol_negotiation",
        PADDING = 21 => "padding",
        ENCRYPT_THEN_MAC = 22 => "encrypt_then_mac",
        EXTENDED_MASTER_SECRET = 23 => "extended_master_secret",
        SESSION_TICKET = 35 => "session_ticket",
        SUPPORTED_VERSIONS = 43 => "supported_versions",
        KEY_SHARE = 51 => "key_share",
        RENEGOTIATION_INFO = 0xff01 => "renegotiation_info",
    }
}

open_enum! {
    /// Cipher suite. Named are the ones our ClientHello offers and a few signalling values.
    CipherSuite(u16) {
        TLS_RSA_WITH_RC4_128_MD5 = 0x0004 => "TLS_RSA_WITH_RC4_128_MD5",
        TLS_RSA_WITH_RC4_128_SHA = 0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        TLS_RSA_WITH_3DES_EDE_CBC_SHA = 0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA = 0x0016 => "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        TLS_RSA_WITH_AES_128_CBC_SHA = 0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        TLS_DHE_DSS_WITH_AES_128_CBC_SHA = 0x0032 => "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
        TLS_DHE_RSA_WITH_AES_128_CBC_SHA = 0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        TLS_RSA_WITH_AES_256_CBC_SHA = 0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        TLS_DHE_DSS_WITH_AES_256_CBC_SHA = 0x0038 => "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
        TLS_DHE_RSA_WITH_AES_256_CBC_SHA = 0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        TLS_RSA_WITH_AES_128_CBC_SHA256 = 0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        TLS_RSA_WITH_AES_256_CBC_SHA256 = 0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        TLS_RSA_WITH_CAMELLIA_128_CBC_SHA = 0x0041 => "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
        TLS_DHE_RSA_WITH_AES_128_CBC_SHA256 = 0x0067 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        TLS_DHE_RSA_WITH_AES_256_CBC_SHA256 = 0x006b => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        TLS_RSA_WITH_CAMELLIA_256_CBC_SHA = 0x0084 => "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
        TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA = 0x0088 => "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA",
        TLS_RSA_WITH_SEED_CBC_SHA = 0x0096 => "TLS_RSA_WITH_SEED_CBC_SHA",
        TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        TLS_RSA_WITH_AES_256_GCM_SHA384 = 0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 = 0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 = 0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        TLS_DHE_DSS_WITH_AES_128_GCM_SHA256 = 0x00a2 => "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
        TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
        TLS_AES_128_GCM_SHA256 = 0x1301 => "TLS_AES_128_GCM_SHA256",
        TLS_AES_256_GCM_SHA384 = 0x1302 => "TLS_AES_256_GCM_SHA384",
        TLS_CHACHA20_POLY1305_SHA256 = 0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        TLS_FALLBACK_SCSV = 0x5600 => "TLS_FALLBACK_SCSV",
        TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA = 0xc004 => "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA",
        TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA = 0xc005 => "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA",
        TLS_ECDHE_ECDSA_WITH_RC4_128_SHA = 0xc007 => "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA = 0xc008 => "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA = 0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA = 0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        TLS_ECDH_RSA_WITH_AES_128_CBC_SHA = 0xc00e => "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA",
        TLS_ECDH_RSA_WITH_AES_256_CBC_SHA = 0xc00f => "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA",
        TLS_ECDHE_RSA_WITH_RC4_128_SHA = 0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA = 0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA = 0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA = 0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 = 0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 = 0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 = 0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 = 0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    }
}

/// How a cipher suite authenticates and exchanges keys; decides which server messages follow the
/// Certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExchange {
    /// RSA key transport: no ServerKeyExchange.
    Rsa,
    /// Ephemeral Diffie-Hellman (finite field) signed by the certificate key.
    Dhe,
    /// Ephemeral elliptic-curve Diffie-Hellman signed by an RSA certificate.
    EcdheRsa,
    /// Ephemeral elliptic-curve Diffie-Hellman signed by an ECDSA certificate.
    EcdheEcdsa,
    /// Static ECDH from the certificate.
    Ecdh,
    /// TLS 1.3 suites and unknown values.
    Other,
}

impl CipherSuite {
    pub fn key_exchange(self) -> KeyExchange {
        match self.0 {
            0x0001..=0x000a | 0x002f | 0x0035 | 0x003c | 0x003d | 0x0041 | 0x0084 | 0x0096 | 0x009c | 0x009d => {
                KeyExchange::Rsa
            }
            0x0011..=0x0016 | 0x0032 | 0x0033 | 0x0038 | 0x0039 | 0x0040 | 0x0044 | 0x0045 | 0x0067 | 0x006a
            | 0x006b | 0x0087 | 0x0088 | 0x009a | 0x009e..=0x00a3 | 0xccaa => KeyExchange::Dhe,
            0xc001..=0xc005 | 0xc00b..=0xc00f => KeyExchange::Ecdh,
            0xc006..=0xc00a | 0xc023 | 0xc024 | 0xc02b | 0xc02c | 0xcca9 => KeyExchange::EcdheEcdsa,
            0xc010..=0xc014 | 0xc027 | 0xc028 | 0xc02f | 0xc030 | 0xcca8 => KeyExchange::EcdheRsa,
            _ => KeyExchange::Other,
        }
    }

    /// A broad offer covering static RSA, ECDHE, DHE, CBC, GCM, ChaCha20, 3DES and RC4 (PEERS.md
    /// pitfall 3: a narrow list misses servers that only speak old suites). Only suites defined for
    /// TLS 1.2 and earlier: the raw probe never speaks TLS 1.3. Static-RSA suites come first: the probe
    /// never finishes the key exchange, so it should not make the server sign an ephemeral key for
    /// nothing (that signature was most of nginx's CPU in the scan benchmark).
    pub const BROAD_OFFER: &'static [CipherSuite] = &[
        CipherSuite::TLS_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_RSA_WITH_AES_256_CBC_SHA256,
        CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA256,
        CipherSuite::TLS_RSA_WITH_AES_256_CBC_SHA,
        CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA,
        CipherSuite::TLS_RSA_WITH_CAMELLIA_256_CBC_SHA,
        CipherSuite::TLS_RSA_WITH_CAMELLIA_128_CBC_SHA,
        CipherSuite::TLS_RSA_WITH_SEED_CBC_SHA,
        CipherSuite::TLS_RSA_WITH_3DES_EDE_CBC_SHA,
        CipherSuite::TLS_RSA_WITH_RC4_128_SHA,
        CipherSuite::TLS_RSA_WITH_RC4_128_MD5,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite::TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
        CipherSuite::TLS_DHE_RSA_WITH_AES_256_CBC_SHA256,
        CipherSuite::TLS_DHE_RSA_WITH_AES_128_CBC_SHA256,
        CipherSuite::TLS_DHE_RSA_WITH_AES_256_CBC_SHA,
        CipherSuite::TLS_DHE_DSS_WITH_AES_256_CBC_SHA,
        CipherSuite::TLS_DHE_RSA_WITH_AES_128_CBC_SHA,
        CipherSuite::TLS_DHE_DSS_WITH_AES_128_CBC_SHA,
        CipherSuite::TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA,
        CipherSuite::TLS_ECDH_RSA_WITH_AES_256_CBC_SHA,
        CipherSuite::TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA,
        CipherSuite::TLS_ECDH_RSA_WITH_AES_128_CBC_SHA,
        CipherSuite::TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA,
        CipherSuite::TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
        CipherSuite::TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_RC4_128_SHA,
        CipherSuite::TLS_ECDHE_RSA_WITH_RC4_128_SHA,
        CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_kept() {
        assert_eq!(format!("{:?}", ContentType(99)), "ContentType(0x63)");
        assert_eq!(ContentType(24), ContentType::HEARTBEAT);
        assert_eq!(AlertDescription(10).name(), Some("unexpected_message"));
    }

    #[test]
    fn version_names_round_trip() {
        for v in ProtocolVersion::PROBEABLE_TLS {
            assert_eq!(ProtocolVersion::from_name(v.name().unwrap()), Some(v));
        }
        assert_eq!(ProtocolVersion::from_name("TLSv1.2"), Some(ProtocolVersion::TLS1_2));
        assert!(ProtocolVersion::DTLS1_2.rank() > ProtocolVersion::DTLS1_0.rank());
    }

    #[test]
    fn key_exchange_classes() {
        assert_eq!(CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA.key_exchange(), KeyExchange::Rsa);
        assert_eq!(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384.key_exchange(), KeyExchange::EcdheRsa);
        assert_eq!(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA.key_exchange(), KeyExchange::EcdheEcdsa);
        assert_eq!(CipherSuite::TLS_DHE_RSA_WITH_AES_256_CBC_SHA.key_exchange(), KeyExchange::Dhe);
    }
}
