//! The host half of a target spec: a name, an address, a CIDR block, a range, or an nmap octet
//! pattern. Every form is kept in O(1) space and addressed by index, so huge blocks are never
//! expanded.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A host to probe: an address, or a name for the caller to resolve (every A/AAAA record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostRef {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name, not yet resolved.
    Name(String),
}

impl fmt::Display for HostRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRef::Ip(address) => write!(f, "{address}"),
            HostRef::Name(name) => f.write_str(name),
        }
    }
}

/// The set of hosts one target spec names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hosts {
    /// A DNS name, resolved later by the caller (every A/AAAA record is a host).
    Name(String),
    /// One IPv4 or IPv6 address.
    Address(IpAddr),
    /// A CIDR block. `network` has its host bits cleared (`10.1.2.3/8` is stored as `10.0.0.0/8`,
    /// as nmap does).
    Cidr {
        /// First address of the block.
        network: IpAddr,
        /// Prefix length, at most 32 for IPv4 and 128 for IPv6.
        prefix_len: u8,
    },
    /// An inclusive range of addresses of one family, `first <= last`.
    Range {
        /// First address (inclusive).
        first: IpAddr,
        /// Last address (inclusive).
        last: IpAddr,
    },
    /// An nmap-style IPv4 pattern with a set of values per octet, e.g. `10.0.1-3.1-254`.
    Octets(OctetPattern),
}

/// IP family of a contiguous numeric span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// A contiguous inclusive span of addresses as integers (IPv4 values fit in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) family: Family,
    pub(crate) first: u128,
    pub(crate) last: u128,
}

impl Span {
    pub(crate) fn address(&self, value: u128) -> IpAddr {
        address_from(self.family, value)
    }
}

pub(crate) fn address_from(family: Family, value: u128) -> IpAddr {
    match family {
        // Callers only build IPv4 values from u32s, so the truncation never loses bits.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

pub(crate) fn address_value(address: IpAddr) -> (Family, u128) {
    match address {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    }
}

impl Hosts {
    /// Number of hosts (a name counts as one). Saturates at `u128::MAX` for the IPv6 `/0` block,
    /// which holds 2^128 addresses.
    pub fn len(&self) -> u128 {
        match self {
            Hosts::Name(_) | Hosts::Address(_) => 1,
            Hosts::Octets(pattern) => u128::from(pattern.len()),
            Hosts::Cidr { .. } | Hosts::Range { .. } => match self.span() {
                Some(span) => (span.last - span.first).saturating_add(1),
                None => 0,
            },
        }
    }

    /// Always `false`: every form names at least one host.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `address` is one of these hosts (always `false` for a name).
    pub fn contains(&self, address: IpAddr) -> bool {
        match self {
            Hosts::Name(_) => false,
            Hosts::Address(own) => *own == address,
            Hosts::Octets(pattern) => match address {
                IpAddr::V4(v4) => pattern.contains(v4),
                IpAddr::V6(_) => false,
            },
            Hosts::Cidr { .. } | Hosts::Range { .. } => {
                let (family, value) = address_value(address);
                self.span().is_some_and(|span| {
                    span.family == family && (span.first..=span.last).contains(&value)
                })
            }
        }
    }

    /// The contiguous span these hosts cover, for addresses, CIDRs and ranges.
    pub(crate) fn span(&self) -> Option<Span> {
        match *self {
            Hosts::Name(_) | Hosts::Octets(_) => None,
            Hosts::Address(address) => {
                let (family, value) = address_value(address);
                Some(Span {
                    family,
                    first: value,
                    last: value,
                })
            }
            Hosts::Cidr {
                network,
                prefix_len,
            } => {
                let (family, value) = address_value(network);
                let host_bits = match family {
                    Family::V4 => 32u32,
                    Family::V6 => 128,
                }
                .saturating_sub(u32::from(prefix_len));
                let host_mask = low_bits(host_bits);
                Some(Span {
                    family,
                    first: value & !host_mask,
                    last: value | host_mask,
                })
            }
            Hosts::Range { first, last } => {
                let (family, first) = address_value(first);
                let (_, last) = address_value(last);
                Some(Span {
                    family,
                    first,
                    last,
                })
            }
        }
    }

    /// Index of the last host; `len() - 1` without the saturation.
    pub(crate) fn last_index(&self) -> u128 {
        match self {
            Hosts::Name(_) | Hosts::Address(_) => 0,
            Hosts::Octets(pattern) => u128::from(pattern.len().saturating_sub(1)),
            Hosts::Cidr { .. } | Hosts::Range { .. } => {
                self.span().map_or(0, |span| span.last - span.first)
            }
        }
    }

    /// The address at `index` in iteration order; `None` for names or past the end.
    pub(crate) fn address_at(&self, index: u128) -> Option<IpAddr> {
        match self {
            Hosts::Name(_) => None,
            Hosts::Octets(pattern) => pattern.get(u64::try_from(index).ok()?).map(IpAddr::V4),
            Hosts::Address(_) | Hosts::Cidr { .. } | Hosts::Range { .. } => {
                let span = self.span()?;
                let value = span.first.checked_add(index)?;
                (value <= span.last).then(|| span.address(value))
            }
        }
    }
}

impl fmt::Display for Hosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hosts::Name(name) => f.write_str(name),
            Hosts::Address(address) => write!(f, "{address}"),
            Hosts::Cidr {
                network,
                prefix_len,
            } => write!(f, "{network}/{prefix_len}"),
            Hosts::Range { first, last } => write!(f, "{first}-{last}"),
            Hosts::Octets(pattern) => write!(f, "{pattern}"),
        }
    }
}

