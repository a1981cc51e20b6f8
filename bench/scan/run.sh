#!/usr/bin/env bash
# Scanner benchmark: bleedwatch against nmap --script ssl-heartbleed, sslyze --heartbleed and
# testssl.sh -H, all on the same loopback targets in one run (see bench/README.md, "scan").
#
# One nginx (OpenSSL 3, no heartbeat support) listens on N addresses 127.1.X.Y:443 and one
# `bleedwatch lab --behaviour vulnerable` process on LAB_N addresses 127.2.0.Z:443, so the run has
# both verdicts. Target list = the lab endpoints, then the nginx ones; a "sample of K" is its first
# K lines, so every sample holds the vulnerable endpoints too. Everything stays on 127.0.0.0/8.
#
# Settings (environment):
#   N=1000            nginx endpoints            LAB_N=4           vulnerable lab endpoints
#   NMAP_N=all        sample for nmap            SSLYZE_N=all      sample for sslyze
#   TESTSSL_N=20      sample for testssl.sh      TESTSSL_JOBS=nproc  testssl.sh runs at once
#   REPEAT=5          bleedwatch runs per target set (the median wall clock is reported)
#   PEER_TIMEOUT=1800 seconds per peer run       BW_TIMEOUT=600    seconds per bleedwatch run
#   BW_ARGS="--no-db" extra `bleedwatch scan` flags (default: no inventory recording, as the peers keep
#                     none; concurrency 256)
#   NGINX_WORKERS=auto
#   NGINX_PROTOCOLS="TLSv1.2"  nginx ssl_protocols. With TLSv1.3 on, sslyze skips its heartbeat probe
#                     altogether (it calls any TLS 1.3 server safe), so the default keeps it off.
#   PROFILE=1         also run strace -c -f and perf stat/record on bleedwatch (not timed)
#   SKIP_PEERS=0      1: bleedwatch only       SKIP_INSTALL=0    1: never call apt-get / pip
#   SKIP_BUILD=0      1: use the existing target/release/bleedwatch as is
#   SSLYZE_VERSION=6.3.1  SSLYZE_VENV=/tmp/bleedwatch-bench-venv
#   ONE_VERSION=1     also time bleedwatch --versions tls1.2 on all targets (one connection each)
#   KEEP=0            1: keep the work directory (raw outputs of every tool)
# Output: bench/scan/results-<UTC date>.json and .md, plus a table on standard output.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

