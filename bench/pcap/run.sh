#!/usr/bin/env bash
# pcap benchmark: `bleedwatch pcap` against Suricata 7 (tls-events rules) on one large capture built
# from the shared real captures with 5-tuples varied (see bench/README.md, "pcap").
#
# All tools run on the same file, pinned to the same core, REPEAT rounds; each round runs every tool
# in turn, so that slow phases of a shared machine hit all of them alike. Within a round each tool
# runs twice and the second run is timed: a run right after another tool pays for that tool's
# aftermath (right after a Suricata run, bleedwatch's kernel time rose from ~0.08 s to 0.11-0.17 s
# here, most of it zeroing fresh memory), so every timed run follows a run of the same tool. The
# best and the median wall clock and CPU time (user + sys, 10 ms resolution) of each are reported.
#
# Suricata is run in two ways: with its shipped configuration (eve.json on: alerts plus flow, TLS,
# anomaly and stats records for every connection) and with alerts only (eve.json off, fast.log on),
# which is the output bleedwatch itself produces. Both use -k none (no checksum validation, as
# bleedwatch) and one packet thread (--runmode single), and load only tls-events.rules.
#
# Settings (environment):
#   SIZE_MB=500          size of the generated capture     REPEAT=5        rounds
#   WORK=/tmp/bleedwatch-bench-pcap  work directory (capture, tool outputs)
#   CAPTURE=$WORK/bench.pcap         an existing capture to use instead (kept as is)
#   CPU=0                core every tool is pinned to (taskset)
#   SKIP_SURICATA=0      1: bleedwatch only                SKIP_INSTALL=0  1: never call apt-get
#   SKIP_BUILD=0         1: use the existing release build
#   SURICATA_RUNMODE=single  Suricata's runmode (single: one packet thread, the one-core comparison;
#                        autofp: Suricata's default, several threads)
#   BW_CMD               command for bleedwatch (default: "target/release/bleedwatch pcap --quiet",
#                        the subcommand as users run it, findings counted into the summary but not
#                        printed)
# Output: bench/pcap/results-<UTC date>.md and a table on standard output.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZE_MB=${SIZE_MB:-500}
REPEAT=${REPEAT:-5}
WORK=${WORK:-/tmp/bleedwatch-bench-pcap}
CAPTURE=${CAPTURE:-$WORK/bench.pcap}
CPU=${CPU:-0}
SKIP_SURICATA=${SKIP_SURICATA:-0}
SKIP_INSTALL=${SKIP_INSTALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
SURICATA_RUNMODE=${SURICATA_RUNMODE:-single}
RULES=/etc/suricata/rules/tls-events.rules
BW=$ROOT/target/release/bleedwatch
mkdir -p "$WORK"

if [ "$SKIP_BUILD" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p bleedwatch)
fi
BW_CMD=${BW_CMD:-$BW pcap --quiet}

if [ ! -s "$CAPTURE" ]; then
    python3 "$HERE/make_capture.py" --out "$CAPTURE" --size-mb "$SIZE_MB"
fi
BYTES=$(stat -c %s "$CAPTURE")

install_suricata() {
    command -v suricata >/dev/null && return 0
    [ "$SKIP_INSTALL" = 1 ] && return 1
    if ! apt-cache policy suricata 2>/dev/null | grep -q 'Candidate: 1:7'; then
        # Suricata 7 is in bookworm-backports.
        echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list
        apt-get update -qq || return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports suricata >/dev/null || return 1
}

# run_once NAME CMD...: one untimed warm-up run, then one timed run, pinned; keeps the best wall
# and CPU time per NAME, and every time in ALL_WALL and ALL_CPU.
declare -A BEST_WALL BEST_CPU RSS_KB ALL_WALL ALL_CPU
run_once() {
    local name=$1; shift
    # Suricata appends to its logs: start each run with an empty log directory.
    case $name in suricata*) rm -rf "${WORK:?}/$name"; mkdir -p "$WORK/$name" ;; esac
    taskset -c "$CPU" "$@" >/dev/null 2>&1 || true
    case $name in suricata*) rm -rf "${WORK:?}/$name"; mkdir -p "$WORK/$name" ;; esac
    # Start every timed run on a quiet system: Suricata's shipped config writes ~100 MB of logs, and
    # the kernel writing them back during the run would be charged to it.
    sync
    local status=0
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/$name.time" taskset -c "$CPU" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || status=$?
    # bleedwatch exits 1 when it finds an attack (this capture is full of them); 2 and above fail.
    if [ "$status" -gt 1 ]; then
        echo "$name failed (exit $status):" >&2
        tail -5 "$WORK/$name.err" >&2
        exit 1
    fi
    local wall user sys rss cpu
    read -r wall user sys rss < <(grep -v '^Command exited' "$WORK/$name.time")
    cpu=$(echo "$user + $sys" | bc -l)
    if [ -z "${BEST_WALL[$name]:-}" ] || (( $(echo "$wall < ${BEST_WALL[$name]}" | bc -l) )); then BEST_WALL[$name]=$wall; fi
    if [ -z "${BEST_CPU[$name]:-}" ] || (( $(echo "$cpu < ${BEST_CPU[$name]}" | bc -l) )); then BEST_CPU[$name]=$cpu; fi
    RSS_KB[$name]=$rss
    ALL_WALL[$name]="${ALL_WALL[$name]:-} $wall"
    ALL_CPU[$name]="${ALL_CPU[$name]:-} $cpu"
    echo "  $name: wall ${wall}s, cpu ${cpu}s (user $user + sys $sys), max RSS ${rss} KB" >&2
}

SURICATA=0
if [ "$SKIP_SURICATA" != 1 ]; then
    if install_suricata; then
        SURICATA=1
    else
        echo "Suricata could not be installed; comparing with tshark's heartbeat dissection instead" >&2
    fi
