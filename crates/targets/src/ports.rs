//! Port lists: `443`, `443,8443`, `1-1024`, `T:443,U:4433`, `tcp/443,udp/4433`.

use std::fmt;
use std::str::FromStr;

use crate::error::TargetError;

/// The transport a port is probed over: TLS over TCP, or DTLS over UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP (TLS).
    Tcp,
    /// UDP (DTLS).
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// An inclusive range of ports on one transport; `first <= last`, both in `1..=65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// Transport of every port in the range.
    pub transport: Transport,
    /// First port (inclusive).
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Number of ports in the range (at least 1).
    pub fn len(&self) -> u32 {
        u32::from(self.last).saturating_sub(u32::from(self.first)) + 1
    }

    /// Always `false`: a range holds at least one port. Present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A non-empty set of (port, transport) pairs.
///
/// Parsed lists are normalised: duplicates and overlaps are merged, TCP ports come first, then
/// UDP ports, each in ascending order. That is the order [`PortList::iter`] and target iteration
/// use, so a port given twice is probed once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortList {
    /// Sorted by (transport, first), non-overlapping, non-adjacent within a transport, non-empty.
    ranges: Vec<PortRange>,
}

impl Default for PortList {
    /// TCP port 443, the usual HTTPS port.
    fn default() -> Self {
        PortList {
            ranges: vec![PortRange {
                transport: Transport::Tcp,
                first: 443,
                last: 443,
            }],
        }
    }
}

impl PortList {
    /// Parses a port list.
    ///
    /// Items are separated by commas. An item is a port (`443`) or an inclusive range
    /// (`8000-8100`), optionally prefixed by `tcp/` or `udp/` for that item alone. As in nmap, a
    /// `T:` or `U:` prefix switches the transport for that item and every following item until the
    /// next such prefix (`U:53,4433,T:443`). Without prefixes, ports are TCP.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        PortList::parse_with_default(text, Transport::Tcp)
    }

    /// Like [`PortList::parse`], with `default` for the ports that do not say their transport
    /// (no `tcp/`/`udp/`, no `T:`/`U:` before them): `scan -u` makes every such port UDP.
    pub fn parse_with_default(text: &str, default: Transport) -> Result<Self, TargetError> {
        let list = text.trim();
        if list.is_empty() {
            return Err(TargetError::port(text, "empty port list"));
        }
        let mut mode = default;
        let mut ranges = Vec::new();
        for raw_item in list.split(',') {
            let item = raw_item.trim();
            if item.is_empty() {
                return Err(TargetError::port(
                    list,
                    "empty item in port list (two commas in a row, or a comma at an end)",
                ));
            }
            let (range, next_mode) = parse_item(item, mode)?;
            mode = next_mode;
            ranges.push(range);
        }
        Ok(PortList::from_ranges(ranges))
    }

    /// A list holding one port. Fails for port 0.
    pub fn single(port: u16, transport: Transport) -> Result<Self, TargetError> {
        if port == 0 {
            return Err(TargetError::port("0", PORT_BOUNDS));
        }
        Ok(PortList {
            ranges: vec![PortRange {
                transport,
                first: port,
                last: port,
            }],
        })
    }

    /// Sorts and merges ranges; callers guarantee each range is valid and the input non-empty.
    fn from_ranges(mut ranges: Vec<PortRange>) -> Self {
        ranges.sort_by_key(|range| (range.transport, range.first, range.last));
        let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(previous)
                    if previous.transport == range.transport
                        && u32::from(range.first) <= u32::from(previous.last) + 1 =>
                {
                    previous.last = previous.last.max(range.last);
                }
                _ => merged.push(range),
            }
        }
        PortList { ranges: merged }
    }

    /// The normalised ranges (TCP first, ascending, merged).
    pub fn ranges(&self) -> &[PortRange] {
        &self.ranges
    }

    /// Number of (port, transport) pairs; at most 131070.
    pub fn len(&self) -> u32 {
        self.ranges.iter().map(PortRange::len).sum()
    }

    /// Always `false`: a port list holds at least one port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `port` on `transport` is in the list.
    pub fn contains(&self, port: u16, transport: Transport) -> bool {
        self.ranges
            .iter()
            .any(|range| range.transport == transport && (range.first..=range.last).contains(&port))
    }

    /// Iterates the (port, transport) pairs in list order.
    pub fn iter(&self) -> Ports<'_> {
        Ports {
            list: self,
            cursor: PortCursor::default(),
        }
    }
}

