//! The conditions and messages of Zeek's `policy/protocols/ssl/heartbleed.zeek`, per connection, so
//! that each bleedwatch finding can carry the notice Zeek would raise and results can be compared with
//! Zeek's `notice.log` line by line.
//!
//! Reproduced from the script: the plaintext request check (`payload_length > length - 19`, or
//! `> length` below 19 bytes), the success notice on any response after a detection, and for
//! encrypted heartbeats the "before ciphertext" / "within first minute" notice, the many-requests
//! counters, the odd-length checks against the per-cipher minimum lengths (separate tables for TLS 1.0
//! and for TLS 1.1/1.2), and the encrypted success (a server record longer than the last client
//! request). Notice suppression by identifier (one hour, the notice framework's default) is kept
//! too, since it decides which notices appear. Where the script would abort on a missing field
//! (cipher or version unknown), the remaining checks are skipped as Zeek skips them.
//!
//! Not reproduced: Zeek parses every heartbeat record as a heartbeat message, including the
//! continuation records of a long response, whose first bytes are leaked memory; bleedwatch does not
//! judge by leaked content, so such records raise nothing here.

use std::borrow::Cow;

use crate::finding::Notice;
use crate::notice_message::NoticeMessage;
use crate::timestamp::Timestamp;
use crate::tls::Dir;

/// Which of the script's notice statements fired (several share a notice type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    PlainOverflow,
    PlainScan,
    PlainSuccess,
    EncryptedBeforeData,
    EncryptedFirstMinute,
    ManyRequests,
    OddLengthTiny,
    OddLengthCipher,
    EncryptedSuccess,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ZeekNotice {
    pub rule: Rule,
    pub note: Notice,
    pub msg: NoticeMessage,
    pub n: Option<u64>,
    /// Sender of the record that raised it.
    pub from: Dir,
}

/// Minimum heartbeat record lengths per cipher, TLS 1.1 and 1.2 (explicit IVs).
const MIN_LENGTHS_TLS11: &[(&str, u64)] = &[
    ("_AES_256_GCM_SHA384", 43),
    ("_AES_128_GCM_SHA256", 43),
    ("_256_CBC_SHA384", 96),
    ("_256_CBC_SHA256", 80),
    ("_256_CBC_SHA", 64),
    ("_128_CBC_SHA256", 80),
    ("_128_CBC_SHA", 64),
    ("_3DES_EDE_CBC_SHA", 48),
    ("_SEED_CBC_SHA", 64),
    ("_IDEA_CBC_SHA", 48),
    ("_DES_CBC_SHA", 48),
    ("_DES40_CBC_SHA", 48),
    ("_RC4_128_SHA", 39),
    ("_RC4_128_MD5", 35),
    ("_RC4_40_MD5", 35),
    ("_RC2_CBC_40_MD5", 48),
];

/// Minimum heartbeat record lengths per cipher, SSLv3 and TLS 1.0 (and anything else).
const MIN_LENGTHS: &[(&str, u64)] = &[
    ("_256_CBC_SHA", 48),
    ("_128_CBC_SHA", 48),
    ("_3DES_EDE_CBC_SHA", 40),
    ("_SEED_CBC_SHA", 48),
    ("_IDEA_CBC_SHA", 40),
    ("_DES_CBC_SHA", 40),
    ("_DES40_CBC_SHA", 40),
    ("_RC4_128_SHA", 39),
    ("_RC4_128_MD5", 35),
    ("_RC4_40_MD5", 35),
    ("_RC2_CBC_40_MD5", 40),
];

/// The first matching table entry for a cipher name (`pattern in cipher`, patterns anchored at the
/// end) and version (`TLSv11`/`TLSv12` pick the explicit-IV table).
pub(crate) fn min_length(cipher: &str, version: &str) -> Option<(&'static str, u64)> {
    let table = if version == "TLSv11" || version == "TLSv12" { MIN_LENGTHS_TLS11 } else { MIN_LENGTHS };
    table.iter().find(|(suffix, _)| cipher.ends_with(suffix)).copied()
}

