//! Alert records.

use crate::codec::Reader;
use crate::error::WireError;
use crate::types::AlertDescription;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlertLevel(pub u8);

impl AlertLevel {
    pub const WARNING: AlertLevel = AlertLevel(1);
    pub const FATAL: AlertLevel = AlertLevel(2);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    pub level: AlertLevel,
    pub description: AlertDescription,
}

impl Alert {
    pub const fn fatal(description: AlertDescription) -> Alert {
        Alert { level: AlertLevel::FATAL, description }
    }

    /// Parses an alert fragment. A fragment that is not exactly two bytes is malformed: PEERS.md
    /// pitfall 4 (CloudFront's malformed alert) says such a thing means "not tested", so it is an error
    /// for the caller to report, never silently an alert.
    pub fn parse(fragment: &[u8]) -> Result<Alert, WireError> {
        let mut r = Reader::new(fragment);
        let level = AlertLevel(r.u8("alert.level")?);
        let description = AlertDescription(r.u8("alert.description")?);
        r.expect_end("alert")?;
        Ok(Alert { level, description })
    }

    pub fn is_fatal(&self) -> bool {
        self.level == AlertLevel::FATAL
    }

    pub fn encode(&self) -> [u8; 2] {
        [self.level.0, self.description.0]
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level.0 {
            1 => "warning",
            2 => "fatal",
            _ => "unknown-level",
        };
        write!(f, "{level} {}", self.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_two_bytes_exactly() {
        let a = Alert::parse(&[2, 10]).unwrap();
        assert!(a.is_fatal());
        assert_eq!(a.description, AlertDescription::UNEXPECTED_MESSAGE);
        assert_eq!(a.to_string(), "fatal unexpected_message");
        assert!(Alert::parse(&[2]).is_err());
        assert!(Alert::parse(&[2, 10, 0]).is_err());
    }
}