impl FromStr for PortList {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PortList::parse(text)
    }
}

impl fmt::Display for PortList {
    /// Renders in the syntax [`PortList::parse`] reads back: `443,8000-8100,U:53`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous_transport = Transport::Tcp;
        for (index, range) in self.ranges.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if range.transport != previous_transport {
                f.write_str("U:")?;
                previous_transport = range.transport;
            }
            if range.first == range.last {
                write!(f, "{}", range.first)?;
            } else {
                write!(f, "{}-{}", range.first, range.last)?;
            }
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a PortList {
    type Item = (u16, Transport);
    type IntoIter = Ports<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a [`PortList`]'s (port, transport) pairs.
#[derive(Debug, Clone)]
pub struct Ports<'a> {
    list: &'a PortList,
    cursor: PortCursor,
}

impl Iterator for Ports<'_> {
    type Item = (u16, Transport);

    fn next(&mut self) -> Option<Self::Item> {
        self.cursor.next(self.list)
    }

    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.cursor
            .skip(self.list, u32::try_from(n).unwrap_or(u32::MAX));
        self.cursor.next(self.list)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.cursor.remaining(self.list)).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Ports<'_> {}
impl std::iter::FusedIterator for Ports<'_> {}

/// Position inside a [`PortList`], kept by iterators so that each step is O(1).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PortCursor {
    range_index: usize,
    offset: u32,
    consumed: u32,
}

impl PortCursor {
    pub(crate) fn next(&mut self, list: &PortList) -> Option<(u16, Transport)> {
        let range = list.ranges.get(self.range_index)?;
        let port = u16::try_from(u32::from(range.first) + self.offset).ok()?;
        self.offset += 1;
        self.consumed += 1;
        if self.offset >= range.len() {
            self.range_index += 1;
            self.offset = 0;
        }
        Some((port, range.transport))
    }

    /// Skips up to `count` pairs; stops at the end of the list.
    pub(crate) fn skip(&mut self, list: &PortList, mut count: u32) {
        while count > 0 {
            let Some(range) = list.ranges.get(self.range_index) else {
                return;
            };
            let left_in_range = range.len() - self.offset;
            if count < left_in_range {
                self.offset += count;
                self.consumed += count;
                return;
            }
            count -= left_in_range;
            self.consumed += left_in_range;
            self.range_index += 1;
            self.offset = 0;
        }
    }

    pub(crate) fn remaining(&self, list: &PortList) -> u32 {
        list.len().saturating_sub(self.consumed)
    }
}

const PORT_BOUNDS: &str = "ports are 1-65535";

/// Parses one list item; returns its range and the transport mode for the following items.
fn parse_item(item: &str, mode: Transport) -> Result<(PortRange, Transport), TargetError> {
    let mut mode = mode;
    let mut rest = item;
    if let Some((prefix, after)) = rest.split_once(':') {
        mode = match prefix.trim() {
            "T" | "t" => Transport::Tcp,
            "U" | "u" => Transport::Udp,
            other => {
                return Err(TargetError::port(
                    item,
                    format!("unknown protocol prefix \"{other}:\" (use T: or U:)"),
                ))
            }
        };
        rest = after.trim();
    }
    let mut transport = mode;
    if let Some((protocol, after)) = rest.split_once('/') {
        transport = match protocol.trim().to_ascii_lowercase().as_str() {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            _ => {
                return Err(TargetError::port(
                    item,
                    format!("unknown protocol \"{protocol}\" (use tcp/ or udp/)"),
                ))
            }
        };
        rest = after.trim();
    }
    let (first, last) = parse_port_range(item, rest)?;
    Ok((
        PortRange {
            transport,
            first,
            last,
        },
        mode,
    ))
}

