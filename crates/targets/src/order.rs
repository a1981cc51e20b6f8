//! Sweep order: every (target, port) of a [`TargetSet`] visited once in a pseudo-random order
//! drawn from a seed, without materialising the space, and split into disjoint shards.
//!
//! A position `p` in `[0, len)` of the walk maps to an index of the set through a keyed
//! permutation (a balanced Feistel network over the smallest even number of bits that holds
//! `len`, with cycle-walking for values `>= len`: a bijection of `[0, len)` for any `len`), and
//! the index maps to (spec, host, port) arithmetically. Shard `K` of `N` takes the positions
//! `K, K+N, K+2N, ...`, so the shards are disjoint and together cover the walk; a shard's
//! progress is one number, "shard positions below X are done". Excluded hosts are skipped after
//! the mapping: they are never handed out.

use std::fmt;
use std::str::FromStr;

use crate::hosts::HostRef;
use crate::set::{Endpoint, TargetSet};
use crate::TargetError;

/// Feistel rounds: enough for consecutive positions to land on unrelated indexes.
const ROUNDS: usize = 6;

/// A keyed bijection of `[0, len)`.
#[derive(Debug, Clone)]
pub struct Permutation {
    len: u128,
    half_bits: u32,
    keys: [u64; ROUNDS],
}

impl Permutation {
    /// The permutation of `[0, len)` that `seed` selects.
    pub fn new(len: u128, seed: u64) -> Self {
        // The smallest even bit count whose domain holds `len` (at least 2 bits): the domain is
        // below 4 × len, so cycle-walking takes under four rounds on average.
        let needed = 128 - len.saturating_sub(1).leading_zeros();
        let bits = needed.max(2).next_multiple_of(2);
        let mut state = seed;
        let keys = std::array::from_fn(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            mix(state)
        });
        Permutation {
            len,
            half_bits: bits / 2,
            keys,
        }
    }

    /// The size of the permuted range.
    pub fn len(&self) -> u128 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The image of `position`; `None` past the end.
    pub fn apply(&self, position: u128) -> Option<u128> {
        if position >= self.len {
            return None;
        }
        // Cycle-walking: the Feistel network permutes the whole domain, so the cycle through
        // `position` reaches a value below `len` again (at the latest `position` itself).
        let mut value = self.encrypt(position);
        while value >= self.len {
            value = self.encrypt(value);
        }
        Some(value)
    }

    fn encrypt(&self, value: u128) -> u128 {
        let mask = low_mask(self.half_bits);
        // Halves of at most 64 bits each: the truncations keep every bit.
        let mut left = ((value >> self.half_bits) & mask) as u64;
        let mut right = (value & mask) as u64;
        for key in self.keys {
            let next = left ^ (mix(right ^ key) & (mask as u64));
            left = right;
            right = next;
        }
        (u128::from(left) << self.half_bits) | u128::from(right)
    }
}

fn low_mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// SplitMix64's finaliser: a cheap, well-mixing round function.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Shard `index` of `count` (`--shard K/N`, `0 <= K < N`, as Kubernetes' completion index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// K, from 0.
    pub index: u64,
    /// N, at least 1.
    pub count: u64,
}

impl Shard {
    /// The whole walk.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; `None` unless `index < count`.
    pub fn new(index: u64, count: u64) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// How many of a walk of `total` positions belong to this shard.
    pub fn len(&self, total: u128) -> u128 {
        let index = u128::from(self.index);
        if total <= index {
            0
        } else {
            (total - index - 1) / u128::from(self.count) + 1
        }
    }

    /// The walk position of this shard's `local` position.
    pub fn walk_position(&self, local: u128) -> Option<u128> {
        local
            .checked_mul(u128::from(self.count))?
            .checked_add(u128::from(self.index))
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = TargetError;

    /// `K/N` with `0 <= K < N`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| TargetError::InvalidShard {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| invalid("expected K/N, e.g. 0/4"))?;
        let index: u64 = index
            .trim()
            .parse()
            .map_err(|_| invalid("K is not a number"))?;
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| invalid("N is not a number"))?;
        if count == 0 {
            return Err(invalid("N must be at least 1"));
        }
        Shard::new(index, count).ok_or_else(|| invalid("K counts from 0 and must be below N"))
    }
}

/// Random access into a [`TargetSet`]: index → endpoint, before exclusions.
#[derive(Debug, Clone)]
pub struct IndexedSet<'a> {
    set: &'a TargetSet,
    /// Index of each spec's first endpoint; the last entry is the total.
    starts: Vec<u128>,
}

impl<'a> IndexedSet<'a> {
    /// Indexes `set` (one number per spec).
    pub fn new(set: &'a TargetSet) -> Self {
        let mut starts = Vec::with_capacity(set.specs().len() + 1);
        let mut total = 0u128;
        starts.push(total);
        for spec in set.specs() {
            let ports = u128::from(set.ports_for(spec).len());
            total = total.saturating_add(spec.address_count().saturating_mul(ports));
            starts.push(total);
        }
        IndexedSet { set, starts }
    }

