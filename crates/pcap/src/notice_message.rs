//! The message of a Zeek heartbleed notice, kept as the values it is made of, and Zeek's rendering
//! of intervals. A leaf: findings carry the message and the Zeek rules build it.

/// The message Zeek's heartbleed script writes with a notice (`notice.log`'s `msg`), kept as the
/// values it is made of and written out only when shown or serialized: most findings of a large
/// capture are only counted. Serializes as the text; text read back is kept as [`Self::Text`].
#[derive(Debug, Clone)]
pub enum NoticeMessage {
    Overflow { length: u64, payload_length: u64 },
    PlaintextScan { length: u64, payload_length: u64 },
    PlaintextSuccess { length: u64, payload_length: u64 },
    BeforeCiphertext { length: u64, is_client: bool },
    FirstMinute { length: u64, is_client: bool, secs: f64 },
    RequestsWithoutReplies { orig: u64, resp: u64 },
    ResponsesWithoutRequests { orig: u64, resp: u64 },
    TooShort { length: u64, cipher: String, secs: f64 },
    TooShortForCipher { length: u64, min: u64, cipher: String, pattern: &'static str },
    EncryptedSuccess { request: u64, length: u64, secs: f64 },
    Text(String),
}

impl std::fmt::Display for NoticeMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoticeMessage::Overflow { length, payload_length } => {
                write!(f, "An TLS heartbleed attack was detected! Record length {length}. Payload length {payload_length}")
            }
            NoticeMessage::PlaintextScan { length, payload_length } => write!(
                f,
                "Heartbeat request before encryption. Probable Scan without exploit attempt. Message length: {length}. Payload length: {payload_length}"
            ),
            NoticeMessage::PlaintextSuccess { length, payload_length } => write!(
                f,
                "An TLS heartbleed attack detected before was probably exploited. Message length: {length}. Payload length: {payload_length}"
            ),
            NoticeMessage::BeforeCiphertext { length, is_client } => {
                write!(f, "Heartbeat before ciphertext. Probable attack or scan. Length: {length}, is_client: {}", u8::from(*is_client))
            }
            NoticeMessage::FirstMinute { length, is_client, secs } => write!(
                f,
                "Heartbeat within first minute. Possible attack or scan. Length: {length}, is_client: {}, time: {}",
                u8::from(*is_client),
                interval_string(*secs)
            ),
            NoticeMessage::RequestsWithoutReplies { orig, resp } => write!(
                f,
                "More than 3 heartbeat requests without replies from server. Possible attack. Client count: {orig}, server count: {resp}"
            ),
            NoticeMessage::ResponsesWithoutRequests { orig, resp } => write!(
                f,
                "Server sending more heartbeat responses than requests seen. Possible attack. Client count: {orig}, server count: {resp}"
            ),
            NoticeMessage::TooShort { length, cipher, secs } => write!(
                f,
                "Heartbeat message smaller than minimum required length. Probable attack or scan. Message length: {length}. Cipher: {cipher}. Time: {secs:.6}"
            ),
            NoticeMessage::TooShortForCipher { length, min, cipher, pattern } => write!(
                f,
                "Heartbeat message smaller than minimum required length. Probable attack. Message length: {length}. Required length: {min}. Cipher: {cipher}. Cipher match: /^?({pattern}$)$?/"
            ),
            NoticeMessage::EncryptedSuccess { request, length, secs } => write!(
                f,
                "An encrypted TLS heartbleed attack was probably detected! First packet client record length {request}, first packet server record length {length}. Time: {secs:.6}"
            ),
            NoticeMessage::Text(text) => f.write_str(text),
        }
    }
}

/// Two messages are the same when they read the same.
impl PartialEq for NoticeMessage {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl serde::Serialize for NoticeMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NoticeMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(NoticeMessage::Text)
    }
}

/// Zeek's rendering of an `interval` (`IntervalVal::ValDescribe`): whole days, hours, minutes,
/// seconds and milliseconds, then fractional microseconds.
fn interval_string(secs: f64) -> String {
    const UNITS: [(f64, &str); 6] = [(86400.0, "day"), (3600.0, "hr"), (60.0, "min"), (1.0, "sec"), (1e-3, "msec"), (1e-6, "usec")];
    if secs == 0.0 {
        return "0 secs".into();
    }
    let approx = |a: f64, b: f64| (a - b).abs() < 1e-6;
    let mut v = secs;
    let mut parts: Vec<String> = Vec::new();
    for (i, (unit, word)) in UNITS.iter().enumerate() {
        let to_print = if i == UNITS.len() - 1 {
            let x = v / unit;
            if approx(x, 0.0) {
                if parts.is_empty() {
                    parts.push("0 secs".into());
                }
                break;
            }
            x
        } else {
            if !(v >= *unit || v <= -*unit) {
                continue;
            }
            let num = v / unit;
            let num = if num < 0.0 { num.ceil() } else { num.floor() };
            v -= num * unit;
            num
        };
        let plural = if approx(to_print, 1.0) || approx(to_print, -1.0) { "" } else { "s" };
        parts.push(format!("{} {word}{plural}", zeek_double(to_print)));
    }
    parts.join(" ")
}

/// A double as Zeek's readable descriptions print it: up to six decimals, trailing zeros trimmed,
/// and a `.0` on whole numbers.
fn zeek_double(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_rendering() {
        assert_eq!(interval_string(0.035413), "35.0 msecs 413.0 usecs");
        assert_eq!(interval_string(90.0), "1.0 min 30.0 secs");
        assert_eq!(interval_string(2.0), "2.0 secs");
        assert_eq!(interval_string(0.0), "0 secs");
    }
}
