//! One target spec (`10.0.0.0/24`, `host:udp/4433`, `[2001:db8::1]:8443`, ...) and the splitter
//! that cuts a command-line word or a file line into specs.

use std::fmt;
use std::str::FromStr;

use crate::error::TargetError;
use crate::hosts::{
    is_ipv4_form, is_ipv6_form, parse_ipv4_cidr, parse_ipv4_form, parse_ipv6_form,
    validate_host_name, Hosts,
};
use crate::ports::{PortList, Transport};

/// One parsed target: a set of hosts, and optionally its own ports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetSpec {
    text: String,
    hosts: Hosts,
    ports: Option<PortList>,
}

impl TargetSpec {
    /// Parses one spec; see the crate documentation for the syntax. Surrounding whitespace is
    /// ignored. To parse text that may hold several specs, use [`split_specs`] or
    /// [`crate::parse_targets`].
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        TargetSpec::parse_with_default(text, Transport::Tcp)
    }

    /// Like [`TargetSpec::parse`], with `default` for the ports of a `:port` suffix that do not
    /// say their transport (`host:4433` is UDP with `Transport::Udp`; `host:tcp/443` stays TCP).
    pub fn parse_with_default(text: &str, default: Transport) -> Result<Self, TargetError> {
        let spec = text.trim();
        if spec.is_empty() {
            return Err(TargetError::target(text, "empty target"));
        }
        let fail = |reason: String| TargetError::target(spec, reason);

        let (hosts, port_text) = if let Some(inside) = spec.strip_prefix('[') {
            let (address, after) = inside
                .split_once(']')
                .ok_or_else(|| fail("missing \"]\" after the IPv6 address".to_owned()))?;
            if !address.contains(':') {
                return Err(fail(
                    "brackets are only for IPv6 addresses (write IPv4 addresses and names without them)"
                        .to_owned(),
                ));
            }
            let port_text = if after.is_empty() {
                None
            } else {
                Some(after.strip_prefix(':').ok_or_else(|| {
                    fail(format!(
                        "unexpected \"{after}\" after \"]\" (expected \":\" and a port)"
                    ))
                })?)
            };
            (parse_ipv6_form(address).map_err(fail)?, port_text)
        } else if is_ipv6_form(spec) {
            let hosts = parse_ipv6_form(spec).map_err(|reason| {
                // A plain address that fails may be an attempt at `address:port`.
                if spec.contains(['/', '-', '%']) {
                    fail(reason)
                } else {
                    fail(format!(
                        "{reason} (to give an IPv6 address a port, write [address]:port)"
                    ))
                }
            })?;
            (hosts, None)
        } else {
            let (host_text, port_text) = match spec.split_once(':') {
                Some((host, ports)) => (host, Some(ports)),
                None => (spec, None),
            };
            (parse_host_part(host_text).map_err(fail)?, port_text)
        };

        let ports = match port_text {
            None => None,
            Some(text) if text.trim().is_empty() => {
                return Err(fail("missing port after \":\"".to_owned()))
            }
            Some(text) => Some(
                PortList::parse_with_default(text, default)
                    .map_err(|error| fail(error.to_string()))?,
            ),
        };
        Ok(TargetSpec {
            text: spec.to_owned(),
            hosts,
            ports,
        })
    }

    /// The spec as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The hosts this spec names.
    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// The spec's own ports (from a `:port` suffix), which override the global port list.
    pub fn ports(&self) -> Option<&PortList> {
        self.ports.as_ref()
    }

    /// Number of hosts, saturating at `u128::MAX` (see [`Hosts::len`]).
    pub fn address_count(&self) -> u128 {
        self.hosts.len()
    }
}