/// A mask with the low `bits` bits set (all 128 for `bits >= 128`).
fn low_bits(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// The 256 possible values of one octet, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct OctetSet([u64; 4]);

impl OctetSet {
    fn insert_range(&mut self, first: u8, last: u8) {
        for value in first..=last {
            self.0[usize::from(value >> 6)] |= 1u64 << (value & 63);
        }
    }

    fn contains(&self, value: u8) -> bool {
        self.0[usize::from(value >> 6)] & (1u64 << (value & 63)) != 0
    }

    fn count(&self) -> u32 {
        self.0.iter().map(|word| word.count_ones()).sum()
    }

    /// The `rank`-th smallest member (0-based).
    fn select(&self, mut rank: u32) -> Option<u8> {
        for (word_index, word) in self.0.iter().enumerate() {
            let ones = word.count_ones();
            if rank < ones {
                let mut bits = *word;
                for _ in 0..rank {
                    bits &= bits - 1; // clear the lowest set bit
                }
                let value = word_index * 64 + bits.trailing_zeros() as usize;
                return u8::try_from(value).ok();
            }
            rank -= ones;
        }
        None
    }

    /// Maximal runs of consecutive members, ascending.
    fn runs(&self) -> Vec<(u8, u8)> {
        let mut runs: Vec<(u8, u8)> = Vec::new();
        for value in 0..=255u8 {
            if !self.contains(value) {
                continue;
            }
            match runs.last_mut() {
                Some((_, last)) if u16::from(*last) + 1 == u16::from(value) => *last = value,
                _ => runs.push((value, value)),
            }
        }
        runs
    }

    fn is_full(&self) -> bool {
        self.0.iter().all(|word| *word == u64::MAX)
    }
}

/// An nmap-style IPv4 octet pattern such as `10.0.1-3.1-254`, `192.168.*.1` or `10.0.0.1,5,9`.
///
/// Each octet holds a set of values. Iteration is ascending with the last octet varying fastest
/// (values within an octet are sorted and deduplicated). Stored in 128 bytes whatever its size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OctetPattern {
    octets: [OctetSet; 4],
}

impl OctetPattern {
    /// Number of addresses (product of the per-octet counts, at most 2^32).
    pub fn len(&self) -> u64 {
        self.octets
            .iter()
            .map(|octet| u64::from(octet.count()))
            .product()
    }

