#!/usr/bin/env bash
# Sweep benchmark (not a timed test; see bench/README.md "sweep"):
#  1. one port over a /16 and the whole 127.0.0.0/8 (almost every address refuses): wall time,
#     endpoints per second and peak RSS (/usr/bin/time -v), sequential and in the seeded order;
#  2. a minimal C connect-and-close loop over the same /8 in the same run: the kernel's limit;
#  3. shards N = 1, 2, 4: shard 0/N alone of the /16 (no rate: the work of one shard), and all N
#     shards side by side over the lab farm (12 lab servers and 52 refusing addresses, two ports,
#     128 endpoints) at --rate 16 each: the wall time of a sweep against the single process.
# Writes bench/sweep/results-<UTC time>.md. Settings: SKIP_SLASH8=1 leaves out the /8 runs (minutes),
# SKIP_SLASH12=1 the bleedwatch /12 run.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/sweep
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$here/results-$stamp.md"
work=$(mktemp -d)
labs=()
cleanup() { for pid in "${labs[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release --locked -p bleedwatch --bin bleedwatch
bin=target/release/bleedwatch
gcc -O2 -o "$work/connect_loop" "$here/connect_loop.c"

# measure NAME CMD...: wall seconds, endpoints/s (given the count in $count), peak RSS in MB.
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" || true
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$work/time.txt")
  printf '| %s | %s | %.1f | %.0f | %s |\n' "$name" "$count" "$wall" "$(echo "$count / $wall" | bc -l)" "$rss" | tee -a "$out"
}

{
  echo "# Sweep benchmark, $stamp"
  echo
  echo "$(nproc) cores, $(uname -r); bleedwatch $(git rev-parse --short HEAD); other builds may share the machine."
  echo
  echo "## One port, almost every address refusing (scan --no-db -q -p 9)"
  echo
  echo "| run | endpoints | wall s | endpoints/s | peak RSS MB |"
  echo "|---|---|---|---|---|"
} > "$out"

count=65536
measure "/16 sequential" "$bin" scan --no-db -q 127.16.0.0/16 -p 9
measure "/16 --seed 1" "$bin" scan --no-db -q 127.16.0.0/16 -p 9 --seed 1
if [ -z "${SKIP_SLASH12:-}" ]; then
  count=1048576
  measure "/12 --seed 1" "$bin" scan --no-db -q 127.16.0.0/12 -p 9 --seed 1
fi
read -r _ loop_s loop_rate < <("$work/connect_loop" 127.16.0.0 20 9 256)
printf '| /12 C connect-and-close loop (256 at a time) | 1048576 | %.1f | %.0f | - |\n' "$loop_s" "$loop_rate" | tee -a "$out"
if [ -z "${SKIP_SLASH8:-}" ]; then
  count=16777216
  measure "/8 --seed 1" "$bin" scan --no-db -q 127.0.0.0/8 -p 9 --seed 1
  read -r _ loop_s loop_rate < <("$work/connect_loop" 127.0.0.0 24 9 256)
  printf '| /8 C connect-and-close loop (256 at a time) | %s | %.1f | %.0f | - |\n' "$count" "$loop_s" "$loop_rate" | tee -a "$out"
fi

{
  echo
  echo "## Shard 0/N alone of the /16 (-p 9, no rate)"
  echo
  echo "| run | endpoints | wall s | endpoints/s | peak RSS MB |"
  echo "|---|---|---|---|---|"
} >> "$out"
for n in 1 2 4; do
  count=$((65536 / n))
  measure "shard 0/$n" "$bin" scan --no-db -q 127.16.0.0/16 -p 9 --seed 1 --shard "0/$n"
done

# --- shards of the farm ---
prefix=127.201.7
ports="19443,19444"
i=0
for behaviour in vulnerable fixed no-heartbeat; do
  args=()
  for host in $((1 + 4 * i)) $((2 + 4 * i)) $((3 + 4 * i)) $((4 + 4 * i)); do
    args+=(--listen "$prefix.$host:19443" --listen "$prefix.$host:19444")
  done
  "$bin" lab --behaviour "$behaviour" "${args[@]}" 2>/dev/null &
  labs+=($!)
  i=$((i + 1))
done
sleep 1
farm=("$prefix.0/26" -p "$ports" --versions tls1.2 --starttls none -q --rate 16)
{
  echo
  echo "## Shards of the lab farm (128 endpoints, --rate 16 per worker, workers side by side)"
  echo
  echo "| shards | wall s of the slowest worker | endpoints per worker |"
  echo "|---|---|---|"
} >> "$out"
for n in 1 2 4; do
  start=$(date +%s.%N)
  pids=()
  for k in $(seq 0 $((n - 1))); do
    "$bin" scan --no-db "${farm[@]}" --seed 7 --shard "$k/$n" --json "$work/shard-$n-$k.jsonl" >/dev/null 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  end=$(date +%s.%N)
  lines=$(cat "$work"/shard-"$n"-*.jsonl | wc -l)
  printf '| %s | %.1f | %s |\n' "$n" "$(echo "$end - $start" | bc -l)" "$((lines / n))" | tee -a "$out"
done
echo "results: $out"
