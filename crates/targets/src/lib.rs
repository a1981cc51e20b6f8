//! The target and port language of `bleedwatch scan`, parsed and iterated lazily.
//!
//! Pure library: no sockets, no DNS. Host names are handed back as names for the caller to
//! resolve. A spec costs O(1) memory whatever its size: a `/8` (16,777,216 addresses) or an IPv6
//! `/64` is never expanded, and iteration yields one endpoint at a time.
//!
//! # Targets
//!
//! | form | example |
//! | --- | --- |
//! | host name | `example.com` (letters, digits, `-`, `_`; IDN names in `xn--` form) |
//! | IPv4 / IPv6 address | `192.0.2.1`, `2001:db8::1` |
//! | CIDR block | `10.0.0.0/24`, `2001:db8::/120` (host bits are cleared: `10.1.2.3/8` = `10.0.0.0/8`) |
//! | range | `10.0.0.1-10.0.0.50`, `2001:db8::1-2001:db8::ff`, `2001:db8::1-ff` (last group) |
//! | last-octet range | `10.0.0.1-50` |
//! | nmap octet pattern | `10.0.1-3.1-254`, `192.168.3-5,7.1`, `10.0.*.1` (`*` = `0-255`) |
//! | with ports | `host:443`, `1.2.3.4:8443`, `10.0.0.0/24:443`, `[2001:db8::1]:8443`, `host:443,8443` |
//! | UDP (DTLS) port | `host:udp/4433`, `host:U:4433`, `[::1]:udp/4433` |
//!
//! A port suffix replaces the global port list for that target. The `_with` parsers
//! ([`parse_targets_with`], [`read_target_file_with`]) take the transport of ports that do not
//! say theirs (`scan -u`: `127.0.0.1:4433` is UDP, `127.0.0.1:tcp/443` stays TCP). IPv6 addresses take a port only
//! inside brackets (`[2001:db8::1]:443`); the brackets may also hold an IPv6 CIDR or range.
//! Octet numbers with leading zeros (`010`) are rejected as ambiguous.
//!
//! # Ports
//!
//! Comma-separated items: `443`, `443,8443`, `1-1024`, `tcp/443`, `udp/4433`, and nmap's
//! `T:443,U:4433` where `T:`/`U:` applies to every following item until the next prefix.
//! Ports are 1-65535; without a prefix they are TCP. Lists are normalised: duplicates merge,
//! TCP ports come first, then UDP, each ascending.
//!
//! # Lists and exclusions
//!
//! On the command line and in files (`-iL FILE`), specs are separated by whitespace or commas.
//! A comma stays inside a spec where it must: in an octet list (`10.0.0.1,5,9`) and in a port
//! list after a port suffix (`host:443,8443`). In files, `#` starts a comment and blank lines
//! are ignored; errors read `targets.txt line 7: invalid target "...": ...`.
//! [`parse_target_list`] stops at the first bad spec, [`parse_target_list_all`] collects all.
//!
//! Exclusions (`--exclude`, `--exclude-file`) use the target syntax without ports. Excluded
//! addresses are skipped during iteration without ever expanding the exclusion set; an excluded
//! name skips a name target written the same way (case-insensitive). IPv4 exclusions also cover
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`).
//!
//! # Iteration order
//!
//! For each spec in the order given, for each of its hosts in ascending address order (octet
//! patterns: last octet fastest), for each port in port-list order. Duplicates across specs are
//! not removed (that would need memory proportional to the targets). [`TargetSet::len_hint`]
//! counts (host, port) pairs before exclusions.
//!
//! # Sweep order and shards
//!
//! [`SweepWalk`] visits the same endpoints in a pseudo-random order drawn from a seed (a keyed
//! bijection of `[0, len_hint)`, see the `order` module), one shard `K/N` at a time: shard K
//! takes walk positions K, K+N, K+2N…, so the shards are disjoint and cover everything once.
//!
//! ```
//! use bleedwatch_targets::{parse_exclusions, parse_targets, PortList, TargetSet};
//!
//! let specs = parse_targets(["10.0.0.0/30", "example.com:udp/4433"])?;
//! let targets = TargetSet::from_specs(specs, PortList::parse("443,8443")?)
//!     .with_exclusions(parse_exclusions(["10.0.0.1"])?);
//! assert_eq!(targets.len_hint(), 4 * 2 + 1);
//! let endpoints: Vec<String> = targets.iter().map(|e| e.to_string()).collect();
//! assert_eq!(endpoints[..3], ["10.0.0.0:443", "10.0.0.0:8443", "10.0.0.2:443"]);
//! assert_eq!(endpoints.last().map(String::as_str), Some("example.com:udp/4433"));
//! # Ok::<(), bleedwatch_targets::TargetError>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod exclude;
pub mod fuzzing;
mod hosts;
mod list;
mod order;
mod ports;
mod set;
mod spec;

pub use error::TargetError;
pub use exclude::{parse_exclusions, ExclusionSet};
pub use hosts::{HostRef, Hosts, OctetPattern};
pub use list::{
    parse_exclusion_list, parse_target_list, parse_target_list_all, parse_target_list_with,
    parse_targets, parse_targets_with, read_exclusion_file, read_target_file, read_target_file_all,
    read_target_file_with, ParsedList,
};
pub use order::{IndexedSet, Permutation, Shard, SweepWalk};
pub use ports::{PortList, PortRange, Ports, Transport};
pub use set::{Endpoint, Endpoints, TargetSet};
pub use spec::{split_specs, TargetSpec};