    /// Always `false`: parsing guarantees at least one value per octet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `address` matches every octet.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.octets
            .iter()
            .zip(address.octets())
            .all(|(set, value)| set.contains(value))
    }

    /// The address at `index` in iteration order (mixed-radix decomposition, last octet fastest).
    pub(crate) fn get(&self, mut index: u64) -> Option<Ipv4Addr> {
        if index >= self.len() {
            return None;
        }
        let mut values = [0u8; 4];
        for (slot, set) in values.iter_mut().zip(self.octets.iter()).rev() {
            let count = u64::from(set.count());
            let rank = u32::try_from(index % count).ok()?;
            index /= count;
            *slot = set.select(rank)?;
        }
        Some(Ipv4Addr::from(values))
    }

    /// If every address matches the same single value per octet, that address.
    pub(crate) fn single(&self) -> Option<Ipv4Addr> {
        if self.len() == 1 {
            self.get(0)
        } else {
            None
        }
    }

    /// The pattern as a few sorted inclusive `u32` intervals, when it has that shape: leading
    /// single-valued octets, one octet with any set of values, then octets that are all `0-255`.
    /// Used by exclusion sets so membership is a binary search and iteration can jump over them.
    pub(crate) fn as_intervals(&self) -> Option<Vec<(u32, u32)>> {
        let varying = self.octets.iter().position(|set| set.count() != 1);
        let Some(varying) = varying else {
            let address = u32::from(self.single()?);
            return Some(vec![(address, address)]);
        };
        let tail = self.octets.get(varying + 1..)?;
        if !tail.iter().all(OctetSet::is_full) {
            return None;
        }
        let mut prefix = 0u32;
        for set in self.octets.get(..varying)? {
            prefix = (prefix << 8) | u32::from(set.select(0)?);
        }
        let shift = 8 * (3 - varying as u32);
        let tail_mask = if shift == 0 { 0 } else { (1u32 << shift) - 1 };
        // The fixed leading octets sit above the varying one; with none, `prefix` is 0.
        let high = prefix.checked_shl(shift + 8).unwrap_or(0);
        let runs = self.octets.get(varying)?.runs();
        let intervals = runs
            .into_iter()
            .map(|(first, last)| {
                let start = high | (u32::from(first) << shift);
                let end = high | (u32::from(last) << shift) | tail_mask;
                (start, end)
            })
            .collect();
        Some(intervals)
    }
}

impl fmt::Display for OctetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, set) in self.octets.iter().enumerate() {
            if index > 0 {
                f.write_str(".")?;
            }
            if set.is_full() {
                f.write_str("*")?;
                continue;
            }
            for (run_index, (first, last)) in set.runs().into_iter().enumerate() {
                if run_index > 0 {
                    f.write_str(",")?;
                }
                if first == last {
                    write!(f, "{first}")?;
                } else {
                    write!(f, "{first}-{last}")?;
                }
            }
        }
        Ok(())
    }
}

/// Characters that make a host part an IPv4 form (address, range or octet pattern) rather than
/// a DNS name. A name made only of these (e.g. `10.0.0`) is not a valid host name anyway, since
/// a top-level domain is never all digits.
pub(crate) fn is_ipv4_form(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b',' | b'*' | b'-'))
}

/// Whether an unbracketed spec is an IPv6 form: at least two colons, what precedes the first
/// one is a (possibly empty) hex group, and what follows it is not an nmap `T:`/`U:` port
/// prefix. `host:T:443` and `cafe:U:53` thus stay a host with a port list.
pub(crate) fn is_ipv6_form(text: &str) -> bool {
    let Some((first_group, rest)) = text.split_once(':') else {
        return false;
    };
    let port_prefix = rest
        .get(..2)
        .is_some_and(|start| matches!(start, "T:" | "t:" | "U:" | "u:"));
    rest.contains(':')
        && !port_prefix
        && first_group.len() <= 4
        && first_group.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Parses an IPv4-looking host part: an address, `a.b.c.d-e.f.g.h`, or an octet pattern.
pub(crate) fn parse_ipv4_form(text: &str) -> Result<Hosts, String> {
    if let Some((start, end)) = text.split_once('-') {
        if let Ok(first) = start.parse::<Ipv4Addr>() {
            if end.matches('.').count() == 3 {
                let last = end
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("range end \"{end}\" is not a valid IPv4 address"))?;
                if first > last {
                    return Err(format!("range start {first} is after end {last}"));
                }
                return Ok(Hosts::Range {
                    first: IpAddr::V4(first),
                    last: IpAddr::V4(last),
                });
            }
        }
    }
    let pattern = parse_octet_pattern(text)?;
    Ok(match pattern.single() {
        Some(address) => Hosts::Address(IpAddr::V4(address)),
        None => Hosts::Octets(pattern),
    })
}

