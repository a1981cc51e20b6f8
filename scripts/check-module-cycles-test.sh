#!/usr/bin/env bash
# Tests scripts/check-module-cycles.py on two tiny crates written here: one with a circle made of
# the three kinds of path (`use crate::{..}`, `crate::x::` in code, `super::`), one whose only
# back-references are in test code, comments, strings or tests/ (which must not count).
set -euo pipefail
checker="$(cd "$(dirname "$0")" && pwd)/check-module-cycles.py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/cycle/crates/c/src/b" "$work/clean/crates/c/src/tests"
cat >"$work/cycle/crates/c/src/lib.rs" <<'RS'
mod a;
mod b;
mod d;
mod leaf;
RS
echo 'use crate::{leaf, b::Thing};' >"$work/cycle/crates/c/src/a.rs"
echo 'pub mod inner;' >"$work/cycle/crates/c/src/b/mod.rs"
echo 'pub fn f() -> u8 { super::super::d::g() }' >"$work/cycle/crates/c/src/b/inner.rs"
echo 'pub fn g() -> u8 { crate::a::h() }' >"$work/cycle/crates/c/src/d.rs"
echo 'pub fn l() {}' >"$work/cycle/crates/c/src/leaf.rs"
# b/inner.rs reaches d through `super::super::` from inside b: count it for b.
if out="$(python3 "$checker" "$work/cycle" 2>/dev/null)"; then
    echo "FAIL: a circle a -> b -> d -> a was not reported" >&2
    exit 1
fi
grep -q '^crates/c: module cycle: a <-> b <-> d ' <<<"$out" || { echo "FAIL: unexpected report: $out" >&2; exit 1; }
grep -q 'leaf' <<<"$out" && { echo "FAIL: the leaf is not in the circle: $out" >&2; exit 1; }

cat >"$work/clean/crates/c/src/lib.rs" <<'RS'
mod a;
mod b;
RS
echo 'use crate::b::Thing;' >"$work/clean/crates/c/src/a.rs"
cat >"$work/clean/crates/c/src/b.rs" <<'RS'
// crate::a::not_a_use
/* use crate::a; */
pub const TEXT: &str = "crate::a::x";
pub const RAW: &str = r#"super::a"#;
#[cfg(test)]
mod tests {
    use crate::a::helper;
}
#[cfg(test)]
use crate::a::other;
RS
echo 'use crate::a::x;' >"$work/clean/crates/c/src/tests/mod.rs"
python3 "$checker" "$work/clean" || { echo "FAIL: test code, comments or strings counted as imports" >&2; exit 1; }
echo "check-module-cycles: ok"
