//! Packet timestamps: nanoseconds since the Unix epoch, saturating rather than overflowing, because
//! pcapng resolutions and offsets come from the file and may be absurd.

use crate::finding::CaptureTime;

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

    /// The time as findings carry it (to the microsecond).
    pub fn capture_time(self) -> CaptureTime {
        CaptureTime::from_unix_micros(self.0.div_euclid(1_000))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        let ts = Timestamp::from_secs_nanos(1_397_068_495, 123_456_789);
        assert_eq!(ts.capture_time().to_string(), "2014-04-09T18:34:55.123456Z");
        assert_eq!(Timestamp(-1).capture_time().to_string(), "1969-12-31T23:59:59.999999Z");
        assert!((ts.as_secs_f64() - 1_397_068_495.123_456_7).abs() < 1e-6);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        assert!(!Timestamp(i64::MAX).capture_time().to_string().is_empty());
        assert!(!Timestamp(i64::MIN).capture_time().to_string().is_empty());
        assert_eq!(Timestamp::from_secs_nanos(i64::MAX, 5), Timestamp(i64::MAX));
        assert_eq!(Timestamp(5).secs_since(Timestamp(i64::MIN)), i64::MAX as f64 / 1e9);
    }
}