fn parse_octet_pattern(text: &str) -> Result<OctetPattern, String> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return Err("an IPv4 address needs 4 octets separated by \".\"".to_owned());
    }
    let mut octets = [OctetSet::default(); 4];
    for (set, part) in octets.iter_mut().zip(parts) {
        if part.is_empty() {
            return Err("empty octet (two dots in a row, or a dot at an end)".to_owned());
        }
        for item in part.split(',') {
            let (first, last) = parse_octet_item(item)?;
            set.insert_range(first, last);
        }
    }
    Ok(OctetPattern { octets })
}

fn parse_octet_item(item: &str) -> Result<(u8, u8), String> {
    if item == "*" {
        return Ok((0, 255));
    }
    if item.is_empty() {
        return Err("empty item in an octet list (two commas in a row?)".to_owned());
    }
    match item.split_once('-') {
        None => {
            let value = parse_octet(item)?;
            Ok((value, value))
        }
        Some((start, end)) => {
            if start.is_empty() || end.is_empty() {
                return Err(format!("octet range \"{item}\" needs a start and an end"));
            }
            let (first, last) = (parse_octet(start)?, parse_octet(end)?);
            if first > last {
                return Err(format!(
                    "octet range \"{item}\" is reversed (start is after end)"
                ));
            }
            Ok((first, last))
        }
    }
}

fn parse_octet(text: &str) -> Result<u8, String> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "\"{text}\" is not an octet (a number 0-255, a range or \"*\")"
        ));
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(format!(
            "octet \"{text}\" has a leading zero (octal or decimal is ambiguous)"
        ));
    }
    text.parse::<u8>()
        .map_err(|_| format!("octet {text} is larger than 255"))
}

/// Parses an IPv6 host part: an address, a CIDR block, or a range whose end is either a full
/// address or a last 16-bit group (`2001:db8::1-ff`).
pub(crate) fn parse_ipv6_form(text: &str) -> Result<Hosts, String> {
    if text.contains('%') {
        return Err("IPv6 zone ids (\"%...\") are not supported".to_owned());
    }
    if let Some((base, prefix)) = text.split_once('/') {
        let network = parse_ipv6(base)?;
        let prefix_len = parse_prefix_len(prefix, 128)?;
        return Ok(cidr(IpAddr::V6(network), prefix_len));
    }
    if let Some((start, end)) = text.split_once('-') {
        let first = parse_ipv6(start)?;
        let last = if !end.is_empty()
            && end.len() <= 4
            && end.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            let group = u128::from_str_radix(end, 16)
                .map_err(|_| format!("range end \"{end}\" is not a hex group"))?;
            Ipv6Addr::from((u128::from(first) & !0xffff) | group)
        } else {
            end.parse::<Ipv6Addr>().map_err(|_| {
                format!("range end \"{end}\" is not an IPv6 address or a last hex group")
            })?
        };
        if first > last {
            return Err(format!("range start {first} is after end {last}"));
        }
        return Ok(Hosts::Range {
            first: IpAddr::V6(first),
            last: IpAddr::V6(last),
        });
    }
    Ok(Hosts::Address(IpAddr::V6(parse_ipv6(text)?)))
}

fn parse_ipv6(text: &str) -> Result<Ipv6Addr, String> {
    text.parse::<Ipv6Addr>()
        .map_err(|_| format!("\"{text}\" is not a valid IPv6 address"))
}

