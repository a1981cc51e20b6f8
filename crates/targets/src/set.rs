//! [`TargetSet`]: specs + default ports + exclusions, iterated lazily as [`Endpoint`]s.

use std::fmt;
use std::iter::FusedIterator;
use std::net::IpAddr;

use crate::exclude::ExclusionSet;
use crate::hosts::{HostRef, Hosts};
use crate::ports::{PortCursor, PortList, Transport};
use crate::spec::TargetSpec;

/// One (host, port, transport) to probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The host.
    pub host: HostRef,
    /// The port, 1-65535.
    pub port: u16,
    /// TCP (TLS) or UDP (DTLS).
    pub transport: Transport,
}

impl fmt::Display for Endpoint {
    /// Target syntax: `10.0.0.1:443`, `[2001:db8::1]:443`, `example.com:udp/4433`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostRef::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]:")?,
            host => write!(f, "{host}:")?,
        }
        match self.transport {
            Transport::Tcp => write!(f, "{}", self.port),
            Transport::Udp => write!(f, "udp/{}", self.port),
        }
    }
}

/// Everything `bleedwatch scan` was asked to probe.
///
/// Holds the specs (O(1) memory each, whatever their size), the global port list used by specs
/// without a `:port` suffix, and the exclusions. [`TargetSet::iter`] yields endpoints lazily.
#[derive(Debug, Clone, Default)]
pub struct TargetSet {
    specs: Vec<TargetSpec>,
    default_ports: PortList,
    exclusions: ExclusionSet,
}

impl TargetSet {
    /// An empty set whose specs without a port suffix use `default_ports`.
    pub fn new(default_ports: PortList) -> Self {
        TargetSet {
            specs: Vec::new(),
            default_ports,
            exclusions: ExclusionSet::new(),
        }
    }

    /// A set of `specs` using `default_ports`.
    pub fn from_specs(specs: Vec<TargetSpec>, default_ports: PortList) -> Self {
        TargetSet {
            specs,
            default_ports,
            exclusions: ExclusionSet::new(),
        }
    }

    /// Replaces the exclusions (builder style).
    pub fn with_exclusions(mut self, exclusions: ExclusionSet) -> Self {
        self.exclusions = exclusions;
        self
    }

    /// Replaces the exclusions.
    pub fn set_exclusions(&mut self, exclusions: ExclusionSet) {
        self.exclusions = exclusions;
    }

    /// Appends a spec; iteration visits specs in the order they were added.
    pub fn push(&mut self, spec: TargetSpec) {
        self.specs.push(spec);
    }

    /// The specs, in iteration order.
    pub fn specs(&self) -> &[TargetSpec] {
        &self.specs
    }

    /// The global port list.
    pub fn default_ports(&self) -> &PortList {
        &self.default_ports
    }

    /// The exclusions.
    pub fn exclusions(&self) -> &ExclusionSet {
        &self.exclusions
    }

    /// The ports `spec` is probed on: its own suffix, else the global list.
    pub fn ports_for<'a>(&'a self, spec: &'a TargetSpec) -> &'a PortList {
        spec.ports().unwrap_or(&self.default_ports)
    }

    /// Whether there are no specs.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Number of (host, port) pairs before exclusions, saturating at `u128::MAX`; for progress
    /// bars. Names count as one host each (before resolution).
    pub fn len_hint(&self) -> u128 {
        self.specs.iter().fold(0u128, |total, spec| {
            let ports = u128::from(self.ports_for(spec).len());
            total.saturating_add(spec.address_count().saturating_mul(ports))
        })
    }

    /// Iterates the endpoints lazily (see the crate documentation for the order).
    pub fn iter(&self) -> Endpoints<'_> {
        Endpoints {
            set: self,
            next_spec: 0,
            current: None,
        }
    }
}

impl Extend<TargetSpec> for TargetSet {
    fn extend<T: IntoIterator<Item = TargetSpec>>(&mut self, specs: T) {
        self.specs.extend(specs);
    }
}