impl FromStr for TargetSpec {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        TargetSpec::parse(text)
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Host part of an unbracketed, non-IPv6 spec (the port suffix already removed).
fn parse_host_part(host: &str) -> Result<Hosts, String> {
    if host.is_empty() {
        return Err("missing host before \":\"".to_owned());
    }
    if let Some((base, prefix)) = host.split_once('/') {
        return parse_ipv4_cidr(base, prefix);
    }
    if is_ipv4_form(host) {
        return parse_ipv4_form(host);
    }
    validate_host_name(host)?;
    Ok(Hosts::Name(host.to_owned()))
}

/// Splits text into specs at whitespace and commas, keeping the commas that belong inside a
/// spec: nmap octet lists (`10.0.0.1,5,9`, `10.0,1.0.1`) and port lists after a port suffix
/// (`host:443,8443`, `[2001:db8::1]:443,U:4433`).
///
/// A comma continues the current spec when
/// - the spec has a port suffix and the next piece looks like a port item (`8443`, `1-10`,
///   `udp/4433`, `U:53`), or
/// - the spec is an IPv4 octet form with fewer than three dots, or with three dots and the next
///   piece has no dot (it is another value for the last octet).
///
/// Otherwise the comma separates specs. Empty pieces (`a,,b`) are skipped. The returned slices
/// borrow from `text`.
pub fn split_specs(text: &str) -> Vec<&str> {
    let mut specs = Vec::new();
    for word in text.split_whitespace() {
        // Byte range within `word` of the spec being built.
        let mut current: Option<(usize, usize)> = None;
        let mut offset = 0;
        for piece in word.split(',') {
            let start = offset;
            let end = start + piece.len();
            offset = end + 1;
            if piece.is_empty() {
                if let Some(spec) = current.take().and_then(|(from, to)| word.get(from..to)) {
                    specs.push(spec);
                }
                continue;
            }
            current = match current {
                Some((from, to)) => {
                    let so_far = word.get(from..to).unwrap_or_default();
                    if comma_continues(so_far, piece) {
                        Some((from, end))
                    } else {
                        specs.push(so_far);
                        Some((start, end))
                    }
                }
                None => Some((start, end)),
            };
        }
        if let Some(spec) = current.and_then(|(from, to)| word.get(from..to)) {
            specs.push(spec);
        }
    }
    specs
}

fn comma_continues(so_far: &str, next: &str) -> bool {
    if has_port_suffix(so_far) {
        return looks_like_port_item(next);
    }
    if is_ipv4_form(so_far) && is_ipv4_form(next) {
        let dots = so_far.matches('.').count();
        return dots < 3 || (dots == 3 && !next.contains('.'));
    }
    false
}

fn has_port_suffix(spec: &str) -> bool {
    if spec.starts_with('[') {
        spec.contains("]:")
    } else {
        spec.contains(':') && !is_ipv6_form(spec)
    }
}

fn looks_like_port_item(piece: &str) -> bool {
    let lower = piece.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("t:")
        .or_else(|| lower.strip_prefix("u:"))
        .unwrap_or(&lower);
    let rest = rest
        .strip_prefix("tcp/")
        .or_else(|| rest.strip_prefix("udp/"))
        .unwrap_or(rest);
    rest.starts_with(|c: char| c.is_ascii_digit())
        && rest
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::ports::Transport;

    fn spec(text: &str) -> TargetSpec {
        TargetSpec::parse(text).unwrap()
    }

    fn error(text: &str) -> String {
        TargetSpec::parse(text).unwrap_err().to_string()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ports(text: &str) -> Vec<(u16, Transport)> {
        spec(text).ports().unwrap().iter().collect()
    }

    #[test]
    fn host_name() {
        let parsed = spec("scanme.example.org");
        assert_eq!(parsed.hosts(), &Hosts::Name("scanme.example.org".into()));
        assert_eq!(parsed.ports(), None);
        assert_eq!(parsed.address_count(), 1);
    }

    #[test]
    fn host_name_with_port() {
        let parsed = spec("example.com:8443");
        assert_eq!(parsed.hosts(), &Hosts::Name("example.com".into()));
        assert_eq!(ports("example.com:8443"), vec![(8443, Transport::Tcp)]);
    }

    #[test]
    fn default_transport_applies_only_where_none_is_said() {
        let udp = |text: &str| -> Vec<(u16, Transport)> {
            TargetSpec::parse_with_default(text, Transport::Udp)
                .unwrap()
                .ports()
                .unwrap()
                .iter()
                .collect()
        };
        assert_eq!(udp("127.0.0.1:4433"), vec![(4433, Transport::Udp)]);
        assert_eq!(udp("host:tcp/443"), vec![(443, Transport::Tcp)]);
        assert_eq!(
            udp("host:T:443,444"),
            vec![(443, Transport::Tcp), (444, Transport::Tcp)]
        );
        assert_eq!(
            udp("[::1]:53,tcp/443"),
            vec![(443, Transport::Tcp), (53, Transport::Udp)]
        );
        assert_eq!(ports("127.0.0.1:4433"), vec![(4433, Transport::Tcp)]);
    }

    #[test]
    fn host_name_with_udp_port() {
        assert_eq!(ports("host:udp/4433"), vec![(4433, Transport::Udp)]);
        assert_eq!(ports("host:U:4433"), vec![(4433, Transport::Udp)]);
        assert_eq!(ports("host:tcp/443"), vec![(443, Transport::Tcp)]);
        // A hex-looking name is still a name when a T:/U: prefix follows.
        assert_eq!(spec("cafe:U:53").hosts(), &Hosts::Name("cafe".into()));
        assert_eq!(ports("cafe:U:53"), vec![(53, Transport::Udp)]);
    }

    #[test]
    fn port_suffix_may_be_a_list() {
        assert_eq!(
            ports("host:443,8443"),
            vec![(443, Transport::Tcp), (8443, Transport::Tcp)]
        );
    }

    #[test]
    fn ipv4_address() {
        assert_eq!(spec("1.2.3.4").hosts(), &Hosts::Address(ip("1.2.3.4")));
    }

    #[test]
    fn ipv4_address_with_port() {
        let parsed = spec("1.2.3.4:443");
        assert_eq!(parsed.hosts(), &Hosts::Address(ip("1.2.3.4")));
        assert_eq!(ports("1.2.3.4:443"), vec![(443, Transport::Tcp)]);
    }

    #[test]
    fn ipv6_address() {
        assert_eq!(
            spec("2001:db8::1").hosts(),
            &Hosts::Address(ip("2001:db8::1"))
        );
        assert_eq!(spec("::1").hosts(), &Hosts::Address(ip("::1")));
        assert_eq!(spec("2001:db8::1").ports(), None);
    }

    #[test]
    fn bracketed_ipv6_with_port() {
        let parsed = spec("[2001:db8::1]:8443");
        assert_eq!(parsed.hosts(), &Hosts::Address(ip("2001:db8::1")));
        assert_eq!(ports("[2001:db8::1]:8443"), vec![(8443, Transport::Tcp)]);
        assert_eq!(spec("[::1]").ports(), None);
        assert_eq!(ports("[::1]:udp/4433"), vec![(4433, Transport::Udp)]);
    }

    #[test]
    fn bracketed_ipv6_cidr_with_port() {
        let parsed = spec("[2001:db8::/126]:443");
        assert_eq!(parsed.address_count(), 4);
        assert!(parsed.ports().is_some());
    }

    #[test]
    fn ipv4_cidr() {
        let parsed = spec("10.0.0.0/24");
        assert_eq!(
            parsed.hosts(),
            &Hosts::Cidr {
                network: ip("10.0.0.0"),
                prefix_len: 24
            }
        );
        assert_eq!(parsed.address_count(), 256);
        assert_eq!(spec("10.0.0.0/24:443").address_count(), 256);
    }

    #[test]
    fn ipv4_cidr_with_host_bits_is_masked() {
        assert_eq!(
            spec("192.168.7.9/16").hosts(),
            &Hosts::Cidr {
                network: ip("192.168.0.0"),
                prefix_len: 16
            }
        );
    }

    #[test]
    fn ipv6_cidr() {
        let parsed = spec("2001:db8::/120");
        assert_eq!(parsed.address_count(), 256);
        assert_eq!(spec("2001:db8::/64").address_count(), 1 << 64);
        assert_eq!(spec("::/0").address_count(), u128::MAX);
    }

    #[test]
    fn ipv4_full_range() {
        let parsed = spec("10.0.0.1-10.0.0.50");
        assert_eq!(
            parsed.hosts(),
            &Hosts::Range {
                first: ip("10.0.0.1"),
                last: ip("10.0.0.50")
            }
        );
        assert_eq!(parsed.address_count(), 50);
        assert_eq!(spec("10.0.0.250-10.0.1.5").address_count(), 12);
    }

    #[test]
    fn ipv4_last_octet_range() {
        let parsed = spec("10.0.0.1-50");
        assert_eq!(parsed.address_count(), 50);
        assert!(parsed.hosts().contains(ip("10.0.0.50")));
        assert!(!parsed.hosts().contains(ip("10.0.0.51")));
    }

    #[test]
    fn nmap_octet_ranges() {
        let parsed = spec("10.0.1-3.1-254");
        assert_eq!(parsed.address_count(), 762);
        assert!(matches!(parsed.hosts(), Hosts::Octets(_)));
        assert_eq!(spec("192.168.3-5,7.1").address_count(), 4);
        assert_eq!(spec("10.0.*.1").address_count(), 256);
    }

    #[test]
    fn ipv6_ranges() {
        assert_eq!(spec("2001:db8::1-2001:db8::ff").address_count(), 255);
        assert_eq!(spec("2001:db8::1-ff").address_count(), 255);
        assert_eq!(spec("[2001:db8::1-2001:db8::3]:443").address_count(), 3);
    }

    #[test]
    fn whitespace_is_trimmed() {
        assert_eq!(spec("  10.0.0.1 ").as_str(), "10.0.0.1");
    }

    #[test]
    fn error_empty() {
        assert_eq!(error(""), r#"invalid target "": empty target"#);
    }

    #[test]
    fn error_prefix_too_long() {
        assert_eq!(
            error("10.0.0.0/33"),
            r#"invalid target "10.0.0.0/33": prefix length 33 is larger than 32"#
        );
        assert_eq!(
            error("2001:db8::/129"),
            r#"invalid target "2001:db8::/129": prefix length 129 is larger than 128"#
        );
        assert_eq!(
            error("10.0.0.0/99999999999"),
            r#"invalid target "10.0.0.0/99999999999": prefix length 99999999999 is larger than 32"#
        );
    }

    #[test]
    fn error_prefix_not_a_number() {
        assert_eq!(
            error("10.0.0.0/x"),
            r#"invalid target "10.0.0.0/x": prefix length "x" is not a number"#
        );
        assert_eq!(
            error("10.0.0.0/"),
            r#"invalid target "10.0.0.0/": missing prefix length after "/""#
        );
    }

    #[test]
    fn error_cidr_on_name() {
        assert_eq!(
            error("example.com/24"),
            r#"invalid target "example.com/24": CIDR notation needs an IP address before "/", not "example.com" (host names cannot be used)"#
        );
        assert_eq!(
            error("10.0.0.*/24"),
            r#"invalid target "10.0.0.*/24": "10.0.0.*" is not a valid IPv4 address (a CIDR base must be one address)"#
        );
    }

    #[test]
    fn error_octets() {
        assert_eq!(
            error("10.0.0.256"),
            r#"invalid target "10.0.0.256": octet 256 is larger than 255"#
        );
        assert_eq!(
            error("10.0.0"),
            r#"invalid target "10.0.0": an IPv4 address needs 4 octets separated by ".""#
        );
        assert_eq!(
            error("10..0.1"),
            r#"invalid target "10..0.1": empty octet (two dots in a row, or a dot at an end)"#
        );
        assert_eq!(
            error("10.0.0.50-1"),
            r#"invalid target "10.0.0.50-1": octet range "50-1" is reversed (start is after end)"#
        );
        assert_eq!(
            error("10.0.0.1-"),
            r#"invalid target "10.0.0.1-": octet range "1-" needs a start and an end"#
        );
        assert_eq!(
            error("10.0.0.01"),
            r#"invalid target "10.0.0.01": octet "01" has a leading zero (octal or decimal is ambiguous)"#
        );
        assert_eq!(
            error("10.0.0.1,,2"),
            r#"invalid target "10.0.0.1,,2": empty item in an octet list (two commas in a row?)"#
        );
        assert_eq!(
            error("10.0.0.**"),
            r#"invalid target "10.0.0.**": "**" is not an octet (a number 0-255, a range or "*")"#
        );
    }

    #[test]
    fn error_reversed_ranges() {
        assert_eq!(
            error("10.0.0.50-10.0.0.1"),
            r#"invalid target "10.0.0.50-10.0.0.1": range start 10.0.0.50 is after end 10.0.0.1"#
        );
        assert_eq!(
            error("10.0.0.1-10.0.0.300"),
            r#"invalid target "10.0.0.1-10.0.0.300": range end "10.0.0.300" is not a valid IPv4 address"#
        );
        assert_eq!(
            error("[2001:db8::ff-2001:db8::1]"),
            r#"invalid target "[2001:db8::ff-2001:db8::1]": range start 2001:db8::ff is after end 2001:db8::1"#
        );
        assert_eq!(
            error("[2001:db8::1-zz]"),
            r#"invalid target "[2001:db8::1-zz]": range end "zz" is not an IPv6 address or a last hex group"#
        );
    }

    #[test]
    fn error_ipv6() {
        assert_eq!(
            error("2001:db8::g"),
            r#"invalid target "2001:db8::g": "2001:db8::g" is not a valid IPv6 address (to give an IPv6 address a port, write [address]:port)"#
        );
        assert_eq!(
            error("[2001:db8::1"),
            r#"invalid target "[2001:db8::1": missing "]" after the IPv6 address"#
        );
        assert_eq!(
            error("[2001:db8::1]443"),
            r#"invalid target "[2001:db8::1]443": unexpected "443" after "]" (expected ":" and a port)"#
        );
        assert_eq!(
            error("[10.0.0.1]:443"),
            r#"invalid target "[10.0.0.1]:443": brackets are only for IPv6 addresses (write IPv4 addresses and names without them)"#
        );
        assert_eq!(
            error("fe80::1%eth0"),
            r#"invalid target "fe80::1%eth0": IPv6 zone ids ("%...") are not supported"#
        );
    }

    #[test]
    fn error_host_names() {
        assert_eq!(
            error("bad host"),
            r#"invalid target "bad host": host names cannot contain spaces"#
        );
        assert_eq!(
            error("bad!host"),
            r#"invalid target "bad!host": host names cannot contain '!' (use letters, digits, "-" and ".")"#
        );
        assert_eq!(
            error("bücher.de"),
            r#"invalid target "bücher.de": host names cannot contain 'ü' (write internationalised names in their "xn--" form)"#
        );
        assert_eq!(
            error("a..b"),
            r#"invalid target "a..b": host name has an empty label (two dots in a row, or a leading dot)"#
        );
        assert_eq!(
            error("-a.b"),
            r#"invalid target "-a.b": host name label "-a" starts or ends with "-""#
        );
        let long_label = "x".repeat(64);
        assert_eq!(
            error(&format!("{long_label}.com")),
            format!(
                r#"invalid target "{long_label}.com": host name label "{long_label}" is longer than 63 characters"#
            )
        );
    }

    #[test]
    fn error_ports_in_targets() {
        assert_eq!(
            error("host:70000"),
            r#"invalid target "host:70000": invalid port "70000": ports are 1-65535"#
        );
        assert_eq!(
            error("host:0"),
            r#"invalid target "host:0": invalid port "0": ports are 1-65535"#
        );
        assert_eq!(
            error("host:"),
            r#"invalid target "host:": missing port after ":""#
        );
        assert_eq!(
            error(":443"),
            r#"invalid target ":443": missing host before ":""#
        );
        assert_eq!(
            error("[::1]:"),
            r#"invalid target "[::1]:": missing port after ":""#
        );
    }

    #[test]
    fn split_on_whitespace_and_commas() {
        assert_eq!(
            split_specs("a.example, 10.0.0.1\t10.0.0.0/24,b.example"),
            vec!["a.example", "10.0.0.1", "10.0.0.0/24", "b.example"]
        );
    }

    #[test]
    fn split_keeps_octet_lists() {
        assert_eq!(split_specs("10.0.0.1,5,9"), vec!["10.0.0.1,5,9"]);
        assert_eq!(split_specs("192.168.3-5,7.1"), vec!["192.168.3-5,7.1"]);
        assert_eq!(
            split_specs("10.0.0.1,10.0.0.2"),
            vec!["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            split_specs("10.0.0.1-10.0.0.9,10.0.1.1"),
            vec!["10.0.0.1-10.0.0.9", "10.0.1.1"]
        );
        assert_eq!(
            split_specs("10.0.0.0/24,10.0.1.1"),
            vec!["10.0.0.0/24", "10.0.1.1"]
        );
    }

    #[test]
    fn split_keeps_port_lists() {
        assert_eq!(split_specs("host:443,8443"), vec!["host:443,8443"]);
        assert_eq!(
            split_specs("[::1]:443,U:4433,other"),
            vec!["[::1]:443,U:4433", "other"]
        );
        assert_eq!(
            split_specs("host:443,10.0.0.1"),
            vec!["host:443", "10.0.0.1"]
        );
        assert_eq!(
            split_specs("2001:db8::1,2001:db8::2"),
            vec!["2001:db8::1", "2001:db8::2"]
        );
    }

    #[test]
    fn split_skips_empty_pieces() {
        assert_eq!(split_specs(",a,,b,"), vec!["a", "b"]);
        assert!(split_specs("  \t ").is_empty());
    }
}