/// Parses an IPv4 CIDR (`10.0.0.0/24`); the base must be a plain address.
pub(crate) fn parse_ipv4_cidr(base: &str, prefix: &str) -> Result<Hosts, String> {
    let network = base.parse::<Ipv4Addr>().map_err(|_| {
        if is_ipv4_form(base) {
            format!("\"{base}\" is not a valid IPv4 address (a CIDR base must be one address)")
        } else {
            format!(
                "CIDR notation needs an IP address before \"/\", not \"{base}\" (host names cannot be used)"
            )
        }
    })?;
    let prefix_len = parse_prefix_len(prefix, 32)?;
    Ok(cidr(IpAddr::V4(network), prefix_len))
}

/// Builds a CIDR with host bits cleared; a full-length prefix is just an address.
fn cidr(address: IpAddr, prefix_len: u8) -> Hosts {
    let full = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    if prefix_len == full {
        return Hosts::Address(address);
    }
    let (family, value) = address_value(address);
    let host_mask = low_bits(u32::from(full - prefix_len));
    Hosts::Cidr {
        network: address_from(family, value & !host_mask),
        prefix_len,
    }
}

fn parse_prefix_len(text: &str, max: u8) -> Result<u8, String> {
    if text.is_empty() {
        return Err("missing prefix length after \"/\"".to_owned());
    }
    if !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("prefix length \"{text}\" is not a number"));
    }
    match text.parse::<u8>() {
        Ok(length) if length <= max => Ok(length),
        _ => Err(format!("prefix length {text} is larger than {max}")),
    }
}

