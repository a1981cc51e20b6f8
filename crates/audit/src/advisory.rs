//! The distributions' Heartbleed advisories, kept as data in `data/advisories.csv` (its header
//! cites where each row came from).

use crate::version::{compare, Format};
use std::cmp::Ordering;

const TABLE: &str = include_str!("../data/advisories.csv");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    pub format: Format,
    pub distribution: String,
    pub release: String,
    pub package: String,
    pub fixed_version: String,
    pub id: String,
    /// Read in the advisory's text (or a faithful copy). An unverified row is shown, never decides.
    pub verified: bool,
    /// The advisory's address.
    pub source: String,
}

/// The table, parsed once per call (it is small). Malformed rows are a build-time bug, caught by
/// the unit test below, and skipped here rather than panicking.
pub fn advisories() -> Vec<Advisory> {
    let body: String = TABLE.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let mut out = Vec::new();
    for row in reader.records().flatten() {
        let format = match row.get(0) {
            Some("dpkg") => Format::Dpkg,
            Some("rpm") => Format::Rpm,
            Some("apk") => Format::Apk,
            _ => continue,
        };
        let field = |i: usize| row.get(i).unwrap_or_default().to_string();
        out.push(Advisory {
            format,
            distribution: field(1),
            release: field(2),
            package: field(3),
            fixed_version: field(4),
            id: field(5),
            verified: row.get(6) == Some("verified"),
            source: field(7),
        });
    }
    out
}

/// Every package name the table knows, for keeping package databases small while reading them.
pub fn package_names(table: &[Advisory]) -> Vec<String> {
    let mut names: Vec<String> = table.iter().map(|a| a.package.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// The advisory row for this distribution release and package, if the table has one.
pub fn find<'a>(table: &'a [Advisory], format: Format, distribution: &str, release: &str, package: &str) -> Option<&'a Advisory> {
    table.iter().find(|a| {
        a.format == format
            && a.distribution == distribution
            && a.package == package
            && (release == a.release || release.strip_prefix(a.release.as_str()).is_some_and(|rest| rest.starts_with('.')))
    })
}

/// Whether `installed` carries the fix of `advisory`.
pub fn is_fixed(advisory: &Advisory, installed: &str) -> bool {
    compare(advisory.format, installed, &advisory.fixed_version) != Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_whole() {
        let table = advisories();
        let rows = TABLE.lines().filter(|l| !l.starts_with('#')).count() - 1;
        assert_eq!(table.len(), rows);
        assert!(table.iter().all(|a| !a.id.is_empty() && !a.fixed_version.is_empty()));
        // Every row says whether it was checked, and where the advisory is.
        let statuses = TABLE.lines().filter(|l| !l.starts_with('#')).skip(1).map(|l| l.split(',').nth(6).unwrap_or_default());
        assert!(statuses.into_iter().all(|s| s == "verified" || s == "unverified"));
        assert!(table.iter().all(|a| a.source.starts_with("https://")));
        assert!(table.iter().filter(|a| !a.verified).all(|a| a.distribution == "alpine"), "only Alpine 2.7 is unverified");
    }

    #[test]
    fn wheezy_fix_is_deb7u5() {
        let table = advisories();
        let a = find(&table, Format::Dpkg, "debian", "7", "libssl1.0.0").expect("row");
        assert_eq!(a.id, "DSA-2896-1");
        assert!(is_fixed(a, "1.0.1e-2+deb7u5"));
        assert!(is_fixed(a, "1.0.1e-2+deb7u20"));
        assert!(!is_fixed(a, "1.0.1e-2+deb7u4"));
        assert!(find(&table, Format::Rpm, "centos", "6.5", "openssl").is_some());
        assert!(find(&table, Format::Rpm, "centos", "60", "openssl").is_none());
    }

    /// el7 ships libssl in openssl-libs, with Epoch 1; 7.0 already had the fix, only the beta is older.
    #[test]
    fn rhel7_libraries_are_in_openssl_libs_with_an_epoch() {
        let table = advisories();
        for distribution in ["rhel", "centos"] {
            let a = find(&table, Format::Rpm, distribution, "7.0", "openssl-libs").expect("row");
            assert!(is_fixed(a, "1:1.0.1e-34.el7"));
            assert!(is_fixed(a, "1:1.0.1e-34.el7_0.6"));
            assert!(is_fixed(a, "1:1.0.2k-8.el7"));
            assert!(!is_fixed(a, "1:1.0.1e-23.el7"), "the 7.0 beta");
            // Without its epoch an el7 version would read as older than any fix.
            assert!(!is_fixed(a, "1.0.1e-34.el7"));
        }
        assert!(find(&table, Format::Rpm, "fedora", "20", "openssl-libs").is_some());
    }
}