fn parse_port_range(item: &str, text: &str) -> Result<(u16, u16), TargetError> {
    if text.is_empty() {
        return Err(TargetError::port(item, "missing port number"));
    }
    match text.split_once('-') {
        None => {
            let port = parse_port_number(item, text)?;
            Ok((port, port))
        }
        Some((start, end)) => {
            let (start, end) = (start.trim(), end.trim());
            if start.is_empty() || end.is_empty() {
                return Err(TargetError::port(
                    item,
                    "a port range needs a start and an end",
                ));
            }
            let first = parse_port_number(item, start)?;
            let last = parse_port_number(item, end)?;
            if first > last {
                return Err(TargetError::port(
                    item,
                    format!("range start {first} is after end {last}"),
                ));
            }
            Ok((first, last))
        }
    }
}

fn parse_port_number(item: &str, text: &str) -> Result<u16, TargetError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(TargetError::port(
            item,
            format!("\"{text}\" is not a port number"),
        ));
    }
    // All digits: anything that does not fit, or is 0, is out of range rather than malformed.
    match text.parse::<u16>() {
        Ok(port) if port >= 1 => Ok(port),
        _ => Err(TargetError::port(item, PORT_BOUNDS)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(u16, Transport)> {
        PortList::parse(text).unwrap().iter().collect()
    }

    fn error(text: &str) -> String {
        PortList::parse(text).unwrap_err().to_string()
    }

    use Transport::{Tcp, Udp};

    #[test]
    fn single_port() {
        assert_eq!(pairs("443"), vec![(443, Tcp)]);
    }

    #[test]
    fn default_transport_for_ports_without_one() {
        let udp = |text: &str| -> Vec<(u16, Transport)> {
            PortList::parse_with_default(text, Udp)
                .unwrap()
                .iter()
                .collect()
        };
        assert_eq!(udp("4433"), vec![(4433, Udp)]);
        assert_eq!(udp("tcp/443,4433"), vec![(443, Tcp), (4433, Udp)]);
        // nmap's T: holds for the items after it, whatever the default.
        assert_eq!(
            udp("T:443,8443,U:53"),
            vec![(443, Tcp), (8443, Tcp), (53, Udp)]
        );
    }

    #[test]
    fn comma_list_is_sorted_and_deduplicated() {
        assert_eq!(pairs("8443,443,443"), vec![(443, Tcp), (8443, Tcp)]);
    }

    #[test]
    fn range_expands_and_counts() {
        let list = PortList::parse("1-1024").unwrap();
        assert_eq!(list.len(), 1024);
        assert_eq!(list.iter().count(), 1024);
        assert_eq!(list.iter().next(), Some((1, Tcp)));
        assert_eq!(list.iter().last(), Some((1024, Tcp)));
    }

    #[test]
    fn overlapping_ranges_merge() {
        let list = PortList::parse("1-10,5-20,21").unwrap();
        assert_eq!(list.ranges().len(), 1);
        assert_eq!(list.len(), 21);
    }

    #[test]
    fn nmap_mode_prefixes_carry_over() {
        assert_eq!(
            pairs("T:443,U:4433,53,T:80"),
            vec![(80, Tcp), (443, Tcp), (53, Udp), (4433, Udp)]
        );
    }

    #[test]
    fn per_item_protocol_does_not_carry_over() {
        assert_eq!(pairs("udp/4433,443"), vec![(443, Tcp), (4433, Udp)]);
        assert_eq!(pairs("tcp/443"), vec![(443, Tcp)]);
        assert_eq!(pairs("UDP/1-2"), vec![(1, Udp), (2, Udp)]);
    }

    #[test]
    fn same_port_on_both_transports_is_kept_twice() {
        assert_eq!(pairs("443,udp/443"), vec![(443, Tcp), (443, Udp)]);
    }

    #[test]
    fn whitespace_around_items_is_ignored() {
        assert_eq!(pairs(" 443 , 8443 "), vec![(443, Tcp), (8443, Tcp)]);
    }

    #[test]
    fn full_range_boundaries() {
        let list = PortList::parse("1-65535,U:1-65535").unwrap();
        assert_eq!(list.len(), 131_070);
        assert_eq!(list.iter().last(), Some((65535, Udp)));
    }

    #[test]
    fn nth_seeks_across_ranges() {
        let list = PortList::parse("1-3,10-12,U:7").unwrap();
        assert_eq!(list.iter().nth(4), Some((11, Tcp)));
        assert_eq!(list.iter().nth(6), Some((7, Udp)));
        assert_eq!(list.iter().nth(7), None);
        let mut ports = list.iter();
        assert_eq!(ports.nth(2), Some((3, Tcp)));
        assert_eq!(ports.next(), Some((10, Tcp)));
        assert_eq!(ports.len(), 3);
    }

    #[test]
    fn display_round_trips() {
        for text in ["443", "1-1024,8443", "U:53", "80,443,U:53,4433-4440"] {
            let list = PortList::parse(text).unwrap();
            assert_eq!(PortList::parse(&list.to_string()).unwrap(), list);
        }
        assert_eq!(
            PortList::parse("U:53,T:443,80").unwrap().to_string(),
            "80,443,U:53"
        );
    }

    #[test]
    fn contains_checks_transport() {
        let list = PortList::parse("443,U:4433").unwrap();
        assert!(list.contains(443, Tcp));
        assert!(!list.contains(443, Udp));
        assert!(list.contains(4433, Udp));
    }

    #[test]
    fn error_zero() {
        assert_eq!(error("0"), r#"invalid port "0": ports are 1-65535"#);
    }

    #[test]
    fn error_too_large() {
        assert_eq!(error("70000"), r#"invalid port "70000": ports are 1-65535"#);
        assert_eq!(
            error("99999999999999999999"),
            r#"invalid port "99999999999999999999": ports are 1-65535"#
        );
        assert_eq!(
            error("443,1-70000"),
            r#"invalid port "1-70000": ports are 1-65535"#
        );
    }

    #[test]
    fn error_not_a_number() {
        assert_eq!(
            error("a-b"),
            r#"invalid port "a-b": "a" is not a port number"#
        );
        assert_eq!(
            error("https"),
            r#"invalid port "https": "https" is not a port number"#
        );
        assert_eq!(
            error("+443"),
            r#"invalid port "+443": "+443" is not a port number"#
        );
    }

    #[test]
    fn error_empty() {
        assert_eq!(error(""), r#"invalid port "": empty port list"#);
        assert_eq!(error("  "), r#"invalid port "  ": empty port list"#);
        assert_eq!(
            error("443,,80"),
            r#"invalid port "443,,80": empty item in port list (two commas in a row, or a comma at an end)"#
        );
        assert_eq!(error("U:"), r#"invalid port "U:": missing port number"#);
    }

    #[test]
    fn error_reversed_range() {
        assert_eq!(
            error("1024-1"),
            r#"invalid port "1024-1": range start 1024 is after end 1"#
        );
    }

    #[test]
    fn error_open_range() {
        assert_eq!(
            error("1-"),
            r#"invalid port "1-": a port range needs a start and an end"#
        );
    }

    #[test]
    fn error_unknown_protocols() {
        assert_eq!(
            error("S:80"),
            r#"invalid port "S:80": unknown protocol prefix "S:" (use T: or U:)"#
        );
        assert_eq!(
            error("sctp/80"),
            r#"invalid port "sctp/80": unknown protocol "sctp" (use tcp/ or udp/)"#
        );
    }

    #[test]
    fn single_rejects_zero() {
        assert!(PortList::single(0, Tcp).is_err());
        assert_eq!(PortList::single(4433, Udp).unwrap().to_string(), "U:4433");
    }
}
