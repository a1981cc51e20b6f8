//! Packet timestamps: nanoseconds since the Unix epoch, saturating rather than overflowing, because
//! pcapng resolutions and offsets come from the file and may be absurd.

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    pub fn from_secs_nanos(secs: i64, nanos: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(Self::NANOS_PER_SEC).saturating_add(nanos))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::NANOS_PER_SEC as f64
    }

    /// Seconds from `earlier` to `self` (negative when the capture's clock went backwards).
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / Self::NANOS_PER_SEC as f64
    }

    /// RFC 3339 in UTC with six fractional digits, e.g. `2014-04-09T18:34:55.123456Z`. A time outside
    /// what a calendar can show falls back to the epoch seconds, never a panic.
    pub fn rfc3339(self) -> String {
        let micros = self.0.div_euclid(1_000);
        match OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000) {
            Ok(t) if (0..=9999).contains(&t.year()) => {
                // Written digit by digit: findings are made in bulk and this is on that path.
                let mut out = String::with_capacity(27);
                let mut push = |value: u32, width: u32, sep: char| {
                    for i in (0..width).rev() {
                        out.push(char::from(b'0' + (value / 10u32.pow(i) % 10) as u8));
                    }
                    out.push(sep);
                };
                push(t.year() as u32, 4, '-');
                push(u32::from(u8::from(t.month())), 2, '-');
                push(u32::from(t.day()), 2, 'T');
                push(u32::from(t.hour()), 2, ':');
                push(u32::from(t.minute()), 2, ':');
                push(u32::from(t.second()), 2, '.');
                push(t.microsecond(), 6, 'Z');
                out
            }
            _ => format!("{:.6}", self.as_secs_f64()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        let ts = Timestamp::from_secs_nanos(1_397_068_495, 123_456_789);
        assert_eq!(ts.rfc3339(), "2014-04-09T18:34:55.123456Z");
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert!((ts.as_secs_f64() - 1_397_068_495.123_456_7).abs() < 1e-6);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        assert!(!Timestamp(i64::MAX).rfc3339().is_empty());
        assert!(!Timestamp(i64::MIN).rfc3339().is_empty());
        assert_eq!(Timestamp::from_secs_nanos(i64::MAX, 5), Timestamp(i64::MAX));
        assert_eq!(Timestamp(5).secs_since(Timestamp(i64::MIN)), i64::MAX as f64 / 1e9);
    }
}