/// Zeek's name for a protocol version (`SSL::version_strings`).
pub(crate) fn version_string(version: u16) -> Cow<'static, str> {
    match version {
        0x0002 => "SSLv2".into(),
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv10".into(),
        0x0302 => "TLSv11".into(),
        0x0303 => "TLSv12".into(),
        0x0304 => "TLSv13".into(),
        0xfeff => "DTLSv10".into(),
        0xfefd => "DTLSv12".into(),
        other => format!("unknown-{other}").into(),
    }
}

const SUPPRESS_NS: i64 = 3600 * Timestamp::NANOS_PER_SEC;
const MAX_SUPPRESSION_ENTRIES: usize = 64;

/// The script's per-connection state (its additions to `SSL::Info`) plus notice suppression.
#[derive(Debug, Default)]
pub(crate) struct ZeekHeartbleed {
    heartbleed_detected: bool,
    originator_heartbeats: u64,
    responder_heartbeats: u64,
    last_originator_request: Option<u64>,
    last_responder_request: Option<u64>,
    suppressed: Vec<(Notice, NoticeId, Timestamp)>,
}

/// A notice's suppression identifier, kept inline: one is built for every heartbeat that could raise
/// a notice, and most are suppressed, so it must not allocate. The script's identifiers are at most
/// two decimal `count`s side by side (40 bytes), so 48 bytes always hold them whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NoticeId {
    bytes: [u8; 48],
    len: u8,
}

impl NoticeId {
    const EMPTY: NoticeId = NoticeId { bytes: [0; 48], len: 0 };

    /// Appends text (as the script's `cat` does); what does not fit is cut, which two counts never are.
    fn text(mut self, text: &str) -> Self {
        let at = usize::from(self.len);
        let n = text.len().min(self.bytes.len() - at);
        self.bytes[at..at + n].copy_from_slice(&text.as_bytes()[..n]);
        self.len += n as u8;
        self
    }

    /// Appends a count in decimal, as `cat` writes it (digit by digit: this runs for every heartbeat).
    fn count(self, value: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.text(std::str::from_utf8(&digits[at..]).unwrap_or_default())
    }
}

