//! What `audit` reports: one `Finding` per OpenSSL copy, and the verdict rules.

use crate::detect::Evidence;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    SharedLibssl,
    SharedLibcrypto,
    Static,
    OpensslTool,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SharedLibssl => "shared-libssl",
            Kind::SharedLibcrypto => "shared-libcrypto",
            Kind::Static => "static",
            Kind::OpensslTool => "openssl-tool",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Heartbeats {
    CompiledIn,
    Disabled,
    Unknown,
}

impl Heartbeats {
    pub fn as_str(self) -> &'static str {
        match self {
            Heartbeats::CompiledIn => "compiled-in",
            Heartbeats::Disabled => "disabled",
            Heartbeats::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditVerdict {
    Vulnerable,
    Unknown,
    HeartbeatsDisabled,
    FixedByDistribution,
    NotAffected,
}

impl AuditVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditVerdict::Vulnerable => "vulnerable",
            AuditVerdict::HeartbeatsDisabled => "heartbeats-disabled",
            AuditVerdict::FixedByDistribution => "fixed-by-distribution",
            AuditVerdict::NotAffected => "not-affected",
            AuditVerdict::Unknown => "unknown",
        }
    }
}

/// The package that owns the file, when a package database in the tree says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageInfo {
    /// `dpkg` or `apk`.
    pub manager: String,
    pub name: String,
    pub version: String,
    /// `debian 7`, from the tree's os-release; None when the tree does not say.
    pub distribution: Option<String>,
    /// The advisory whose fixed version was compared, when the table has one for this release.
    pub advisory: Option<String>,
    pub fixed_version: Option<String>,
}

/// One OpenSSL copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Path segments from the outermost PATH inward: the file given, then a path inside it, ...
    pub location: Vec<String>,
    /// The container image (its manifest's tag or config digest) when the copy is inside one.
    pub image: Option<String>,
    pub kind: Kind,
    /// The version as the bytes say it (`1.0.1f`, `1.0.1e-fips`).
    pub version: String,
    pub heartbeats: Heartbeats,
    /// Why the heartbeat state is what it is.
    pub heartbeats_evidence: String,
    pub package: Option<PackageInfo>,
    pub verdict: AuditVerdict,
    pub reason: String,
}

/// Whether an upstream version is in Heartbleed's range: 1.0.1 to 1.0.1f, and 1.0.2-beta1.
pub fn version_affected(version: &str) -> bool {
    // Vendor suffixes such as `-fips` keep the upstream version in front.
    if let Some(rest) = version.strip_prefix("1.0.1") {
        let letter = rest.chars().next();
        return match letter {
            None | Some('-') => true,
            Some(c) => ('a'..='f').contains(&c),
        };
    }
    version == "1.0.2-beta1" || version.starts_with("1.0.2-beta1-")
}

pub fn kind_of(name: &str, evidence: &Evidence) -> Kind {
    let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let shared = base.contains(".so") || base.ends_with(".dylib") || base.ends_with(".dll");
    if shared && (base.starts_with("libssl") || base.starts_with("ssleay32")) {
        Kind::SharedLibssl
    } else if shared && (base.starts_with("libcrypto") || base.starts_with("libeay32")) {
        Kind::SharedLibcrypto
    } else if evidence.tool_message || base == "openssl" || base == "openssl.exe" {
        Kind::OpensslTool
    } else {
        Kind::Static
    }
}

pub fn heartbeats_of(kind: Kind, evidence: &Evidence) -> (Heartbeats, &'static str) {
    if evidence.no_heartbeats_flag {
        (Heartbeats::Disabled, "the compiler-flags string has -DOPENSSL_NO_HEARTBEATS")
    } else if evidence.cflags_seen {
        (Heartbeats::CompiledIn, "the compiler-flags string has no -DOPENSSL_NO_HEARTBEATS")
    } else if evidence.heartbeat_symbol {
        (Heartbeats::CompiledIn, "the heartbeat code's symbols are present (dtls1_heartbeat)")
    } else if evidence.heartbeating_state {
        (Heartbeats::CompiledIn, "the heartbeat state name HEARTBEATING is present")
    } else if kind == Kind::SharedLibssl && evidence.ssl_export {
        (Heartbeats::Disabled, "libssl exports SSL_CTX_new but not dtls1_heartbeat")
    } else {
        (Heartbeats::Unknown, "no compiler-flags string and no heartbeat symbol in the bytes")
    }
}

/// The verdict from the bytes and, when one owns the file, the package.
pub fn decide(version: &str, heartbeats: Heartbeats, package: Option<&PackageDecision>) -> (AuditVerdict, String) {
    if !version_affected(version) {
        return (AuditVerdict::NotAffected, format!("{version} is outside 1.0.1-1.0.1f and 1.0.2-beta1"));
    }
    if let Some(PackageDecision::Fixed { summary }) = package {
        return (AuditVerdict::FixedByDistribution, summary.clone());
    }
    if heartbeats == Heartbeats::Disabled {
        return (AuditVerdict::HeartbeatsDisabled, format!("{version} built without heartbeats"));
    }
    let package_note = match package {
        Some(PackageDecision::NotFixed { summary }) | Some(PackageDecision::Undecided { summary }) => format!("; {summary}"),
        _ => "; no package owns the file: the version string decides".to_string(),
    };
    match heartbeats {
        Heartbeats::CompiledIn => (AuditVerdict::Vulnerable, format!("{version} with heartbeats{package_note}")),
        _ => (AuditVerdict::Unknown, format!("{version} is affected but the bytes don't show whether heartbeats are compiled in{package_note}")),
    }
}

/// What the package database says about a file's package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageDecision {
    Fixed { summary: String },
    NotFixed { summary: String },
    /// Owned by a package, but the advisory table has no row for it (or the distribution is unknown).
    Undecided { summary: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbleed_range() {
        for v in ["1.0.1", "1.0.1a", "1.0.1e-fips", "1.0.1f", "1.0.2-beta1"] {
            assert!(version_affected(v), "{v}");
        }
        for v in ["1.0.1g", "1.0.1h", "1.0.0l", "0.9.8y", "1.0.2", "1.0.2-beta2", "1.0.2k", "1.1.1w", "1.0.10"] {
            assert!(!version_affected(v), "{v}");
        }
    }

    #[test]
    fn a_fixed_package_wins_over_the_version_string() {
        let fixed = PackageDecision::Fixed { summary: "x".into() };
        assert_eq!(decide("1.0.1e", Heartbeats::CompiledIn, Some(&fixed)).0, AuditVerdict::FixedByDistribution);
        let not = PackageDecision::NotFixed { summary: "y".into() };
        assert_eq!(decide("1.0.1e", Heartbeats::CompiledIn, Some(&not)).0, AuditVerdict::Vulnerable);
        assert_eq!(decide("1.0.1e", Heartbeats::Disabled, None).0, AuditVerdict::HeartbeatsDisabled);
        assert_eq!(decide("1.0.1e", Heartbeats::Unknown, None).0, AuditVerdict::Unknown);
        assert_eq!(decide("1.0.1g", Heartbeats::CompiledIn, None).0, AuditVerdict::NotAffected);
    }
}