impl<'a> IntoIterator for &'a TargetSet {
    type Item = Endpoint;
    type IntoIter = Endpoints<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Lazy iterator over a [`TargetSet`]'s endpoints. Memory use is constant; `nth` (and so
/// `skip`) jumps arithmetically over whole blocks instead of stepping through them.
#[derive(Debug, Clone)]
pub struct Endpoints<'a> {
    set: &'a TargetSet,
    next_spec: usize,
    current: Option<SpecCursor<'a>>,
}

/// Position inside one spec: which host, and which of its ports.
#[derive(Debug, Clone)]
struct SpecCursor<'a> {
    ports: &'a PortList,
    walk: AddressWalk<'a>,
    host: Option<HostRef>,
    port_cursor: PortCursor,
}

impl<'a> Endpoints<'a> {
    /// The cursor of the spec being iterated, opening the next spec when needed; `None` at the
    /// end of the set.
    fn cursor(&mut self) -> Option<&mut SpecCursor<'a>> {
        if self.current.is_none() {
            let spec = self.set.specs.get(self.next_spec)?;
            self.next_spec += 1;
            self.current = Some(SpecCursor {
                ports: self.set.ports_for(spec),
                walk: AddressWalk::new(spec.hosts(), &self.set.exclusions),
                host: None,
                port_cursor: PortCursor::default(),
            });
        }
        self.current.as_mut()
    }

    /// As [`Self::cursor`], standing on a host: the spec's next host when the last one is done, the
    /// next spec's first when the spec is.
    fn host_cursor(&mut self) -> Option<&mut SpecCursor<'a>> {
        loop {
            let cursor = self.cursor()?;
            if cursor.host.is_none() {
                match cursor.walk.next() {
                    Some(host) => {
                        cursor.host = Some(host);
                        cursor.port_cursor = PortCursor::default();
                    }
                    None => {
                        self.current = None;
                        continue;
                    }
                }
            }
            return self.current.as_mut();
        }
    }
}

impl Iterator for Endpoints<'_> {
    type Item = Endpoint;

    fn next(&mut self) -> Option<Endpoint> {
        loop {
            let cursor = self.host_cursor()?;
            if let Some(host) = &cursor.host {
                if let Some((port, transport)) = cursor.port_cursor.next(cursor.ports) {
                    return Some(Endpoint {
                        host: host.clone(),
                        port,
                        transport,
                    });
                }
            }
            cursor.host = None;
        }
    }

    fn nth(&mut self, n: usize) -> Option<Endpoint> {
        let mut remaining = n as u128;
        loop {
            let cursor = self.host_cursor()?;
            let ports_left = u128::from(cursor.port_cursor.remaining(cursor.ports));
            if remaining < ports_left {
                // Fits in u32: it is below a port count.
                cursor
                    .port_cursor
                    .skip(cursor.ports, u32::try_from(remaining).unwrap_or(u32::MAX));
                return self.next();
            }
            remaining -= ports_left;
            cursor.host = None;
            let per_host = u128::from(cursor.ports.len());
            if per_host == 0 {
                self.current = None;
                continue;
            }
            // Skip whole hosts without visiting them; an exhausted spec is closed by the next
            // round's `walk.next()` returning `None`.
            let skipped = cursor.walk.skip(remaining / per_host);
            remaining -= skipped * per_host;
        }
    }
}

impl FusedIterator for Endpoints<'_> {}

/// Walks the hosts of one spec by index, skipping exclusions.
#[derive(Debug, Clone)]
struct AddressWalk<'a> {
    hosts: &'a Hosts,
    exclusions: &'a ExclusionSet,
    next_index: u128,
    last_index: u128,
    finished: bool,
}

impl<'a> AddressWalk<'a> {
    fn new(hosts: &'a Hosts, exclusions: &'a ExclusionSet) -> Self {
        AddressWalk {
            hosts,
            exclusions,
            next_index: 0,
            last_index: hosts.last_index(),
            finished: false,
        }
    }

    /// Moves to `index`, or finishes when it is past the end (or overflowed).
    fn move_to(&mut self, index: Option<u128>) {
        match index {
            Some(index) if index <= self.last_index => self.next_index = index,
            _ => self.finished = true,
        }
    }