    /// Number of endpoints before exclusions (the set's `len_hint`).
    pub fn len(&self) -> u128 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Whether there is nothing to visit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The endpoint at `index` of the sequential order (exclusions not applied).
    pub fn endpoint_at(&self, index: u128) -> Option<Endpoint> {
        if index >= self.len() {
            return None;
        }
        // The spec whose range holds `index`: the last start at or below it.
        let spec_index = self.starts.partition_point(|start| *start <= index) - 1;
        let spec = self.set.specs().get(spec_index)?;
        let local = index - self.starts.get(spec_index)?;
        let ports = self.set.ports_for(spec);
        let per_host = u128::from(ports.len());
        let host_index = local / per_host;
        let mut port_index = u32::try_from(local % per_host).ok()?;
        let host = match spec.hosts() {
            crate::Hosts::Name(name) => HostRef::Name(name.clone()),
            hosts => HostRef::Ip(hosts.address_at(host_index)?),
        };
        for range in ports.ranges() {
            if port_index < range.len() {
                let port = u16::try_from(u32::from(range.first) + port_index).ok()?;
                return Some(Endpoint {
                    host,
                    port,
                    transport: range.transport,
                });
            }
            port_index -= range.len();
        }
        None
    }
}

/// One shard of a seeded walk over a [`TargetSet`]: yields `(shard position, endpoint)` in walk
/// order, excluded endpoints skipped. O(specs) memory, whatever the size of the space.
#[derive(Debug, Clone)]
pub struct SweepWalk<'a> {
    indexed: IndexedSet<'a>,
    permutation: Permutation,
    shard: Shard,
    next: u128,
    end: u128,
}

impl<'a> SweepWalk<'a> {
    /// Shard `shard` of the walk `seed` selects, starting at shard position `start` (a resumed
    /// shard starts where its recorded progress stopped).
    pub fn new(set: &'a TargetSet, seed: u64, shard: Shard, start: u128) -> Self {
        let indexed = IndexedSet::new(set);
        let total = indexed.len();
        SweepWalk {
            permutation: Permutation::new(total, seed),
            end: shard.len(total),
            next: start,
            indexed,
            shard,
        }
    }

    /// The next shard position to be handed out: every position below it has been.
    pub fn cursor(&self) -> u128 {
        self.next.min(self.end)
    }

    /// Positions in this shard (excluded ones included).
    pub fn shard_len(&self) -> u128 {
        self.end
    }
}

