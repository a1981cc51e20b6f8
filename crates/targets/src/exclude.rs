//! Exclusions (`--exclude`, `--exclude-file`): addresses and names that iteration skips.
//!
//! Exclusions are never expanded: CIDRs, ranges and simple octet patterns become a sorted list
//! of merged intervals (membership is a binary search, and iteration over a contiguous target
//! can jump over a whole excluded interval at once); other octet patterns are kept as patterns
//! and tested per address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use crate::error::TargetError;
use crate::hosts::{address_value, Family, HostRef, Hosts, OctetPattern, Span};
use crate::spec::{split_specs, TargetSpec};

/// A set of excluded addresses and host names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExclusionSet {
    /// Sorted, merged, inclusive IPv4 intervals (values fit in u32).
    v4: Vec<(u128, u128)>,
    /// Sorted, merged, inclusive IPv6 intervals.
    v6: Vec<(u128, u128)>,
    /// IPv4 octet patterns that are not a handful of intervals (e.g. `*.*.*.1`).
    v4_patterns: Vec<OctetPattern>,
    /// Lower-case names without a trailing dot.
    names: BTreeSet<String>,
}

/// First and last address of `::ffff:0:0/96`, where IPv4-mapped IPv6 addresses live.
const MAPPED_FIRST: u128 = 0xffff_0000_0000;
const MAPPED_LAST: u128 = 0xffff_ffff_ffff;

impl ExclusionSet {
    /// An empty set, excluding nothing.
    pub fn new() -> Self {
        ExclusionSet::default()
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty()
            && self.v6.is_empty()
            && self.v4_patterns.is_empty()
            && self.names.is_empty()
    }

    /// Adds one parsed spec. Fails if it has a port suffix: exclusions are hosts only.
    pub fn add(&mut self, spec: &TargetSpec) -> Result<(), TargetError> {
        self.insert(spec)?;
        self.normalize();
        Ok(())
    }

    /// Parses and adds every spec in `text` (whitespace or comma separated, as `--exclude` takes).
    pub fn add_text(&mut self, text: &str) -> Result<(), TargetError> {
        let result = split_specs(text)
            .into_iter()
            .try_for_each(|piece| self.insert(&parse_exclusion_spec(piece)?));
        self.normalize();
        result
    }

    /// Adds a spec without re-sorting; callers adding many call [`Self::normalize`] once after.
    pub(crate) fn insert(&mut self, spec: &TargetSpec) -> Result<(), TargetError> {
        if spec.ports().is_some() {
            return Err(TargetError::InvalidExclusion {
                spec: spec.as_str().to_owned(),
                reason: "exclusions cannot have ports".to_owned(),
            });
        }
        match spec.hosts() {
            Hosts::Name(name) => {
                self.names.insert(normalize_name(name));
            }
            Hosts::Octets(pattern) => match pattern.as_intervals() {
                Some(intervals) => self.v4.extend(
                    intervals
                        .into_iter()
                        .map(|(first, last)| (u128::from(first), u128::from(last))),
                ),
                None => self.v4_patterns.push(pattern.clone()),
            },
            hosts => {
                if let Some(span) = hosts.span() {
                    let list = match span.family {
                        Family::V4 => &mut self.v4,
                        Family::V6 => &mut self.v6,
                    };
                    list.push((span.first, span.last));
                }
            }
        }
        Ok(())
    }

    /// Sorts and merges the interval lists (overlapping and adjacent intervals become one).
    pub(crate) fn normalize(&mut self) {
        merge_intervals(&mut self.v4);
        merge_intervals(&mut self.v6);
    }