    /// The next host that is not excluded.
    fn next(&mut self) -> Option<HostRef> {
        loop {
            if self.finished {
                return None;
            }
            let index = self.next_index;
            if let Hosts::Name(name) = self.hosts {
                self.finished = true;
                return (!self.exclusions.contains_name(name)).then(|| HostRef::Name(name.clone()));
            }
            let Some(address) = self.hosts.address_at(index) else {
                self.finished = true;
                return None;
            };
            if !self.exclusions.contains(address) {
                self.move_to(index.checked_add(1));
                return Some(HostRef::Ip(address));
            }
            // Excluded: in a contiguous block, jump past the whole excluded interval at once.
            let after_excluded = match (
                self.hosts.span(),
                self.exclusions.excluded_interval_end(address),
            ) {
                (Some(span), Some(interval_end)) => interval_end
                    .checked_sub(span.first)
                    .and_then(|offset| offset.checked_add(1)),
                _ => index.checked_add(1),
            };
            self.move_to(after_excluded);
        }
    }

    /// Skips up to `count` non-excluded hosts; returns how many were skipped (fewer only when
    /// the walk ran out).
    fn skip(&mut self, count: u128) -> u128 {
        if count == 0 || self.finished {
            return 0;
        }
        if self.exclusions.is_empty() {
            let left_minus_one = self.last_index - self.next_index;
            if count <= left_minus_one {
                self.next_index += count;
                return count;
            }
            self.finished = true;
            // Only a 2^128-host walk overflows here, and `count` is smaller than that.
            return left_minus_one.saturating_add(1);
        }
        match self.hosts.span() {
            Some(span) if self.exclusions.intervals_decide(span) => self.skip_by_intervals(count),
            _ => {
                let mut skipped = 0;
                while skipped < count && self.next().is_some() {
                    skipped += 1;
                }
                skipped
            }
        }
    }