fi
SURI_ARGS=(-r "$CAPTURE" -k none --runmode "$SURICATA_RUNMODE" -S "$RULES" -c /etc/suricata/suricata.yaml)

echo "capture: $CAPTURE ($BYTES bytes)" >&2
for round in $(seq "$REPEAT"); do
    echo "round $round/$REPEAT" >&2
    # shellcheck disable=SC2086
    run_once bleedwatch $BW_CMD "$CAPTURE"
    if [ "$SURICATA" = 1 ]; then
        run_once suricata suricata "${SURI_ARGS[@]}" -l "$WORK/suricata"
        run_once suricata-alerts suricata "${SURI_ARGS[@]}" -l "$WORK/suricata-alerts" --set outputs.1.eve-log.enabled=no
    elif [ "$SKIP_SURICATA" != 1 ]; then
        run_once tshark tshark -r "$CAPTURE" -Y tls.heartbeat_message -T fields -e frame.number
    fi
done

# What each tool reported (outside the timed runs).
SUMMARY_LINE=$("$BW" pcap "$CAPTURE" 2>/dev/null | head -1 || true)
PACKETS=$(echo "$SUMMARY_LINE" | grep -o '[0-9]* packets' | cut -d' ' -f1)
[ -n "$PACKETS" ] || PACKETS=$(tshark -r "$CAPTURE" -T fields -e frame.number 2>/dev/null | tail -1)
"$BW" pcap --json "$WORK/bleedwatch.jsonl" --quiet "$CAPTURE" || true
BW_FINDINGS=$(wc -l <"$WORK/bleedwatch.jsonl")
BW_KINDS=$(python3 -c 'import sys,json,collections; c=collections.Counter(json.loads(l)["kind"] for l in open(sys.argv[1]) if json.loads(l)["severity"] != "info"); print("; ".join(f"{k} {v}" for k,v in sorted(c.items())))' "$WORK/bleedwatch.jsonl")

rate() { echo "scale=1; $1 / $2" | bc -l; }
median() { echo "$1" | tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.3f", m}'; }
MB=$(echo "scale=1; $BYTES / 1000000" | bc -l)
row() { # row NAME LABEL REPORTS
    local mw mc
    mw=$(median "${ALL_WALL[$1]}"); mc=$(median "${ALL_CPU[$1]}")
    echo "| $2 | ${BEST_WALL[$1]} ($mw) | ${BEST_CPU[$1]} ($mc) | $(rate "$MB" "$mw") | $(rate "$MB" "$mc") | $(rate "$PACKETS" "$mc") | $((${RSS_KB[$1]} / 1024)) | $3 |"
}
ratio() {
    echo "best CPU $(rate "${BEST_CPU[$1]}" "${BEST_CPU[bleedwatch]}")x, median CPU $(rate "$(median "${ALL_CPU[$1]}")" "$(median "${ALL_CPU[bleedwatch]}")")x, best wall $(rate "${BEST_WALL[$1]}" "${BEST_WALL[bleedwatch]}")x, median wall $(rate "$(median "${ALL_WALL[$1]}")" "$(median "${ALL_WALL[bleedwatch]}")")x"
}
suricata_alerts() { sed -E 's/.*\] (SURICATA [^[]*) \[.*/\1/' "$1" | sort | uniq -c | sed -E 's/^ +//' | paste -sd ';' -; }

REPORT="$HERE/results-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "# pcap benchmark $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Capture: $MB MB, $PACKETS packets ($(basename "$CAPTURE"), built by make_capture.py). Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg). bleedwatch at $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet -- crates/pcap || echo ' + working tree') (\`$BW_CMD\`). Every tool pinned to core $CPU; best of $REPEAT interleaved rounds."
    echo
    echo "CPU times of each timed run (s): $(for n in bleedwatch suricata suricata-alerts tshark; do [ -n "${ALL_CPU[$n]:-}" ] && printf '%s:%s; ' "$n" "${ALL_CPU[$n]}"; done)"
    echo
    echo "| tool | wall s, best (median) | CPU s, best (median) | MB/s (median wall) | MB/s (median CPU) | packets/s (median CPU) | max RSS MB | reports |"
    echo "|---|---|---|---|---|---|---|---|"
    row bleedwatch "bleedwatch pcap" "$BW_FINDINGS findings (attempts: $BW_KINDS)"
    if [ "$SURICATA" = 1 ]; then
        V=$(suricata -V | grep -o '[0-9][0-9.]*' | head -1)
        row suricata "suricata $V, shipped config: eve.json + fast.log (-k none, --runmode $SURICATA_RUNMODE, tls-events.rules)" "$(suricata_alerts "$WORK/suricata/fast.log")"
        row suricata-alerts "suricata $V, alerts only: fast.log, eve.json off (same otherwise)" "$(suricata_alerts "$WORK/suricata-alerts/fast.log")"
        echo
        echo "Ratio (other / bleedwatch): Suricata shipped config $(ratio suricata); Suricata alerts only $(ratio suricata-alerts)."
        if [ -e "$WORK/suricata-alerts/eve.json" ]; then echo; echo "WARNING: eve.json was written in the alerts-only runs: the --set path did not match this suricata.yaml."; fi
    elif [ "$SKIP_SURICATA" != 1 ]; then
        row tshark "tshark $(tshark -v | head -1 | grep -o '[0-9][0-9.]*' | head -1) -Y tls.heartbeat_message" "$(wc -l <"$WORK/tshark.out") heartbeat frames"
        echo
        echo "Ratio (other / bleedwatch): tshark $(ratio tshark)."
    fi
} | tee "$REPORT"
echo "written: $REPORT" >&2