    /// Whether `address` is excluded. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is also
    /// excluded by an IPv4 exclusion that covers its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        match address {
            IpAddr::V4(v4) => {
                covering(&self.v4, u128::from(u32::from(v4))).is_some()
                    || self.v4_patterns.iter().any(|pattern| pattern.contains(v4))
            }
            IpAddr::V6(v6) => {
                covering(&self.v6, u128::from(v6)).is_some()
                    || Ipv6Addr::to_ipv4_mapped(&v6).is_some_and(|v4| self.contains(IpAddr::V4(v4)))
            }
        }
    }

    /// Whether the host name is excluded (case-insensitive; a trailing dot is ignored). Names
    /// are matched as written: resolved addresses are checked with [`Self::contains`].
    pub fn contains_name(&self, name: &str) -> bool {
        !self.names.is_empty() && self.names.contains(&normalize_name(name))
    }

    /// Whether an iteration host is excluded.
    pub fn excludes(&self, host: &HostRef) -> bool {
        match host {
            HostRef::Ip(address) => self.contains(*address),
            HostRef::Name(name) => self.contains_name(name),
        }
    }

    /// If `address` lies in an excluded interval of its family, that interval's last value.
    pub(crate) fn excluded_interval_end(&self, address: IpAddr) -> Option<u128> {
        let (family, value) = address_value(address);
        covering(self.intervals(family), value).map(|(_, last)| last)
    }

    /// Start of the first excluded interval of `family` that begins after `value`.
    pub(crate) fn next_interval_start(&self, family: Family, value: u128) -> Option<u128> {
        let list = self.intervals(family);
        list.get(list.partition_point(|(first, _)| *first <= value))
            .map(|(first, _)| *first)
    }

    /// Whether, inside `span`, the interval lists alone decide membership, so skipping can
    /// count free runs between intervals instead of testing each address.
    pub(crate) fn intervals_decide(&self, span: Span) -> bool {
        match span.family {
            Family::V4 => self.v4_patterns.is_empty(),
            Family::V6 => {
                (self.v4.is_empty() && self.v4_patterns.is_empty())
                    || span.last < MAPPED_FIRST
                    || span.first > MAPPED_LAST
            }
        }
    }

    fn intervals(&self, family: Family) -> &[(u128, u128)] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

/// Parses one exclusion spec: target syntax without ports; errors say "exclusion".
pub(crate) fn parse_exclusion_spec(text: &str) -> Result<TargetSpec, TargetError> {
    let spec = TargetSpec::parse(text).map_err(|error| match error {
        TargetError::InvalidTarget { spec, reason } => {
            TargetError::InvalidExclusion { spec, reason }
        }
        other => other,
    })?;
    if spec.ports().is_some() {
        return Err(TargetError::InvalidExclusion {
            spec: spec.as_str().to_owned(),
            reason: "exclusions cannot have ports".to_owned(),
        });
    }
    Ok(spec)
}

/// Parses `--exclude` values into a set. Each item may hold several specs separated by commas
/// or whitespace, with the same syntax as targets but without ports.
pub fn parse_exclusions<I, S>(items: I) -> Result<ExclusionSet, TargetError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut set = ExclusionSet::new();
    for item in items {
        for piece in split_specs(item.as_ref()) {
            set.insert(&parse_exclusion_spec(piece)?)?;
        }
    }
    set.normalize();
    Ok(set)
}

fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn merge_intervals(list: &mut Vec<(u128, u128)>) {
    list.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(list.len());
    for &(first, last) in list.iter() {
        match merged.last_mut() {
            Some((_, previous_last)) if first <= previous_last.saturating_add(1) => {
                *previous_last = (*previous_last).max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    *list = merged;
}

/// The interval of a sorted, merged list that contains `value`.
fn covering(list: &[(u128, u128)], value: u128) -> Option<(u128, u128)> {
    let after = list.partition_point(|(first, _)| *first <= value);
    let candidate = list.get(after.checked_sub(1)?)?;
    (value <= candidate.1).then_some(*candidate)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
mod tests {
    use super::*;

    fn set(items: &[&str]) -> ExclusionSet {
        parse_exclusions(items).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn single_addresses() {
        let excluded = set(&["10.0.0.1", "2001:db8::1"]);
        assert!(excluded.contains(ip("10.0.0.1")));
        assert!(!excluded.contains(ip("10.0.0.2")));
        assert!(excluded.contains(ip("2001:db8::1")));
        assert!(!excluded.contains(ip("2001:db8::2")));
    }

    #[test]
    fn cidr_blocks() {
        let excluded = set(&["10.0.0.0/8,192.168.1.0/24", "2001:db8::/32"]);
        assert!(excluded.contains(ip("10.255.255.255")));
        assert!(excluded.contains(ip("192.168.1.77")));
        assert!(!excluded.contains(ip("192.168.2.1")));
        assert!(!excluded.contains(ip("11.0.0.0")));
        assert!(excluded.contains(ip("2001:db8:ffff::1")));
        assert!(!excluded.contains(ip("2001:db9::")));
    }

    #[test]
    fn adjacent_and_overlapping_merge() {
        let excluded = set(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.5-10.0.1.9"]);
        assert_eq!(excluded.v4, vec![(0x0a00_0000, 0x0a00_0109)]);
    }

    #[test]
    fn octet_patterns() {
        let excluded = set(&["*.*.*.1", "10.0.0.10-20"]);
        assert!(excluded.contains(ip("8.8.8.1")));
        assert!(!excluded.contains(ip("8.8.8.2")));
        assert!(excluded.contains(ip("10.0.0.15")));
        assert_eq!(excluded.v4_patterns.len(), 1);
        assert_eq!(excluded.v4.len(), 1);
    }

    #[test]
    fn ipv4_mapped_ipv6_follows_ipv4_rules() {
        let excluded = set(&["10.0.0.0/8"]);
        assert!(excluded.contains(ip("::ffff:10.1.2.3")));
        assert!(!excluded.contains(ip("::ffff:11.1.2.3")));
    }

    #[test]
    fn names_case_insensitive() {
        let excluded = set(&["Intranet.Example.COM."]);
        assert!(excluded.contains_name("intranet.example.com"));
        assert!(excluded.contains_name("INTRANET.example.com."));
        assert!(!excluded.contains_name("example.com"));
        assert!(excluded.excludes(&HostRef::Name("intranet.example.com".into())));
        assert!(!excluded.excludes(&HostRef::Ip(ip("10.0.0.1"))));
    }

    #[test]
    fn empty_set_excludes_nothing() {
        let excluded = ExclusionSet::new();
        assert!(excluded.is_empty());
        assert!(!excluded.contains(ip("0.0.0.0")));
        assert!(!excluded.contains_name("a"));
    }

    #[test]
    fn add_text_and_add() {
        let mut excluded = ExclusionSet::new();
        excluded.add_text("10.0.0.1, 10.0.0.3").unwrap();
        excluded
            .add(&TargetSpec::parse("10.0.0.2").unwrap())
            .unwrap();
        assert_eq!(excluded.v4, vec![(0x0a00_0001, 0x0a00_0003)]);
    }

    #[test]
    fn ports_are_rejected() {
        assert_eq!(
            parse_exclusions(["10.0.0.1:443"]).unwrap_err().to_string(),
            r#"invalid exclusion "10.0.0.1:443": exclusions cannot have ports"#
        );
        let mut excluded = ExclusionSet::new();
        assert!(excluded
            .add(&TargetSpec::parse("[::1]:443").unwrap())
            .is_err());
    }

    #[test]
    fn errors_say_exclusion() {
        assert_eq!(
            parse_exclusions(["10.0.0.0/33"]).unwrap_err().to_string(),
            r#"invalid exclusion "10.0.0.0/33": prefix length 33 is larger than 32"#
        );
    }

    #[test]
    fn interval_helpers() {
        let excluded = set(&["10.0.0.10-10.0.0.19", "10.0.0.40-10.0.0.49"]);
        assert_eq!(
            excluded.excluded_interval_end(ip("10.0.0.12")),
            Some(0x0a00_0013)
        );
        assert_eq!(excluded.excluded_interval_end(ip("10.0.0.20")), None);
        assert_eq!(
            excluded.next_interval_start(Family::V4, 0x0a00_0014),
            Some(0x0a00_0028)
        );
        assert_eq!(excluded.next_interval_start(Family::V4, 0x0a00_0028), None);
    }
}
