//! The Heartbleed verdict, the evidence behind it and the endpoint results that carry them: one
//! contract for every room of bleedwatch ([`EndpointResult`] is `scan`'s JSON line, typed).
//!
//! A probe's outcome is an [`Evidence`] value; the [`Verdict`] follows from it (and from whether the
//! server negotiated the heartbeat extension) through [`Evidence::verdict`], so no code decides anything
//! from reason text. A safe verdict exists only where the server said something that proves it: an
//! echo of our honest heartbeat, or a fatal alert after our records. Silence, a close, a reset, a dropped
//! DTLS association or a timeout are [`Inconclusive`], with what was seen.
#![forbid(unsafe_code)]

use std::fmt;

mod result;

pub use result::{CertSummary, EndpointResult, LeakEvidence, ScanStatus, VersionDetail};

use serde::{Deserialize, Serialize};

/// The Heartbleed verdict, per protocol version and for a whole endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The server echoed a heartbeat that a fixed server drops: it skips the bounds check.
    Vulnerable,
    /// Heartbeats are processed and bounds are checked, or refused with an alert although negotiated.
    NotVulnerable,
    /// The server has no heartbeat support (no extension, and an alert for our records).
    NoHeartbeat,
    /// No heartbeat can exist there: TLS 1.3 only, or no TLS on the port.
    NotApplicable,
    /// The server does not accept this version (per-version only).
    NotSupported,
    /// Not tested conclusively; the evidence says why.
    Inconclusive,
}

impl Verdict {
    /// The spelling of the JSON contract (`vulnerable`, `not-vulnerable`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Vulnerable => "vulnerable",
            Verdict::NotVulnerable => "not-vulnerable",
            Verdict::NoHeartbeat => "no-heartbeat",
            Verdict::NotApplicable => "not-applicable",
            Verdict::NotSupported => "not-supported",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Parses the JSON spelling; unknown words are `None` (callers treat them as inconclusive).
    pub fn parse(text: &str) -> Option<Verdict> {
        [
            Verdict::Vulnerable,
            Verdict::NotVulnerable,
            Verdict::NoHeartbeat,
            Verdict::NotApplicable,
            Verdict::NotSupported,
            Verdict::Inconclusive,
        ]
        .into_iter()
        .find(|v| v.as_str() == text)
    }

    /// Whether the verdict says something about the endpoint's exposure. `not-supported` is per-version
    /// only: as an endpoint's verdict it would mean nothing was tested.
    pub fn is_conclusive(self) -> bool {
        !matches!(self, Verdict::Inconclusive | Verdict::NotSupported)
    }

    /// Which verdict wins when versions disagree: any vulnerable version makes the endpoint vulnerable,
    /// and a version we could not test outweighs every reassuring one.
    fn severity(self) -> u8 {
        match self {
            Verdict::Vulnerable => 5,
            Verdict::Inconclusive => 4,
            Verdict::NotVulnerable => 3,
            Verdict::NoHeartbeat => 2,
            Verdict::NotApplicable => 1,
            Verdict::NotSupported => 0,
        }
    }

    pub fn worst(a: Verdict, b: Verdict) -> Verdict {
        if a.severity() >= b.severity() {
            a
        } else {
            b
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the exchange something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Connect,
    ServerHello,
    ServerFlight,
    Heartbeat,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::ServerHello => "server-hello",
            Phase::ServerFlight => "server-flight",
            Phase::Heartbeat => "heartbeat",
        }
    }
}

/// Why a test could not decide: what was seen instead of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Inconclusive {
    Timeout { phase: Phase },
    Reset { phase: Phase },
    /// A plain close (FIN). After our records it proves nothing: a load balancer, an IPS, a connection
    /// limit or a server's own error path closes too.
    Closed { phase: Phase },
    /// DTLS: the server forgot our association (it answered a new ClientHello afresh) without a word
    /// about our records.
    AssociationDropped,
    Alert { phase: Phase, alert: String },
    NotTls { first_bytes: String },
    /// Nothing listens: a TCP reset to our connect, or an ICMP port unreachable for our datagram.
    Refused,
    ProtocolError { phase: Phase, detail: String },
    ConnectFailed { detail: String },
}