impl Iterator for SweepWalk<'_> {
    type Item = (u128, Endpoint);

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.end {
            let local = self.next;
            self.next += 1;
            let Some(index) = self
                .shard
                .walk_position(local)
                .and_then(|position| self.permutation.apply(position))
            else {
                continue;
            };
            let Some(endpoint) = self.indexed.endpoint_at(index) else {
                continue;
            };
            if !self.indexed.set.exclusions().excludes(&endpoint.host) {
                return Some((local, endpoint));
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
mod tests {
    use super::*;
    use crate::exclude::parse_exclusions;
    use proptest::prelude::*;
    use std::collections::HashSet;

    use crate::set::tests::set;

    #[test]
    fn permutation_is_a_bijection_for_every_small_length() {
        for len in 0..300u128 {
            for seed in [0, 1, 0xDEAD_BEEF] {
                let perm = Permutation::new(len, seed);
                let mut seen: Vec<u128> = (0..len).map(|p| perm.apply(p).unwrap()).collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..len).collect::<Vec<_>>(), "len {len} seed {seed}");
                assert_eq!(perm.apply(len), None);
            }
        }
    }

    #[test]
    fn the_seed_changes_the_order_and_the_same_seed_repeats_it() {
        let a: Vec<_> = (0..1000).map(|p| Permutation::new(1000, 1).apply(p)).collect();
        let b: Vec<_> = (0..1000).map(|p| Permutation::new(1000, 2).apply(p)).collect();
        let again: Vec<_> = (0..1000).map(|p| Permutation::new(1000, 1).apply(p)).collect();
        assert_ne!(a, b);
        assert_eq!(a, again);
    }

    #[test]
    fn huge_spaces_map_in_constant_memory() {
        let targets = set(&["::/0"], "443,U:4433");
        let mut walk = SweepWalk::new(&targets, 7, Shard::new(3, 1000).unwrap(), 0);
        assert_eq!(walk.shard_len(), u128::MAX / 1000 + 1);
        let first: Vec<_> = walk.by_ref().take(3).map(|(p, _)| p).collect();
        assert_eq!(first, [0, 1, 2]);
    }

    #[test]
    fn random_access_agrees_with_iteration() {
        let targets = set(
            &["10.0.0.0/29", "h.example", "10.0.1-2.1-3", "[2001:db8::/126]:udp/4433"],
            "443,U:7",
        );
        let indexed = IndexedSet::new(&targets);
        let sequential: Vec<Endpoint> = targets.iter().collect();
        let random: Vec<Endpoint> = (0..indexed.len())
            .map(|i| indexed.endpoint_at(i).unwrap())
            .collect();
        assert_eq!(random, sequential);
        assert_eq!(indexed.endpoint_at(indexed.len()), None);
    }

    #[test]
    fn shards_parse_as_k_of_n() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    /// Consecutive positions of a /16 walk rarely stay in one /24 (about 1 in 256 by chance).
    #[test]
    fn consecutive_positions_spread_over_subnets() {
        let targets = set(&["10.0.0.0/16"], "443");
        let walk: Vec<Endpoint> = SweepWalk::new(&targets, 42, Shard::WHOLE, 0)
            .map(|(_, e)| e)
            .collect();
        assert_eq!(walk.len(), 65536);
        let subnet = |e: &Endpoint| match e.host {
            HostRef::Ip(std::net::IpAddr::V4(v4)) => u32::from(v4) >> 8,
            _ => panic!("v4"),
        };
        let same = walk
            .windows(2)
            .filter(|pair| subnet(&pair[0]) == subnet(&pair[1]))
            .count();
        assert!(same < 65536 / 100, "{same} consecutive pairs in one /24");
        // No window of 256 consecutive probes puts more than 8 on one /24.
        for window in walk.windows(256).step_by(97) {
            let mut counts = std::collections::HashMap::new();
            for e in window {
                *counts.entry(subnet(e)).or_insert(0) += 1;
            }
            assert!(counts.values().all(|c| *c <= 8), "{counts:?}");
        }
    }

    fn spec_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u8..4, 0u8..8).prop_map(|(b, c)| format!("10.0.{b}.{c}")),
            (0u8..4, 26u8..=32).prop_map(|(b, p)| format!("10.0.{b}.0/{p}")),
            (0u8..4, 1u8..20, 0u8..10).prop_map(|(b, f, n)| format!("10.0.{b}.{f}-{}", f + n)),
            (1u8..3, 1u8..5).prop_map(|(b, c)| format!("10.1.1-{b}.1-{c}")),
            (0u8..3).prop_map(|n| format!("h{n}.example")),
            (0u8..3).prop_map(|n| format!("[2001:db8::{n}]:udp/4433")),
            (0u8..3).prop_map(|n| format!("10.2.0.{n}:tcp/8443,udp/53")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The shards of any N are disjoint and together yield every non-excluded endpoint of
        /// the set exactly once (multiset equality with sequential iteration).
        #[test]
        fn shards_are_disjoint_and_complete(
            specs in prop::collection::vec(spec_strategy(), 1..5),
            ports in prop_oneof![Just("443"), Just("443,8443"), Just("1-3,U:4433")],
            exclusions in prop::collection::vec(
                prop_oneof![
                    (0u8..4, 0u8..40).prop_map(|(b, c)| format!("10.0.{b}.{c}")),
                    (0u8..4).prop_map(|b| format!("10.0.{b}.8/29")),
                    Just("h1.example".to_owned()),
                    Just("*.*.*.2".to_owned()),
                ],
                0..3,
            ),
            count in 1u64..9,
            seed in any::<u64>(),
        ) {
            let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
            let targets = set(&specs, ports)
                .with_exclusions(parse_exclusions(exclusions.iter().map(String::as_str)).unwrap());
            let mut expected: Vec<String> = targets.iter().map(|e| e.to_string()).collect();
            let mut walk_positions = HashSet::new();
            let mut union = Vec::new();
            for index in 0..count {
                let shard = Shard::new(index, count).unwrap();
                for (local, endpoint) in SweepWalk::new(&targets, seed, shard, 0) {
                    prop_assert!(walk_positions.insert(shard.walk_position(local).unwrap()));
                    union.push(endpoint.to_string());
                }
            }
            expected.sort();
            union.sort();
            prop_assert_eq!(union, expected);
        }

        /// A shard resumed at position X yields exactly what the shard yields from X on.
        #[test]
        fn a_resumed_shard_continues_where_it_stopped(
            len in 1u16..600,
            count in 1u64..5,
            stop in 0u16..700,
            seed in any::<u64>(),
        ) {
            let targets = set(&[&format!("10.0.0.0-10.0.{}.{}", (len - 1) / 256, (len - 1) % 256)], "443");
            let shard = Shard::new(count - 1, count).unwrap();
            let whole: Vec<_> = SweepWalk::new(&targets, seed, shard, 0).collect();
            let stop = u128::from(stop);
            let resumed: Vec<_> = SweepWalk::new(&targets, seed, shard, stop).collect();
            let tail: Vec<_> = whole.into_iter().filter(|(p, _)| *p >= stop).collect();
            prop_assert_eq!(resumed, tail);
        }
    }
}
