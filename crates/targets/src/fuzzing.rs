//! Fuzzing entry point (`fuzz/fuzz_targets/targets_lists.rs`): target and exclusion lists, port
//! lists, and the lazy iteration over what they make.

use crate::{parse_exclusion_list, parse_target_list_all, parse_target_list_with, PortList, TargetSet, Transport};

/// The line that separates the target list from the exclusion list in a fuzz input.
pub const EXCLUDE_SEPARATOR: &str = "\n--exclude\n";

/// Endpoints taken from the start of a set, and the index jumped to, per input: enough to walk
/// exclusions and port lists without making a run's time depend on a block's size.
const TAKE: usize = 64;
const JUMP: usize = 4096;

/// `data`, as text: a port list on the first line (`443,8443`, `T:443,U:4433`), then a target list
/// (`-iL` syntax), then optionally [`EXCLUDE_SEPARATOR`] and an exclusion list. Parses each as
/// `scan` does, builds the target set and walks the start of it.
pub fn lists(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (ports, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let (targets, exclusions) = rest.split_once(EXCLUDE_SEPARATOR).unwrap_or((rest, ""));
    let ports = PortList::parse_with_default(ports, Transport::Tcp).or_else(|_| PortList::single(443, Transport::Tcp));
    let _ = parse_target_list_with(targets, "fuzz", Transport::Udp);
    let parsed = parse_target_list_all(targets, "fuzz");
    let exclusions = parse_exclusion_list(exclusions, "fuzz").unwrap_or_default();
    let Ok(ports) = ports else { return };
    let set = TargetSet::from_specs(parsed.specs, ports).with_exclusions(exclusions);
    let _ = set.len_hint();
    for endpoint in set.iter().take(TAKE) {
        let _ = endpoint.to_string();
    }
    let _ = set.iter().nth(JUMP);
}