impl Inconclusive {
    /// Whether the test ran out of time (the endpoint's status is then `io-timeout`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Inconclusive::Timeout { .. })
    }
}

impl fmt::Display for Inconclusive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inconclusive::Timeout { phase } => write!(f, "timeout during {}", phase.as_str()),
            Inconclusive::Reset { phase } => write!(f, "connection reset during {}", phase.as_str()),
            Inconclusive::Closed { phase: Phase::Heartbeat } => {
                f.write_str("connection closed after our heartbeats without an answer or an alert (a close proves nothing)")
            }
            Inconclusive::Closed { phase } => write!(f, "connection closed during {}", phase.as_str()),
            Inconclusive::AssociationDropped => {
                f.write_str("the server dropped our DTLS association after our heartbeats without an answer or an alert")
            }
            Inconclusive::Alert { phase, alert } => write!(f, "alert {alert} during {}", phase.as_str()),
            Inconclusive::NotTls { first_bytes } => write!(f, "not TLS (first bytes {first_bytes})"),
            Inconclusive::Refused => f.write_str("connection refused (nothing listens)"),
            Inconclusive::ProtocolError { phase, detail } => write!(f, "protocol error during {}: {detail}", phase.as_str()),
            Inconclusive::ConnectFailed { detail } => write!(f, "connect failed: {detail}"),
        }
    }
}

/// What the server did that a verdict stands on. Safe verdicts exist only where the server itself
/// answered: an echo of the honest heartbeat, or a fatal alert after our records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    /// The unpadded test heartbeat was echoed: a fixed server drops it.
    TestHeartbeatEchoed,
    /// The honest heartbeat was echoed and the test heartbeat before it was not: records are
    /// processed in order, so the test one was dropped.
    HonestHeartbeatEchoed,
    /// A fatal alert came after our records, with no heartbeat answer before it: the server read our
    /// records and refused the heartbeats (or has none).
    FatalAlertAfterRecords { alert: String },
    /// The first connection ended without a word after the test heartbeat (`first_connection`); a
    /// second connection sending only the honest heartbeat, in the same place, had it echoed. The
    /// server answers heartbeats there, so it would have echoed the test one had it skipped the check.
    HonestHeartbeatEchoedOnFollowUp { first_connection: Inconclusive },
    /// Client test: the peer answered the sentinel behind our heartbeats (a renegotiating hello, an
    /// alert about the sentinel) without answering either heartbeat: it read and ignored them.
    SentinelAnsweredHeartbeatsNot,
    /// As above, but the second connection's honest heartbeat drew a fatal alert: heartbeats refused.
    FatalAlertOnFollowUp { alert: String, first_connection: Inconclusive },
    /// We offered the heartbeat extension and the peer did not acknowledge it (a server's hello) or
    /// offer it (a client's), then ended without a word (`then`). Every OpenSSL with the bug
    /// (1.0.1–1.0.1f, 1.0.2-beta1, built with heartbeats) acknowledges it whenever it is offered, and
    /// its clients always offer it: the peer runs no such heartbeat code.
    HeartbeatExtensionDeclined { then: Inconclusive },
    /// The server refused the offered version before a ServerHello (alert, or a close before any byte).
    VersionRefused { alert: Option<String> },
    /// The server negotiated a lower version; this one is not supported.
    Downgraded { negotiated: String },
    /// Only TLS 1.3 is accepted, which has no heartbeat.
    Tls13Only,
    /// No TLS on the port at all (a protocol without STARTTLS, ssh, http).
    NoTls { service: String },
    /// Not tested conclusively.
    Inconclusive { why: Inconclusive },
}

