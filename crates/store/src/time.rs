//! Times as RFC 3339, UTC. A leaf: stored rows and views both write times this way.

/// RFC 3339 with milliseconds, UTC (`2026-11-28T18:39:14.250Z`). Times outside years 0–9999
/// are written as the number of milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok().filter(|t| (0..=9999).contains(&t.year())) {
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        None => ms.to_string(),
    }
}

/// RFC 3339 to the second, UTC (`2027-01-01T00:00:00Z`). Certificates may carry dates before
/// 1970; times outside years 0–9999 are written as the number of seconds.
pub fn rfc3339_seconds(seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(seconds).ok().filter(|t| (0..=9999).contains(&t.year())) {
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => seconds.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339_ms(1_795_891_154_250), "2026-11-28T18:39:14.250Z");
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(-631_152_000), "1950-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_seconds(i64::MAX), i64::MAX.to_string());
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
