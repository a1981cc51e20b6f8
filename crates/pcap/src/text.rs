//! Addresses as text for findings. Every finding carries its endpoints as strings, so they are
//! written digit by digit for IPv4 (the common case) instead of through `Display`'s padding machinery;
//! IPv6 keeps the standard library's RFC 5952 rendering.

use std::net::{IpAddr, SocketAddr};

fn push_decimal(out: &mut String, value: u16) {
    let mut digits = [0u8; 5];
    let mut n = value;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, u16::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// The address as `Display` writes it.
pub(crate) fn ip_text(ip: IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, ip);
    out
}

/// `ip:port`, or `[ip]:port` for IPv6, as `SocketAddr`'s `Display` writes it (no scope id: captures
/// carry none).
pub(crate) fn endpoint_text(addr: SocketAddr) -> String {
    let mut out = String::with_capacity(21);
    if addr.is_ipv6() {
        out.push('[');
        push_ip(&mut out, addr.ip());
        out.push(']');
    } else {
        push_ip(&mut out, addr.ip());
    }
    out.push(':');
    push_decimal(&mut out, addr.port());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edge_values_match_display() {
        for text in ["0.0.0.0:0", "255.255.255.255:65535", "10.0.100.1:443", "[::1]:8080", "[2001:db8::ffff:1.2.3.4]:1", "[::ffff:10.0.0.1]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(endpoint_text(addr), addr.to_string());
            assert_eq!(ip_text(addr.ip()), addr.ip().to_string());
        }
    }

    proptest! {
        #[test]
        fn same_text_as_display(v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>(), port in any::<u16>()) {
            for ip in [IpAddr::from(v4), IpAddr::from(v6)] {
                let addr = SocketAddr::new(ip, port);
                prop_assert_eq!(ip_text(ip), ip.to_string());
                prop_assert_eq!(endpoint_text(addr), addr.to_string());
            }
        }
    }
}