impl Evidence {
    /// The verdict this evidence supports. `heartbeat_extension` says whether the server's hello
    /// negotiated the heartbeat extension: a refusal then means "checked and refused", otherwise "none".
    pub fn verdict(&self, heartbeat_extension: bool) -> Verdict {
        match self {
            Evidence::TestHeartbeatEchoed => Verdict::Vulnerable,
            Evidence::HonestHeartbeatEchoed | Evidence::HonestHeartbeatEchoedOnFollowUp { .. } => Verdict::NotVulnerable,
            Evidence::FatalAlertAfterRecords { .. } | Evidence::FatalAlertOnFollowUp { .. } | Evidence::SentinelAnsweredHeartbeatsNot
                if heartbeat_extension =>
            {
                Verdict::NotVulnerable
            }
            Evidence::FatalAlertAfterRecords { .. } | Evidence::FatalAlertOnFollowUp { .. } | Evidence::SentinelAnsweredHeartbeatsNot => {
                Verdict::NoHeartbeat
            }
            Evidence::HeartbeatExtensionDeclined { .. } => Verdict::NoHeartbeat,
            Evidence::VersionRefused { .. } | Evidence::Downgraded { .. } => Verdict::NotSupported,
            Evidence::Tls13Only | Evidence::NoTls { .. } => Verdict::NotApplicable,
            Evidence::Inconclusive { .. } => Verdict::Inconclusive,
        }
    }

    /// The reason a reader needs, for anything but a plain "vulnerable".
    pub fn reason(&self, heartbeat_extension: bool) -> Option<String> {
        let ext = if heartbeat_extension { "heartbeat extension negotiated" } else { "no heartbeat extension" };
        Some(match self {
            Evidence::TestHeartbeatEchoed => return None,
            Evidence::HonestHeartbeatEchoed => "honest heartbeat answered, unpadded test heartbeat dropped".into(),
            Evidence::FatalAlertAfterRecords { alert } => format!("{ext}; heartbeats refused (fatal alert {alert} after our records)"),
            Evidence::HonestHeartbeatEchoedOnFollowUp { first_connection } => format!(
                "honest heartbeat answered on a second connection; the first ended unanswered after the test heartbeat ({first_connection})"
            ),
            Evidence::FatalAlertOnFollowUp { alert, first_connection } => format!(
                "{ext}; the honest heartbeat alone drew fatal alert {alert} on a second connection; the first ended unanswered ({first_connection})"
            ),
            Evidence::SentinelAnsweredHeartbeatsNot => format!("{ext}; heartbeats ignored: the peer answered the sentinel behind them"),
            Evidence::HeartbeatExtensionDeclined { then } => format!(
                "heartbeat extension offered but not acknowledged (every OpenSSL with the bug acknowledges it), and then {then}"
            ),
            Evidence::VersionRefused { alert: Some(alert) } => format!("rejected with alert {alert}"),
            Evidence::VersionRefused { alert: None } => "closed before ServerHello".into(),
            Evidence::Downgraded { negotiated } => format!("server negotiated {negotiated}"),
            Evidence::Tls13Only => "only TLS 1.3 is accepted; TLS 1.3 has no heartbeat".into(),
            Evidence::NoTls { service } => format!("no TLS on this port ({service})"),
            Evidence::Inconclusive { why } => why.to_string(),
        })
    }

