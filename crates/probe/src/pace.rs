//! Pacing of new endpoints (`scan --rate`, `--max-rate`): evenly spaced start times, overall and
//! per subnet (/24 for IPv4, /64 for IPv6). Pure bookkeeping over instants the caller passes in;
//! the scheduler sleeps until the instant it is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Subnets remembered at most before the expired ones are dropped: memory stays bounded however
/// many subnets a sweep touches (an entry lives only until its subnet may start again).
const SUBNETS_KEPT: usize = 4096;

/// Evenly spaced starts at `per_second`: burst 1, and time lost (a slow producer) is not caught
/// up with a burst later.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer of `per_second` starts; `None` for no limit (0, negative or not a number).
    pub fn per_second(per_second: f64) -> Option<Pacer> {
        (per_second.is_finite() && per_second > 0.0).then(|| Pacer { interval: Duration::from_secs_f64(1.0 / per_second.max(1e-6)), next: None })
    }

    /// The earliest start at or after `at`.
    pub fn earliest(&self, at: Instant) -> Instant {
        self.next.map_or(at, |next| next.max(at))
    }

    /// Books a start at `at` (an instant from [`Self::earliest`] or later).
    pub fn book(&mut self, at: Instant) {
        self.next = Some(at + self.interval);
    }
}

/// The subnet an address is paced in: its /24 (IPv4) or /64 (IPv6).
pub fn subnet_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4) >> 8),
        // Tagged so that no IPv6 /64 shares a key with an IPv4 /24.
        IpAddr::V6(v6) => (u128::from(v6) >> 64) | (1 << 100),
    }
}

/// One [`Pacer`] per recently used subnet.
#[derive(Debug, Clone)]
pub struct SubnetPacer {
    interval: Duration,
    next: HashMap<u128, Instant>,
}

impl SubnetPacer {
    /// At most `per_second` starts per subnet; `None` for no limit.
    pub fn per_second(per_second: f64) -> Option<SubnetPacer> {
        Pacer::per_second(per_second).map(|p| SubnetPacer { interval: p.interval, next: HashMap::new() })
    }

    /// The earliest start for `ip` at or after `at`.
    pub fn earliest(&self, ip: IpAddr, at: Instant) -> Instant {
        self.next.get(&subnet_of(ip)).map_or(at, |next| (*next).max(at))
    }

    /// Books a start for `ip` at `at`; forgets subnets free again by `now` when too many are kept.
    pub fn book(&mut self, ip: IpAddr, at: Instant, now: Instant) {
        if self.next.len() >= SUBNETS_KEPT {
            self.next.retain(|_, next| *next > now);
        }
        self.next.insert(subnet_of(ip), at + self.interval);
    }

    /// Subnets remembered now.
    pub fn remembered(&self) -> usize {
        self.next.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_evenly_spaced_without_catching_up() {
        let mut pacer = Pacer::per_second(10.0).unwrap();
        let t0 = Instant::now();
        let first = pacer.earliest(t0);
        assert_eq!(first, t0);
        pacer.book(first);
        assert_eq!(pacer.earliest(t0), t0 + Duration::from_millis(100));
        // A producer that comes back late starts at once, but only once: no burst.
        let late = t0 + Duration::from_secs(5);
        let start = pacer.earliest(late);
        assert_eq!(start, late);
        pacer.book(start);
        assert_eq!(pacer.earliest(late), late + Duration::from_millis(100));
        assert!(Pacer::per_second(0.0).is_none());
        assert!(Pacer::per_second(f64::NAN).is_none());
    }

    #[test]
    fn subnets_are_paced_apart_and_forgotten_when_free() {
        let mut pacer = SubnetPacer::per_second(2.0).unwrap();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let same_24: IpAddr = "10.0.0.200".parse().unwrap();
        let other_24: IpAddr = "10.0.1.1".parse().unwrap();
        pacer.book(a, t0, t0);
        assert_eq!(pacer.earliest(same_24, t0), t0 + Duration::from_millis(500));
        assert_eq!(pacer.earliest(other_24, t0), t0);
        let v6_a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6_same_64: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        pacer.book(v6_a, t0, t0);
        assert_eq!(pacer.earliest(v6_same_64, t0), t0 + Duration::from_millis(500));
        // Many subnets: the map never grows past its bound once time has moved on.
        for i in 0..20_000u32 {
            let now = t0 + Duration::from_secs(u64::from(i));
            pacer.book(IpAddr::V4((i << 8).into()), now, now);
            assert!(pacer.remembered() <= SUBNETS_KEPT);
        }
    }
}