impl ZeekHeartbleed {
    /// Raises a notice unless an identical one (type and identifier) was raised within the hour. The
    /// message is only written for a notice that is raised.
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        now: Timestamp,
        rule: Rule,
        note: Notice,
        identifier: NoticeId,
        msg: impl FnOnce() -> NoticeMessage,
        n: Option<u64>,
        from: Dir,
        out: &mut Vec<ZeekNotice>,
    ) {
        if let Some(entry) = self.suppressed.iter_mut().find(|(k, id, _)| *k == note && *id == identifier) {
            if now.0.saturating_sub(entry.2 .0) < SUPPRESS_NS {
                return;
            }
            entry.2 = now;
        } else {
            if self.suppressed.len() >= MAX_SUPPRESSION_ENTRIES {
                self.suppressed.remove(0);
            }
            self.suppressed.push((note, identifier, now));
        }
        out.push(ZeekNotice { rule, note, msg: msg(), n, from });
    }

    /// `event ssl_heartbeat`: a plaintext heartbeat record of `length` bytes.
    pub fn plaintext(&mut self, now: Timestamp, from: Dir, length: u64, heartbeat_type: u8, payload_length: u64) -> Vec<ZeekNotice> {
        let mut out = Vec::new();
        if heartbeat_type == 1 {
            let checklength = if length < 3 + 16 { length } else { length - 3 - 16 };
            if payload_length > checklength {
                self.heartbleed_detected = true;
                self.raise(
                    now,
                    Rule::PlainOverflow,
                    Notice::Attack,
                    NoticeId::EMPTY.count(length).count(payload_length),
                    || NoticeMessage::Overflow { length, payload_length },
                    None,
                    from,
                    &mut out,
                );
            } else if from == Dir::Orig {
                self.raise(
                    now,
                    Rule::PlainScan,
                    Notice::Attack,
                    NoticeId::EMPTY.count(length),
                    || NoticeMessage::PlaintextScan { length, payload_length },
                    Some(length),
                    from,
                    &mut out,
                );
            }
        }
        if heartbeat_type == 2 && self.heartbleed_detected {
            self.raise(
                now,
                Rule::PlainSuccess,
                Notice::AttackSuccess,
                NoticeId::EMPTY,
                || NoticeMessage::PlaintextSuccess { length, payload_length },
                None,
                from,
                &mut out,
            );
        }
        out
    }

    /// `event ssl_encrypted_heartbeat`: an encrypted heartbeat record of `length` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn encrypted(
        &mut self,
        now: Timestamp,
        start: Timestamp,
        from: Dir,
        length: u64,
        appdata_records: u64,
        cipher: Option<&str>,
        version: Option<&str>,
    ) -> Vec<ZeekNotice> {
        let mut out = Vec::new();
        let is_client = from == Dir::Orig;
        if is_client {
            self.originator_heartbeats += 1;
        } else {
            self.responder_heartbeats += 1;
        }
        let duration = now.secs_since(start);
        if appdata_records == 0 {
            self.raise(
                now,
                Rule::EncryptedBeforeData,
                Notice::Attack,
                NoticeId::EMPTY.text("early"),
                || NoticeMessage::BeforeCiphertext { length, is_client },
                Some(length),
                from,
                &mut out,
            );
        } else if duration < 60.0 {
            self.raise(
                now,
                Rule::EncryptedFirstMinute,
                Notice::Attack,
                NoticeId::EMPTY.text("early"),
                || NoticeMessage::FirstMinute { length, is_client, secs: duration },
                Some(length),
                from,
                &mut out,
            );
        }
        let (orig, resp) = (self.originator_heartbeats, self.responder_heartbeats);
        if orig > resp + 3 {
            self.raise(
                now,
                Rule::ManyRequests,
                Notice::ManyRequests,
                NoticeId::EMPTY.count(resp / 1000),
                || NoticeMessage::RequestsWithoutReplies { orig, resp },
                Some(orig - resp),
                from,
                &mut out,
            );
        }
        if resp > orig + 3 {
            self.raise(
                now,
                Rule::ManyRequests,
                Notice::ManyRequests,
                NoticeId::EMPTY.count(resp / 1000),
                || NoticeMessage::ResponsesWithoutRequests { orig, resp },
                Some(resp - orig),
                from,
                &mut out,
            );
        }
        // From here the script reads c$ssl$cipher and c$ssl$version; without a ServerHello those are
        // unset and Zeek aborts the handler.
        let (Some(cipher), Some(version)) = (cipher, version) else { return out };
        if is_client && length < 19 {
            self.raise(
                now,
                Rule::OddLengthTiny,
                Notice::OddLength,
                NoticeId::EMPTY.text("-weak-").count(length),
                || NoticeMessage::TooShort { length, cipher: cipher.to_string(), secs: duration },
                Some(length),
                from,
                &mut out,
            );
        }
        if let Some((pattern, min)) = min_length(cipher, version) {
            if length < min {
                self.raise(
                    now,
                    Rule::OddLengthCipher,
                    Notice::OddLength,
                    NoticeId::EMPTY.text("-weak-").count(length),
                    || NoticeMessage::TooShortForCipher { length, min, cipher: cipher.to_string(), pattern },
                    Some(length),
                    from,
                    &mut out,
                );
            }
        }
        if is_client {
            if self.last_responder_request.is_some() {
                // A server-originated heartbeat: the script ignores the client's answer.
                self.last_responder_request = None;
            } else {
                self.last_originator_request = Some(length);
            }
        } else {
            match self.last_originator_request {
                Some(request) if request < length => self.raise(
                    now,
                    Rule::EncryptedSuccess,
                    Notice::AttackSuccess,
                    NoticeId::EMPTY,
                    || NoticeMessage::EncryptedSuccess { request, length, secs: duration },
                    None,
                    from,
                    &mut out,
                ),
                Some(_) => {}
                None => self.last_responder_request = Some(length),
            }
            self.last_originator_request = None;
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_messages_match_zeek_baselines() {
        let mut z = ZeekHeartbleed::default();
        let n = z.plaintext(Timestamp(0), Dir::Orig, 16368, 1, 16365);
        assert_eq!(n[0].msg.to_string(), "An TLS heartbleed attack was detected! Record length 16368. Payload length 16365");
        let n = z.plaintext(Timestamp(1), Dir::Resp, 16384, 2, 16365);
        assert_eq!(n[0].note, Notice::AttackSuccess);
        assert_eq!(n[0].msg.to_string(), "An TLS heartbleed attack detected before was probably exploited. Message length: 16384. Payload length: 16365");
        // Only once per connection.
        assert!(z.plaintext(Timestamp(2), Dir::Resp, 16384, 2, 16365).is_empty());
    }

    #[test]
    fn encrypted_messages_match_zeek_baselines() {
        let mut z = ZeekHeartbleed::default();
        let start = Timestamp(0);
        let cipher = Some("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA");
        let n = z.encrypted(Timestamp(22_781_000), start, Dir::Orig, 32, 0, cipher, Some("TLSv10"));
        let msgs: Vec<_> = n.iter().map(|x| x.msg.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "Heartbeat before ciphertext. Probable attack or scan. Length: 32, is_client: 1",
                "Heartbeat message smaller than minimum required length. Probable attack. Message length: 32. Required length: 48. Cipher: TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA. Cipher match: /^?(_256_CBC_SHA$)$?/",
            ]
        );
        let n = z.encrypted(Timestamp(35_413_000), start, Dir::Resp, 16416, 0, cipher, Some("TLSv10"));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].msg.to_string(), "An encrypted TLS heartbleed attack was probably detected! First packet client record length 32, first packet server record length 16416. Time: 0.035413");
        assert!(z.encrypted(Timestamp(40_000_000), start, Dir::Resp, 16416, 0, cipher, Some("TLSv10")).is_empty());
    }

    #[test]
    fn many_requests_and_unknown_cipher() {
        let mut z = ZeekHeartbleed::default();
        let mut notes = Vec::new();
        for i in 0..5 {
            notes.extend(z.encrypted(Timestamp(i), Timestamp(0), Dir::Orig, 40, 3, None, None));
        }
        assert_eq!(notes.iter().filter(|n| n.note == Notice::ManyRequests).count(), 1);
        assert!(notes.iter().any(|n| n.msg.to_string().starts_with("Heartbeat within first minute.")));
    }

    #[test]
    fn notice_identifiers_are_the_scripts_cat() {
        let text = |id: NoticeId| String::from_utf8(id.bytes[..usize::from(id.len)].to_vec()).unwrap();
        assert_eq!(text(NoticeId::EMPTY.count(1234).count(16384)), "123416384");
        assert_eq!(text(NoticeId::EMPTY.text("-weak-").count(0)), "-weak-0");
        // `cat` joins without a separator, so Zeek sees these two as the same identifier; so do we.
        assert_eq!(NoticeId::EMPTY.count(12).count(3), NoticeId::EMPTY.count(1).count(23));
        assert_eq!(text(NoticeId::EMPTY.count(u64::MAX).count(u64::MAX)), format!("{}{}", u64::MAX, u64::MAX));
    }

    #[test]
    fn min_length_tables() {
        assert_eq!(min_length("TLS_RSA_WITH_AES_128_CBC_SHA", "TLSv12"), Some(("_128_CBC_SHA", 64)));
        assert_eq!(min_length("TLS_RSA_WITH_AES_128_CBC_SHA256", "TLSv12"), Some(("_128_CBC_SHA256", 80)));
        assert_eq!(min_length("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLSv10"), Some(("_256_CBC_SHA", 48)));
        assert_eq!(min_length("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLSv10"), None);
    }
}