    /// Skips `count` allowed hosts in a contiguous span by counting the free runs between
    /// excluded intervals.
    fn skip_by_intervals(&mut self, count: u128) -> u128 {
        let Some(span) = self.hosts.span() else {
            return 0;
        };
        let mut skipped = 0u128;
        while skipped < count && !self.finished {
            let current = span.first + self.next_index;
            if let Some(interval_end) = self.exclusions.excluded_interval_end(span.address(current))
            {
                self.move_to((interval_end - span.first).checked_add(1));
                continue;
            }
            let free_last = match self.exclusions.next_interval_start(span.family, current) {
                Some(start) => (start - 1).min(span.last),
                None => span.last,
            };
            let free_after_current = free_last - current;
            let wanted = count - skipped;
            if wanted <= free_after_current {
                self.next_index += wanted;
                return count;
            }
            skipped += free_after_current + 1;
            self.move_to((free_last - span.first).checked_add(1));
        }
        skipped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
pub(crate) mod tests {
    use super::*;
    use crate::exclude::parse_exclusions;

    /// A target set from spec texts and a port list (the order tests use it too).
    pub(crate) fn set(specs: &[&str], ports: &str) -> TargetSet {
        TargetSet::from_specs(
            specs
                .iter()
                .map(|text| TargetSpec::parse(text).unwrap())
                .collect(),
            PortList::parse(ports).unwrap(),
        )
    }

    fn render(set: &TargetSet) -> Vec<String> {
        set.iter().map(|endpoint| endpoint.to_string()).collect()
    }

    #[test]
    fn order_is_spec_then_address_then_port() {
        let targets = set(&["10.0.0.1-2", "b.example"], "443,8443");
        assert_eq!(
            render(&targets),
            vec![
                "10.0.0.1:443",
                "10.0.0.1:8443",
                "10.0.0.2:443",
                "10.0.0.2:8443",
                "b.example:443",
                "b.example:8443"
            ]
        );
        assert_eq!(targets.len_hint(), 6);
    }

    #[test]
    fn port_suffix_overrides_global_ports() {
        let targets = set(&["a.example:udp/4433", "[::1]:8443", "10.0.0.1"], "443");
        assert_eq!(
            render(&targets),
            vec!["a.example:udp/4433", "[::1]:8443", "10.0.0.1:443"]
        );
    }

    #[test]
    fn empty_set_yields_nothing() {
        let targets = TargetSet::new(PortList::default());
        assert!(targets.is_empty());
        assert_eq!(targets.iter().next(), None);
        assert_eq!(targets.iter().nth(5), None);
        assert_eq!(targets.len_hint(), 0);
    }

    #[test]
    fn exclusions_skip_addresses_and_names() {
        let targets = set(&["10.0.0.0/29", "skip.example", "keep.example"], "443")
            .with_exclusions(parse_exclusions(["10.0.0.2-10.0.0.5", "SKIP.example"]).unwrap());
        assert_eq!(
            render(&targets),
            vec![
                "10.0.0.0:443",
                "10.0.0.1:443",
                "10.0.0.6:443",
                "10.0.0.7:443",
                "keep.example:443"
            ]
        );
        // The hint is before exclusions.
        assert_eq!(targets.len_hint(), 10);
    }

    #[test]
    fn exclusions_apply_to_octet_patterns() {
        let targets = set(&["10.0.1-2.1-3"], "443")
            .with_exclusions(parse_exclusions(["10.0.1.0/24", "*.*.*.3"]).unwrap());
        assert_eq!(render(&targets), vec!["10.0.2.1:443", "10.0.2.2:443"]);
    }

    #[test]
    fn fully_excluded_spec_yields_nothing() {
        let targets =
            set(&["10.0.0.0/16"], "443").with_exclusions(parse_exclusions(["10.0.0.0/8"]).unwrap());
        assert_eq!(targets.iter().next(), None);
        assert_eq!(targets.iter().nth(3), None);
    }

    /// `nth` must agree with stepping `next` for every offset, with and without exclusions.
    fn assert_nth_matches_next(targets: &TargetSet) {
        let all: Vec<Endpoint> = targets.iter().collect();
        for n in 0..=all.len() + 2 {
            assert_eq!(targets.iter().nth(n).as_ref(), all.get(n), "nth({n})");
        }
        // Repeated nth on one iterator behaves like repeated skipping.
        let mut iter = targets.iter();
        let mut position = 0;
        while let Some(endpoint) = iter.nth(2) {
            position += 3;
            assert_eq!(Some(&endpoint), all.get(position - 1));
        }
        assert!(position + 3 > all.len());
    }

    #[test]
    fn nth_agrees_with_next() {
        assert_nth_matches_next(&set(&["10.0.0.0/28", "h.example", "10.0.1.1-3"], "1-3,U:7"));
        assert_nth_matches_next(
            &set(&["10.0.0.0/27", "2001:db8::/124", "x.example"], "443,8443").with_exclusions(
                parse_exclusions([
                    "10.0.0.3-10.0.0.9",
                    "10.0.0.12",
                    "10.0.0.30-10.0.0.40",
                    "2001:db8::4/126",
                ])
                .unwrap(),
            ),
        );
        // A pattern exclusion forces the per-address fallback.
        assert_nth_matches_next(
            &set(&["10.0.0.0/27", "10.0.1-2.1-4"], "443,U:1")
                .with_exclusions(parse_exclusions(["*.*.*.2", "10.0.0.20/30"]).unwrap()),
        );
        assert_nth_matches_next(
            &set(&["::ffff:10.0.0.0/124"], "1")
                .with_exclusions(parse_exclusions(["10.0.0.4-6"]).unwrap()),
        );
    }

    #[test]
    fn ipv6_full_space_iterates_lazily() {
        let targets = set(&["::/0"], "443");
        assert_eq!(targets.len_hint(), u128::MAX);
        let last = targets.iter().nth(usize::MAX).unwrap();
        assert_eq!(
            last.host,
            HostRef::Ip(IpAddr::V6((usize::MAX as u128).into()))
        );
    }

    #[test]
    fn len_hint_saturates() {
        let targets = set(&["::/0", "::/0"], "1-65535");
        assert_eq!(targets.len_hint(), u128::MAX);
    }

    #[test]
    fn endpoint_display() {
        let endpoint = Endpoint {
            host: HostRef::Ip("2001:db8::1".parse().unwrap()),
            port: 4433,
            transport: Transport::Udp,
        };
        assert_eq!(endpoint.to_string(), "[2001:db8::1]:udp/4433");
    }
}