/// Checks DNS host-name syntax (RFC 1123 letters, digits and hyphens; underscores are allowed
/// because real internal names use them). A single trailing dot (fully qualified) is accepted.
pub(crate) fn validate_host_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if let Some(bad) = bare
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(if bad.is_whitespace() {
            "host names cannot contain spaces".to_owned()
        } else if !bad.is_ascii() {
            format!(
                "host names cannot contain {bad:?} (write internationalised names in their \"xn--\" form)"
            )
        } else {
            format!("host names cannot contain {bad:?} (use letters, digits, \"-\" and \".\")")
        });
    }
    if bare.len() > 253 {
        return Err("host name is longer than 253 characters".to_owned());
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(
                "host name has an empty label (two dots in a row, or a leading dot)".to_owned(),
            );
        }
        if label.len() > 63 {
            return Err(format!(
                "host name label \"{label}\" is longer than 63 characters"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "host name label \"{label}\" starts or ends with \"-\""
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
mod tests {
    use super::*;

    fn pattern(text: &str) -> OctetPattern {
        parse_octet_pattern(text).unwrap()
    }

    #[test]
    fn octet_pattern_counts_and_order() {
        let p = pattern("10.0.1-3.1-254");
        assert_eq!(p.len(), 3 * 254);
        assert_eq!(p.get(0), Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(p.get(253), Some(Ipv4Addr::new(10, 0, 1, 254)));
        assert_eq!(p.get(254), Some(Ipv4Addr::new(10, 0, 2, 1)));
        assert_eq!(p.get(3 * 254 - 1), Some(Ipv4Addr::new(10, 0, 3, 254)));
        assert_eq!(p.get(3 * 254), None);
    }

    #[test]
    fn octet_lists_are_sorted_and_deduplicated() {
        let p = pattern("10.0.0.9,1,5,1");
        let all: Vec<_> = (0..p.len()).map(|i| p.get(i).unwrap()).collect();
        assert_eq!(
            all,
            vec![
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 5),
                Ipv4Addr::new(10, 0, 0, 9)
            ]
        );
    }

    #[test]
    fn star_is_whole_octet() {
        let p = pattern("192.168.*.1");
        assert_eq!(p.len(), 256);
        assert!(p.contains(Ipv4Addr::new(192, 168, 77, 1)));
        assert!(!p.contains(Ipv4Addr::new(192, 168, 77, 2)));
        assert_eq!(p.to_string(), "192.168.*.1");
    }

    #[test]
    fn select_finds_every_member() {
        let mut set = OctetSet::default();
        set.insert_range(3, 5);
        set.insert_range(64, 64);
        set.insert_range(200, 255);
        let members: Vec<u8> = (0..set.count()).map(|k| set.select(k).unwrap()).collect();
        let expected: Vec<u8> = (3..=5).chain([64]).chain(200..=255).collect();
        assert_eq!(members, expected);
        assert_eq!(set.select(set.count()), None);
    }

    #[test]
    fn intervals_for_simple_shapes() {
        assert_eq!(
            pattern("10.0.0.1-50").as_intervals(),
            Some(vec![(0x0a00_0001, 0x0a00_0032)])
        );
        assert_eq!(
            pattern("10.1,3.*.*").as_intervals(),
            Some(vec![(0x0a01_0000, 0x0a01_ffff), (0x0a03_0000, 0x0a03_ffff)])
        );
        assert_eq!(pattern("*.*.*.*").as_intervals(), Some(vec![(0, u32::MAX)]));
        assert_eq!(pattern("*.*.*.1").as_intervals(), None);
        assert_eq!(
            pattern("10.0.0.1").as_intervals(),
            Some(vec![(0x0a00_0001, 0x0a00_0001)])
        );
    }

    #[test]
    fn intervals_match_membership() {
        for text in ["10.0.0.1-50", "10.1,3.*.*", "10.0.4-6,9.*", "1.2.3.4"] {
            let p = pattern(text);
            let intervals = p.as_intervals().unwrap();
            let total: u64 = intervals.iter().map(|(a, b)| u64::from(b - a) + 1).sum();
            assert_eq!(total, p.len(), "{text}");
            for (first, last) in intervals {
                assert!(p.contains(Ipv4Addr::from(first)));
                assert!(p.contains(Ipv4Addr::from(last)));
            }
        }
    }

    #[test]
    fn cidr_clears_host_bits() {
        assert_eq!(
            parse_ipv4_cidr("10.1.2.3", "8").unwrap(),
            Hosts::Cidr {
                network: "10.0.0.0".parse().unwrap(),
                prefix_len: 8
            }
        );
        assert_eq!(
            parse_ipv4_cidr("10.1.2.3", "32").unwrap(),
            Hosts::Address("10.1.2.3".parse().unwrap())
        );
        assert_eq!(parse_ipv4_cidr("10.1.2.3", "0").unwrap().len(), 1 << 32);
    }

    #[test]
    fn ipv6_slash_zero_saturates() {
        let all = parse_ipv6_form("::/0").unwrap();
        assert_eq!(all.len(), u128::MAX);
        assert_eq!(all.last_index(), u128::MAX);
        assert_eq!(
            all.address_at(u128::MAX),
            Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap())
        );
    }

    #[test]
    fn host_name_rules() {
        assert!(validate_host_name("example.com").is_ok());
        assert!(validate_host_name("example.com.").is_ok());
        assert!(validate_host_name("_dmarc.example.com").is_ok());
        assert!(validate_host_name("a-b.c").is_ok());
        assert!(validate_host_name(&"a".repeat(63)).is_ok());
        assert!(validate_host_name(&"a".repeat(64)).is_err());
        let long = vec!["a".repeat(60); 5].join(".");
        assert_eq!(
            validate_host_name(&long).unwrap_err(),
            "host name is longer than 253 characters"
        );
    }

    #[test]
    fn ipv6_form_detection() {
        assert!(is_ipv6_form("2001:db8::1"));
        assert!(is_ipv6_form("::1"));
        assert!(is_ipv6_form("fe80::/10"));
        assert!(!is_ipv6_form("host:443"));
        assert!(!is_ipv6_form("host:T:443"));
        assert!(!is_ipv6_form("cafe:T:443"));
        assert!(!is_ipv6_form("beef:u:53,443"));
        assert!(is_ipv6_form("beef:80::1"));
        assert!(!is_ipv6_form("10.0.0.1:443"));
    }
}
