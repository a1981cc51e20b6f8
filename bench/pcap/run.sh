#!/usr/bin/env bash
# pcap benchmark: bleedwatch's pcap engine against Suricata 7 (tls-events rules) on one large capture
# built from the shared real captures with 5-tuples varied (see bench/README.md, "pcap").
#
# Both tools run on the same file, one after the other, pinned to the same core, REPEAT times each;
# the best wall clock and the best CPU time (user + sys) of each are reported, so load from other
# processes on the machine skews both as little as possible.
#
# Settings (environment):
#   SIZE_MB=500          size of the generated capture     REPEAT=3        runs per tool
#   WORK=/tmp/bleedwatch-bench-pcap  work directory (capture, tool outputs)
#   CAPTURE=$WORK/bench.pcap         an existing capture to use instead (kept as is)
#   CPU=0                core both tools are pinned to (taskset)
#   SKIP_SURICATA=0      1: bleedwatch only                SKIP_INSTALL=0  1: never call apt-get
#   SKIP_BUILD=0         1: use the existing release build
#   SURICATA_RUNMODE=single  Suricata's runmode (single: one packet thread, the one-core comparison;
#                        autofp: Suricata's default, several threads)
#   BW_CMD               command for bleedwatch (default: the scan_pcap example; once the CLI has
#                        the subcommand: "target/release/bleedwatch pcap --quiet")
# Output: bench/pcap/results-<UTC date>.md and a table on standard output.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZE_MB=${SIZE_MB:-500}
REPEAT=${REPEAT:-3}
WORK=${WORK:-/tmp/bleedwatch-bench-pcap}
CAPTURE=${CAPTURE:-$WORK/bench.pcap}
CPU=${CPU:-0}
SKIP_SURICATA=${SKIP_SURICATA:-0}
SKIP_INSTALL=${SKIP_INSTALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
SURICATA_RUNMODE=${SURICATA_RUNMODE:-single}
RULES=/etc/suricata/rules/tls-events.rules
mkdir -p "$WORK"

if [ "$SKIP_BUILD" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p bleedwatch-pcap --example scan_pcap)
fi
BW_CMD=${BW_CMD:-$ROOT/target/release/examples/scan_pcap --quiet}

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

# measure NAME CMD...: runs CMD REPEAT times; sets BEST_WALL and BEST_CPU (seconds).
measure() {
    local name=$1; shift
    BEST_WALL=""; BEST_CPU=""
    for i in $(seq "$REPEAT"); do
        # Suricata appends to its logs: start each run with an empty log directory.
        if [ "$name" = suricata ]; then rm -rf "$WORK/suricata"; mkdir -p "$WORK/suricata"; fi
        /usr/bin/time -f "%e %U %S %M" -o "$WORK/$name.time" taskset -c "$CPU" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
        read -r wall user sys rss <"$WORK/$name.time"
        cpu=$(echo "$user + $sys" | bc -l)
        if [ -z "$BEST_WALL" ] || (( $(echo "$wall < $BEST_WALL" | bc -l) )); then BEST_WALL=$wall; fi
        if [ -z "$BEST_CPU" ] || (( $(echo "$cpu < $BEST_CPU" | bc -l) )); then BEST_CPU=$cpu; fi
        echo "  $name run $i: wall ${wall}s, cpu ${cpu}s, max RSS ${rss} KB" >&2
    done
    RSS_KB=$rss
}

echo "capture: $CAPTURE ($BYTES bytes)" >&2
# shellcheck disable=SC2086
measure bleedwatch $BW_CMD "$CAPTURE"
BW_WALL=$BEST_WALL; BW_CPU=$BEST_CPU; BW_RSS=$RSS_KB
PACKETS=$(grep -o '[0-9]* packets' "$WORK/bleedwatch.err" | head -1 | cut -d' ' -f1)
BW_FINDINGS=$(grep -o '[0-9]* findings' "$WORK/bleedwatch.err" | head -1 | cut -d' ' -f1)
[ -n "$PACKETS" ] || PACKETS=$(tshark -r "$CAPTURE" -T fields -e frame.number 2>/dev/null | tail -1)
# Attack findings (not info) from a JSON run, for the comparison of what each tool reports.
$ROOT/target/release/examples/scan_pcap "$CAPTURE" 2>/dev/null \
    | python3 -c 'import sys,json,collections; c=collections.Counter((json.loads(l)["kind"]) for l in sys.stdin if "\"info\"" not in l); print("; ".join(f"{k} {v}" for k,v in sorted(c.items())))' >"$WORK/bleedwatch.kinds" || true

SURI_LINE="not run"
if [ "$SKIP_SURICATA" != 1 ] && install_suricata; then
    measure suricata suricata -r "$CAPTURE" -k none --runmode "$SURICATA_RUNMODE" -S "$RULES" -l "$WORK/suricata" -c /etc/suricata/suricata.yaml
    SURI_WALL=$BEST_WALL; SURI_CPU=$BEST_CPU; SURI_RSS=$RSS_KB
    SURI_VERSION=$(suricata -V | grep -o '[0-9][0-9.]*' | head -1)
    SURI_ALERTS=$(sed -E 's/.*\] (SURICATA [^[]*) \[.*/\1/' "$WORK/suricata/fast.log" | sort | uniq -c | sed -E 's/^ +//' | paste -sd ';' -)
else
    echo "Suricata could not be installed or was skipped; comparing with tshark's heartbeat dissection instead" >&2
    measure tshark tshark -r "$CAPTURE" -Y tls.heartbeat_message -T fields -e frame.number
    SURI_WALL=$BEST_WALL; SURI_CPU=$BEST_CPU; SURI_RSS=$RSS_KB; SURI_VERSION="tshark $(tshark -v | head -1 | grep -o '[0-9][0-9.]*' | head -1)"
    SURI_ALERTS="$(wc -l <"$WORK/tshark.out") heartbeat frames"
fi

rate() { echo "scale=1; $1 / $2" | bc -l; }
MB=$(echo "scale=1; $BYTES / 1000000" | bc -l)
REPORT="$HERE/results-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "# pcap benchmark $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Capture: $MB MB, $PACKETS packets ($(basename "$CAPTURE"), built by make_capture.py). Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'). Both tools pinned to core $CPU; best of $REPEAT runs."
    echo
    echo "| tool | wall s | CPU s | MB/s (wall) | MB/s (CPU) | packets/s (CPU) | max RSS MB | reports |"
    echo "|---|---|---|---|---|---|---|---|"
    echo "| bleedwatch pcap | $BW_WALL | $BW_CPU | $(rate "$MB" "$BW_WALL") | $(rate "$MB" "$BW_CPU") | $(rate "$PACKETS" "$BW_CPU") | $((BW_RSS / 1024)) | $BW_FINDINGS findings ($(cat "$WORK/bleedwatch.kinds")) |"
    if [ "$SURI_LINE" = "not run" ] && [ -n "${SURI_VERSION:-}" ]; then
        echo "| ${SURI_VERSION/#[0-9]/suricata &} (-k none, --runmode $SURICATA_RUNMODE, tls-events.rules) | $SURI_WALL | $SURI_CPU | $(rate "$MB" "$SURI_WALL") | $(rate "$MB" "$SURI_CPU") | $(rate "$PACKETS" "$SURI_CPU") | $((SURI_RSS / 1024)) | $SURI_ALERTS |"
    fi
    echo
    echo "Ratio (bleedwatch / other): wall $(rate "$SURI_WALL" "$BW_WALL")x, CPU $(rate "$SURI_CPU" "$BW_CPU")x."
} | tee "$REPORT"
echo "written: $REPORT" >&2
