#!/usr/bin/env bash
# Scheduler benchmark: `-p` many ports over several loopback addresses with `--per-host` well
# below `--concurrency` (see bench/README.md, "scan: --per-host and --concurrency"). Times two
# bleedwatch binaries on the same targets, e.g. the main branch's and this tree's:
#
#   BEFORE=/tmp/bw-before/target/release/bleedwatch AFTER=target/release/bleedwatch bash bench/scan/per_host.sh
#
# One nginx (self-signed RSA certificate, TLS 1.2) listens on ADDRS addresses 127.3.0.1.. times
# PORTS ports from 20001; every run scans all of them with
# `--per-host PER_HOST --concurrency CONCURRENCY --no-db`. Everything stays on 127.0.0.0/8.
#
# Settings (environment): ADDRS=16 PORTS=64 PER_HOST=4 CONCURRENCY=256 REPEAT=3 (median reported)
set -euo pipefail

ADDRS=${ADDRS:-16}
PORTS=${PORTS:-64}
PER_HOST=${PER_HOST:-4}
CONCURRENCY=${CONCURRENCY:-256}
REPEAT=${REPEAT:-3}
: "${BEFORE:?BEFORE=path to the bleedwatch binary to compare against}"
: "${AFTER:?AFTER=path to the bleedwatch binary under test}"
FIRST_PORT=20001
LAST_PORT=$((FIRST_PORT + PORTS - 1))

WORK=$(mktemp -d /tmp/bleedwatch-per-host.XXXXXX)
NGINX_PID=
cleanup() {
    [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=bench.test 2>/dev/null
{
    echo "master_process off; worker_processes 1; error_log $WORK/error.log; pid $WORK/nginx.pid;"
    echo "worker_rlimit_nofile 65536; events { worker_connections 16384; }"
    echo "http { access_log off; client_body_temp_path $WORK/b; proxy_temp_path $WORK/p; fastcgi_temp_path $WORK/f; uwsgi_temp_path $WORK/u; scgi_temp_path $WORK/s;"
    echo " server { ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.2; return 200 ok;"
    for a in $(seq 1 "$ADDRS"); do
        for p in $(seq "$FIRST_PORT" "$LAST_PORT"); do echo "  listen 127.3.0.$a:$p ssl;"; done
    done
    echo " }"
    echo "}"
} > "$WORK/nginx.conf"
nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.3.0.$ADDRS/$LAST_PORT") 2>/dev/null && break
    sleep 0.1
done

# Wall-clock seconds of one scan; checks that every endpoint got its (no-heartbeat) verdict.
run() {
    local binary=$1 out="$WORK/out.jsonl" start end
    start=$(date +%s.%N)
    "$binary" scan "127.3.0.1-$ADDRS" -p "$FIRST_PORT-$LAST_PORT" --per-host "$PER_HOST" --concurrency "$CONCURRENCY" \
        --no-db -q --json "$out" >/dev/null || [[ $? -le 1 ]]
    end=$(date +%s.%N)
    local n good
    n=$(wc -l < "$out")
    good=$(grep -c '"heartbleed":"no-heartbeat"' "$out" || true)
    [[ $n -eq $((ADDRS * PORTS)) && $good -eq $n ]] || { echo "$binary: $good of $n endpoints right, expected $((ADDRS * PORTS))" >&2; exit 2; }
    echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

"$AFTER" scan "127.3.0.1" -p "$FIRST_PORT" --no-db -q >/dev/null || true   # warm-up
declare -A times
for name in BEFORE AFTER; do
    binary=${!name}
    list=()
    for _ in $(seq "$REPEAT"); do list+=("$(run "$binary")"); done
    times[$name]=$(printf '%s\n' "${list[@]}" | median)
    echo "$name ($binary): runs ${list[*]} s, median ${times[$name]} s"
done
echo "endpoints: $((ADDRS * PORTS)) ($ADDRS addresses x $PORTS ports), --per-host $PER_HOST --concurrency $CONCURRENCY"
echo "after is $(echo "scale=1; ${times[BEFORE]} / ${times[AFTER]}" | bc)x faster (median wall clock)"
