#!/usr/bin/env bash
# bleedwatch audit against `grep -rlaF 'OpenSSL 1.0.1'` on the same >= 2 GB tree, from the page cache.
# The tree is hard links into /usr/lib (no disk used) plus the real OpenSSL builds of
# ../shared/data/openssl and tar.gz archives around them; it is deleted at the end.
# Settings: TREE (default /tmp/bleedwatch-audit-bench), RUNS (default 3, median reported).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TREE=${TREE:-/tmp/bleedwatch-audit-bench}
RUNS=${RUNS:-3}
SHARED=$ROOT/../shared/data/openssl
OUT=$ROOT/bench/audit/results-$(date -u +%Y%m%dT%H%M%SZ).md
trap 'rm -rf "$TREE"' EXIT

cargo build --release -p bleedwatch >/dev/null
BIN=$ROOT/target/release/bleedwatch

rm -rf "$TREE"; mkdir -p "$TREE/usr-lib" "$TREE/appliance" "$TREE/archives"
for d in x86_64-linux-gnu llvm-14 chromium go-1.19 jvm gcc python3.11; do
  [ -d "/usr/lib/$d" ] && cp -al "/usr/lib/$d" "$TREE/usr-lib/$d"
done
for i in 1 2 3 4; do cp -r "$SHARED/appliance" "$TREE/appliance/copy$i"; cp -r "$SHARED/lib" "$TREE/appliance/lib$i"; done
tar -C "$SHARED" -czf "$TREE/archives/openssl-builds.tar.gz" bin lib appliance
tar -C /usr/lib -czf "$TREE/archives/python3.11.tar.gz" python3.11
BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
FILES=$(find "$TREE" -type f | wc -l)
GB=$(awk -v b="$BYTES" 'BEGIN {printf "%.2f", b/1e9}')
echo "tree: $FILES files, $GB GB"

# Warm the page cache (twice: the second read shows it fits).
find "$TREE" -type f -print0 | xargs -0 cat >/dev/null; find "$TREE" -type f -print0 | xargs -0 cat >/dev/null

# time -v of one run: wall seconds and peak RSS (KiB).
measure() {
  /usr/bin/time -v "$@" >/tmp/bench-audit-out.$$ 2>/tmp/bench-audit-time.$$ || true
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for (i=1;i<=n;i++) s=s*60+a[i]; print s}' /tmp/bench-audit-time.$$)
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' /tmp/bench-audit-time.$$)
  echo "$wall $rss"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# audit on one core (taskset: it then starts one thread), audit on every core (its default: one
# thread per core), grep (one thread whatever it is given).
CORES=$(nproc)
declare -a AW AR PW PR GW GR
for i in $(seq "$RUNS"); do
  read -r w r < <(measure taskset -c 0 "$BIN" audit "$TREE" --no-db --json /tmp/bench-audit-findings.$$.jsonl -q); AW+=("$w"); AR+=("$r")
  read -r w r < <(measure "$BIN" audit "$TREE" --no-db --json /tmp/bench-audit-parallel.$$.jsonl -q); PW+=("$w"); PR+=("$r")
  read -r w r < <(measure taskset -c 0 grep -rlaF 'OpenSSL 1.0.1' "$TREE"); GW+=("$w"); GR+=("$r")
done
# Both audits must say the same.
cmp /tmp/bench-audit-findings.$$.jsonl /tmp/bench-audit-parallel.$$.jsonl
cp /tmp/bench-audit-out.$$ /tmp/bench-audit-grep.$$
aw=$(printf '%s\n' "${AW[@]}" | median); ar=$(printf '%s\n' "${AR[@]}" | median)
pw=$(printf '%s\n' "${PW[@]}" | median); pr=$(printf '%s\n' "${PR[@]}" | median)
gw=$(printf '%s\n' "${GW[@]}" | median); gr=$(printf '%s\n' "${GR[@]}" | median)
findings=$(wc -l </tmp/bench-audit-findings.$$.jsonl)
vulnerable=$(grep -c '"verdict":"vulnerable"' /tmp/bench-audit-findings.$$.jsonl || true)
grep_files=$(wc -l </tmp/bench-audit-grep.$$)
rate() { awk -v b="$BYTES" -v s="$1" 'BEGIN {printf "%.2f", b/1e9/s}'; }

# Memory flat as the tree grows: the same audit on a quarter of the tree.
read -r qw qr < <(measure taskset -c 0 "$BIN" audit "$TREE/usr-lib/x86_64-linux-gnu" --no-db -q)
# The same work on both sides: the tree without its archives and jars (nothing for audit to
# decompress), one core each.
read -r uw ur < <(measure taskset -c 0 "$BIN" audit "$TREE/usr-lib/x86_64-linux-gnu" "$TREE/usr-lib/llvm-14" "$TREE/usr-lib/chromium" "$TREE/usr-lib/go-1.19" --no-db -q)
read -r ugw ugr < <(measure taskset -c 0 grep -rlaF 'OpenSSL 1.0.1' "$TREE/usr-lib/x86_64-linux-gnu" "$TREE/usr-lib/llvm-14" "$TREE/usr-lib/chromium" "$TREE/usr-lib/go-1.19")

{
  echo "# audit benchmark $(date -u +%FT%TZ)"
  echo
  echo "Tree: $FILES files, $GB GB ($TREE: hard links into /usr/lib, the real OpenSSL builds copied 4 times, two tar.gz). Page cache warm, median of $RUNS runs. CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $CORES cores."
  echo
  echo "| tool | wall s | GB/s | peak RSS MiB | found |"
  echo "|---|---|---|---|---|"
  echo "| bleedwatch audit, one core (taskset -c 0) | $aw | $(rate "$aw") | $((ar / 1024)) | $findings OpenSSL copies ($vulnerable vulnerable), archives opened |"
  echo "| bleedwatch audit, $CORES cores (default --jobs) | $pw | $(rate "$pw") | $((pr / 1024)) | the same findings (compared) |"
  echo "| grep -rlaF 'OpenSSL 1.0.1' | $gw | $(rate "$gw") | $((gr / 1024)) | $grep_files files, no archives, no verdicts |"
  echo
  echo "Ratio grep/audit wall time: $(awk -v a="$pw" -v g="$gw" 'BEGIN {printf "%.2f", g/a}') with audit's default threads, $(awk -v a="$aw" -v g="$gw" 'BEGIN {printf "%.2f", g/a}') with audit on one core."
  echo "Without the archives and jars (nothing to decompress, the same bytes for both), one core each: audit $uw s, grep $ugw s, ratio $(awk -v a="$uw" -v g="$ugw" 'BEGIN {printf "%.2f", g/a}')."
  echo "Audit of x86_64-linux-gnu alone: $qw s, peak RSS $((qr / 1024)) MiB."
} | tee "$OUT"
rm -f /tmp/bench-audit-*.$$ /tmp/bench-audit-findings.$$.jsonl /tmp/bench-audit-parallel.$$.jsonl