    /// The `kind` this evidence is written with (`honest-heartbeat-echoed`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::TestHeartbeatEchoed => "test-heartbeat-echoed",
            Evidence::HonestHeartbeatEchoed => "honest-heartbeat-echoed",
            Evidence::FatalAlertAfterRecords { .. } => "fatal-alert-after-records",
            Evidence::HonestHeartbeatEchoedOnFollowUp { .. } => "honest-heartbeat-echoed-on-follow-up",
            Evidence::SentinelAnsweredHeartbeatsNot => "sentinel-answered-heartbeats-not",
            Evidence::FatalAlertOnFollowUp { .. } => "fatal-alert-on-follow-up",
            Evidence::HeartbeatExtensionDeclined { .. } => "heartbeat-extension-declined",
            Evidence::VersionRefused { .. } => "version-refused",
            Evidence::Downgraded { .. } => "downgraded",
            Evidence::Tls13Only => "tls13-only",
            Evidence::NoTls { .. } => "no-tls",
            Evidence::Inconclusive { .. } => "inconclusive",
        }
    }

    /// The reason a test was inconclusive, if it was.
    pub fn inconclusive(&self) -> Option<&Inconclusive> {
        match self {
            Evidence::Inconclusive { why } => Some(why),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips() {
        for v in [
            Verdict::Vulnerable,
            Verdict::NotVulnerable,
            Verdict::NoHeartbeat,
            Verdict::NotApplicable,
            Verdict::NotSupported,
            Verdict::Inconclusive,
        ] {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).ok(), Some(serde_json::Value::String(v.as_str().into())));
        }
        assert_eq!(Verdict::parse("safe"), None);
    }

    #[test]
    fn closes_and_silence_are_never_safe() {
        for why in [
            Inconclusive::Closed { phase: Phase::Heartbeat },
            Inconclusive::AssociationDropped,
            Inconclusive::Timeout { phase: Phase::Heartbeat },
            Inconclusive::Reset { phase: Phase::Heartbeat },
        ] {
            let e = Evidence::Inconclusive { why };
            assert_eq!(e.verdict(true), Verdict::Inconclusive);
            assert_eq!(e.verdict(false), Verdict::Inconclusive);
        }
    }

    #[test]
    fn refusals_depend_on_the_extension() {
        let alert = Evidence::FatalAlertAfterRecords { alert: "fatal unexpected_message".into() };
        assert_eq!(alert.verdict(true), Verdict::NotVulnerable);
        assert_eq!(alert.verdict(false), Verdict::NoHeartbeat);
        assert!(alert.reason(false).is_some_and(|r| r.contains("no heartbeat extension")));
    }

    #[test]
    fn evidence_serialises_with_a_kind() {
        let e = Evidence::HonestHeartbeatEchoedOnFollowUp { first_connection: Inconclusive::Closed { phase: Phase::Heartbeat } };
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["kind"], "honest-heartbeat-echoed-on-follow-up");
        assert_eq!(v["first_connection"]["kind"], "closed");
        assert_eq!(v["first_connection"]["phase"], "heartbeat");
        let back: Evidence = serde_json::from_value(v).unwrap_or(Evidence::Tls13Only);
        assert_eq!(back, e);
        // kind() is the serialised tag, for every variant.
        let first = Inconclusive::Closed { phase: Phase::Heartbeat };
        for e in [
            Evidence::TestHeartbeatEchoed,
            Evidence::HonestHeartbeatEchoed,
            Evidence::FatalAlertAfterRecords { alert: "a".into() },
            Evidence::HonestHeartbeatEchoedOnFollowUp { first_connection: first.clone() },
            Evidence::SentinelAnsweredHeartbeatsNot,
            Evidence::FatalAlertOnFollowUp { alert: "a".into(), first_connection: first.clone() },
            Evidence::HeartbeatExtensionDeclined { then: first.clone() },
            Evidence::VersionRefused { alert: None },
            Evidence::Downgraded { negotiated: "tls1.0".into() },
            Evidence::Tls13Only,
            Evidence::NoTls { service: "ssh".into() },
            Evidence::Inconclusive { why: first.clone() },
        ] {
            assert_eq!(serde_json::to_value(&e).unwrap_or_default()["kind"], e.kind());
        }
    }

    #[test]
    fn worst_prefers_vulnerable_then_inconclusive() {
        assert_eq!(Verdict::worst(Verdict::NotVulnerable, Verdict::Inconclusive), Verdict::Inconclusive);
        assert_eq!(Verdict::worst(Verdict::Inconclusive, Verdict::Vulnerable), Verdict::Vulnerable);
        assert_eq!(Verdict::worst(Verdict::NotSupported, Verdict::NoHeartbeat), Verdict::NoHeartbeat);
    }
}