N=${N:-1000}
LAB_N=${LAB_N:-4}
NMAP_N=${NMAP_N:-all}
SSLYZE_N=${SSLYZE_N:-all}
TESTSSL_N=${TESTSSL_N:-20}
TESTSSL_JOBS=${TESTSSL_JOBS:-$(nproc)}
REPEAT=${REPEAT:-5}
PEER_TIMEOUT=${PEER_TIMEOUT:-1800}
BW_TIMEOUT=${BW_TIMEOUT:-600}
BW_ARGS=${BW_ARGS:---no-db}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
NGINX_PROTOCOLS=${NGINX_PROTOCOLS:-TLSv1.2}
PROFILE=${PROFILE:-1}
SKIP_PEERS=${SKIP_PEERS:-0}
SKIP_INSTALL=${SKIP_INSTALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
SSLYZE_VERSION=${SSLYZE_VERSION:-6.3.1}
SSLYZE_VENV=${SSLYZE_VENV:-/tmp/bleedwatch-bench-venv}
KEEP=${KEEP:-0}
ONE_VERSION=${ONE_VERSION:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

log() { printf '[bench/scan %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

for v in N LAB_N TESTSSL_JOBS REPEAT PEER_TIMEOUT BW_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
(( N >= 1 && N <= 250 * 256 )) || die "N must be 1..64000"
(( LAB_N <= 250 )) || die "LAB_N must be at most 250"
(( REPEAT >= 1 )) || die "REPEAT must be at least 1"
(( TESTSSL_JOBS >= 1 )) || die "TESTSSL_JOBS must be at least 1"
TOTAL=$((N + LAB_N))
for v in NMAP_N SSLYZE_N TESTSSL_N; do
    [[ ${!v} == all ]] && printf -v "$v" '%s' "$TOTAL"
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number or 'all' (got '${!v}')"
done
clamp() { local k=$1; (( k > TOTAL )) && k=$TOTAL; echo "$k"; }
NMAP_N=$(clamp "$NMAP_N"); SSLYZE_N=$(clamp "$SSLYZE_N"); TESTSSL_N=$(clamp "$TESTSSL_N")

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing (Debian packages; sslyze from PyPI into a venv), nothing else.
# ---------------------------------------------------------------------------------------------
as_root() { if (( EUID == 0 )); then "$@"; else sudo "$@"; fi; }
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if (( ! SKIP_PEERS )); then
    command -v nmap >/dev/null || missing+=(nmap)
    command -v testssl >/dev/null || command -v testssl.sh >/dev/null || missing+=(testssl.sh)
fi
if (( PROFILE )); then
    command -v strace >/dev/null || missing+=(strace)
    command -v perf >/dev/null || missing+=(linux-perf)
fi
if (( ${#missing[@]} )); then
    (( SKIP_INSTALL )) && die "missing: ${missing[*]} (SKIP_INSTALL=1)"
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
TESTSSL=$(command -v testssl || command -v testssl.sh || true)
if (( ! SKIP_PEERS )) && ! "$SSLYZE_VENV/bin/sslyze" --help >/dev/null 2>&1; then
    (( SKIP_INSTALL )) && die "no sslyze in $SSLYZE_VENV (SKIP_INSTALL=1)"
    log "installing sslyze==$SSLYZE_VERSION into $SSLYZE_VENV"
    python3 -m venv "$SSLYZE_VENV"
    "$SSLYZE_VENV/bin/pip" install --quiet "sslyze==$SSLYZE_VERSION" >&2
fi
SSLYZE=$SSLYZE_VENV/bin/sslyze
if (( PROFILE )) && ! perf stat -e task-clock true >/dev/null 2>&1; then
    log "perf cannot count here; profiling uses strace only"
    PERF_OK=0
else
    PERF_OK=1
fi

# The scanner itself (the root binary only; other crates build as its dependencies).
if (( SKIP_BUILD )); then
    log "SKIP_BUILD=1: using the existing target/release/bleedwatch"
else
    log "building bleedwatch (release)"
    (cd "$ROOT" && cargo build --release -p bleedwatch >&2) || die "cargo build --release -p bleedwatch failed"
fi
BW=$ROOT/target/release/bleedwatch
[[ -x $BW ]] || die "no $BW after the build"

# ---------------------------------------------------------------------------------------------
# Servers: one nginx on N loopback addresses, one lab process on LAB_N. Both stopped on exit.
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/bleedwatch-bench-scan.XXXXXX)
NGINX_PID=""
LAB_PID=""
cleanup() {
    local rc=$?
    if [[ -n $NGINX_PID ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NGINX_PID" 2>/dev/null || true
    fi
    if [[ -n $LAB_PID ]] && kill -0 "$LAB_PID" 2>/dev/null; then
        kill -INT "$LAB_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$LAB_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$LAB_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if (( KEEP )); then log "raw outputs kept in $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every listener and every in-flight connection needs a descriptor.
want_fds=$(( 4 * TOTAL + 4096 ))
if (( $(ulimit -n) < want_fds )); then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
log "open files limit: $(ulimit -n)"

nginx_addr() { echo "127.1.$(( $1 / 250 )).$(( $1 % 250 + 1 ))"; }
lab_addr() { echo "127.2.0.$(( $1 + 1 ))"; }

: > "$WORK/targets.txt"
for ((j = 0; j < LAB_N; j++)); do lab_addr "$j" >> "$WORK/targets.txt"; done
for ((i = 0; i < N; i++)); do nginx_addr "$i" >> "$WORK/targets.txt"; done
sample() { # sample K NAME: first K targets as plain addresses and as address:443
    head -n "$1" "$WORK/targets.txt" > "$WORK/$2-ips.txt"
    sed 's/$/:443/' "$WORK/$2-ips.txt" > "$WORK/$2-endpoints.txt"
}
sample "$TOTAL" all
sample "$NMAP_N" nmap
sample "$SSLYZE_N" sslyze
sample "$TESTSSL_N" testssl
grep '^127\.1\.' "$WORK/all-endpoints.txt" > "$WORK/nginx-endpoints.txt"

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=bench.bleedwatch.test" \
    -addext "subjectAltName=DNS:bench.bleedwatch.test" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
mkdir -p "$WORK/nginx-tmp"
{
    echo "worker_processes $NGINX_WORKERS;"
    echo "daemon off;"
    echo "pid $WORK/nginx.pid;"
    echo "error_log $WORK/nginx-error.log warn;"
    echo "worker_rlimit_nofile $(( want_fds > 65536 ? want_fds : 65536 ));"
    echo "events { worker_connections 16384; }"
    echo "http {"
    echo "  access_log off;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $WORK/nginx-tmp/$t;"; done
    echo "  ssl_protocols $NGINX_PROTOCOLS;"
    echo "  ssl_certificate $WORK/cert.pem;"
    echo "  ssl_certificate_key $WORK/key.pem;"
    echo "  server {"
    echo "    server_name bench.bleedwatch.test;"
    while read -r ip; do
        [[ $ip == 127.1.* ]] && echo "    listen $ip:443 ssl;"
    done < "$WORK/targets.txt"
    echo "    location / { return 200 \"bleedwatch bench\\n\"; }"
    echo "  }"
    echo "}"
} > "$WORK/nginx.conf"
"$NGINX" -t -q -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" \
    || die "nginx rejects $WORK/nginx.conf: $(tail -3 "$WORK/nginx-error.log")"
"$NGINX" -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" &
NGINX_PID=$!

if (( LAB_N )); then
    lab_args=()
    for ((j = 0; j < LAB_N; j++)); do lab_args+=(--listen "$(lab_addr "$j"):443"); done
    "$BW" lab --behaviour vulnerable "${lab_args[@]}" 2> "$WORK/lab.log" &
    LAB_PID=$!
fi

# Ready when every listener accepts a connection (bounded: 30 s).
python3 - "$WORK/targets.txt" <<'EOF' || die "servers did not come up (see nginx-error.log / lab.log)"
import socket, sys, time
ips = [l.strip() for l in open(sys.argv[1]) if l.strip()]
deadline = time.monotonic() + 30
pending = list(ips)
while pending and time.monotonic() < deadline:
    still = []
    for ip in pending:
        try:
            socket.create_connection((ip, 443), timeout=1).close()
        except OSError:
            still.append(ip)
    pending = still
    if pending:
        time.sleep(0.2)
sys.exit(1 if pending else 0)
EOF
# The servers' CPU per run is recorded too (nginx workers are the master's children).
MEASURE_SERVER_PIDS="$(pgrep -P "$NGINX_PID" | tr '\n' ' ')${LAB_PID}"
export MEASURE_SERVER_PIDS
log "nginx (pid $NGINX_PID) on $N addresses and the lab (pid ${LAB_PID:-none}) on $LAB_N: all accept"

# ---------------------------------------------------------------------------------------------
# Runs. measure.py records wall clock and user+sys CPU of each command and its descendants.
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/runs"
measure() { # measure NAME TIMEOUT CMD... (output of CMD to NAME.out)
    local name=$1 timeout=$2; shift 2
    python3 "$HERE/measure.py" "$WORK/runs/$name.time.json" "$timeout" -- "$@" \
        > "$WORK/runs/$name.out" 2>&1 || die "measuring $name failed"
    log "$name: $(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("wall %s s, cpu %s s, servers cpu %s s, exit %s%s" % (r["wall_s"], r["cpu_s"], r["server_cpu_s"], r["exit_code"], ", TIMED OUT" if r["timed_out"] else ""))
' "$WORK/runs/$name.time.json")"
}

bw_scan() { # bw_scan SET RUN [EXTRA FLAGS...] (the set's target file is SET minus any "+suffix")
    local set=$1 run=$2; shift 2
    [[ -s $WORK/${set%%+*}-endpoints.txt ]] || return 0
    # shellcheck disable=SC2086 # BW_ARGS is a list of flags
    measure "bleedwatch-$set-$run" "$BW_TIMEOUT" \
        "$BW" scan --input-list "$WORK/${set%%+*}-endpoints.txt" --json "$WORK/runs/bleedwatch-$set-$run.jsonl" -q $BW_ARGS "$@"
    # Exit 0 = nothing vulnerable, 1 = something vulnerable; 2 = bleedwatch refused to run.
    python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["exit_code"] not in (0, 1))' \
        "$WORK/runs/bleedwatch-$set-$run.time.json" || die "bleedwatch failed: $(tail -3 "$WORK/runs/bleedwatch-$set-$run.out")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up scan (not counted)"
bw_scan nmap warmup
for ((r = 1; r <= REPEAT; r++)); do
    bw_scan all "$r"
    bw_scan nmap "$r"
    bw_scan sslyze "$r"
    bw_scan testssl "$r"
    # Like sslyze and testssl.sh: one version (TLS 1.2), so one connection per endpoint.
    if (( ONE_VERSION )); then bw_scan all+tls12 "$r" --versions tls1.2; fi
done

if (( ! SKIP_PEERS )) && (( NMAP_N )); then
    log "nmap on $NMAP_N endpoints"
    measure nmap "$PEER_TIMEOUT" nmap -Pn -n -p 443 --script ssl-heartbleed \
        -iL "$WORK/nmap-ips.txt" -oX "$WORK/runs/nmap.xml"
fi
if (( ! SKIP_PEERS )) && (( SSLYZE_N )); then
    log "sslyze on $SSLYZE_N endpoints"
    measure sslyze "$PEER_TIMEOUT" "$SSLYZE" --heartbleed --mozilla_config disable --quiet \
        --json_out "$WORK/runs/sslyze.json" --targets_in "$WORK/sslyze-endpoints.txt"
fi
if (( ! SKIP_PEERS )) && (( TESTSSL_N )); then
    log "testssl.sh on $TESTSSL_N endpoints, $TESTSSL_JOBS at a time"
    mkdir -p "$WORK/runs/testssl"
    measure testssl "$PEER_TIMEOUT" bash -c '
        out=$1 testssl=$2 jobs=$3 list=$4
        xargs -P "$jobs" -I{} "$testssl" -H --warnings off --quiet --color 0 --nodns none \
            --jsonfile "$out/{}.json" {} < "$list"' \
        _ "$WORK/runs/testssl" "$TESTSSL" "$TESTSSL_JOBS" "$WORK/testssl-endpoints.txt"
fi
log "floor: kernel CPU of bare loopback connections (floor.py)"
python3 "$HERE/floor.py" "$WORK/nginx-endpoints.txt" "$WORK/runs/floor.json" > /dev/null
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

PROFILE_DIR=""
if (( PROFILE )); then
    # Where the scanner's CPU goes: syscall counts (strace slows it, so not timed) and a profile.
    PROFILE_DIR=$WORK/profile
    mkdir -p "$PROFILE_DIR"
    log "profiling: strace -c -f on $NMAP_N endpoints"
    # shellcheck disable=SC2086
    timeout "$BW_TIMEOUT" strace -c -f -o "$PROFILE_DIR/strace-c.txt" \
        "$BW" scan --input-list "$WORK/nmap-endpoints.txt" --json /dev/null -q $BW_ARGS || true
    if (( PERF_OK )); then
        log "profiling: perf stat and perf record on all $TOTAL endpoints"
        # shellcheck disable=SC2086
        timeout "$BW_TIMEOUT" perf stat -o "$PROFILE_DIR/perf-stat.txt" \
            -e task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions \
            "$BW" scan --input-list "$WORK/all-endpoints.txt" --json /dev/null -q $BW_ARGS || true
        # shellcheck disable=SC2086
        timeout "$BW_TIMEOUT" perf record -q -F 2000 -g -o "$PROFILE_DIR/perf.data" \
            "$BW" scan --input-list "$WORK/all-endpoints.txt" --json /dev/null -q $BW_ARGS 2>/dev/null || true
        perf report -i "$PROFILE_DIR/perf.data" --stdio --no-children --sort dso,symbol \
            --percent-limit 0.7 -g none 2>/dev/null | grep -v '^$' > "$PROFILE_DIR/perf-report.txt" || true
        perf report -i "$PROFILE_DIR/perf.data" --stdio --no-children --sort dso \
            -g none 2>/dev/null | grep -v '^$' > "$PROFILE_DIR/perf-dso.txt" || true
        rm -f "$PROFILE_DIR/perf.data"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------
cat > "$WORK/meta.json" <<EOF
{
 "stamp": "$STAMP",
 "nproc": $(nproc),
 "cpu_model": $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))'),
 "kernel": "$(uname -r)",
 "load_before": "$LOAD_BEFORE",
 "load_after": "$LOAD_AFTER",
 "n_nginx": $N, "n_lab": $LAB_N, "total": $TOTAL,
 "samples": {"nmap": $NMAP_N, "sslyze": $SSLYZE_N, "testssl": $TESTSSL_N},
 "repeat": $REPEAT, "testssl_jobs": $TESTSSL_JOBS, "bw_args": "$BW_ARGS",
 "nginx_workers": "$NGINX_WORKERS",
 "nginx_protocols": "$NGINX_PROTOCOLS",
 "skip_peers": $SKIP_PEERS
}
EOF
{
    echo "bleedwatch=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && [[ -n $(git status --porcelain 2>/dev/null) ]] && echo ' (working tree with uncommitted changes)')"
    echo "bleedwatch_binary=built $(date -u -r "$BW" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$BW" | cut -c1-16)"
    echo "nginx=$("$NGINX" -v 2>&1 | sed 's/.*: //')"
    echo "openssl=$(openssl version)"
    if (( ! SKIP_PEERS )); then
        echo "nmap=$(nmap --version | head -1)"
        echo "sslyze=$("$SSLYZE_VENV/bin/python" -c 'from importlib.metadata import version as v; print("sslyze", v("sslyze"), "/ nassl", v("nassl"))' 2>/dev/null || "$SSLYZE_VENV/bin/pip" show sslyze | grep ^Version)"
        echo "testssl=$(dpkg-query -W -f='testssl.sh ${Version}' testssl.sh 2>/dev/null || "$TESTSSL" --version 2>&1 | grep -m1 -o 'testssl.*')"
    fi
} > "$WORK/versions.txt"

python3 "$HERE/compare.py" "$WORK" "$HERE/results-$STAMP"
log "results: $HERE/results-$STAMP.md and .json"
