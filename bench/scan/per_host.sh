#!/usr/bin/env bash
# Scheduler benchmark: `-p` many ports over several loopback addresses with `--per-host` well
# below `--concurrency` (see bench/README.md, "scan: --per-host and --concurrency"). Times two
# bleedwatch binaries on the same targets, e.g. the main branch's and this tree's:
#
#   BEFORE=/tmp/bw-before/target/release/bleedwatch AFTER=target/release/bleedwatch bash bench/scan/per_host.sh
#
# One nginx (self-signed RSA certificate, TLS 1.2) on 127.4.0.1:443, behind a relay (Python
# asyncio) that listens on ADDRS addresses 127.3.0.1.. times PORTS ports from 20001 and holds every
# chunk DELAY_MS in each direction, as a network path would (on bare loopback a handful of
# connections already saturate the two CPUs, and scheduling cannot show). Every run scans all of
# them with `--per-host PER_HOST --concurrency CONCURRENCY --no-db`. Everything stays on
# 127.0.0.0/8.
#
# Settings (environment): ADDRS=16 PORTS=64 PER_HOST=4 CONCURRENCY=256 REPEAT=3 (median reported)
#   DELAY_MS=50  BW_ARGS="--versions tls1.2" (one connection per endpoint: the relay's own CPU stays
#   out of the way)
set -euo pipefail

ADDRS=${ADDRS:-16}
PORTS=${PORTS:-64}
PER_HOST=${PER_HOST:-4}
CONCURRENCY=${CONCURRENCY:-256}
REPEAT=${REPEAT:-3}
DELAY_MS=${DELAY_MS:-50}
BW_ARGS=${BW_ARGS:---versions tls1.2}
: "${BEFORE:?BEFORE=path to the bleedwatch binary to compare against}"
: "${AFTER:?AFTER=path to the bleedwatch binary under test}"
FIRST_PORT=20001
LAST_PORT=$((FIRST_PORT + PORTS - 1))

WORK=$(mktemp -d /tmp/bleedwatch-per-host.XXXXXX)
NGINX_PID=
RELAY_PID=
cleanup() {
    set +e
    [[ -n $RELAY_PID ]] && { kill "$RELAY_PID"; wait "$RELAY_PID"; } 2>/dev/null
    [[ -n $NGINX_PID ]] && { kill "$NGINX_PID"; wait "$NGINX_PID"; } 2>/dev/null
    true
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=bench.test 2>/dev/null
{
    echo "master_process off; worker_processes 1; error_log $WORK/error.log; pid $WORK/nginx.pid;"
    echo "worker_rlimit_nofile 65536; events { worker_connections 16384; }"
    echo "http { access_log off; client_body_temp_path $WORK/b; proxy_temp_path $WORK/p; fastcgi_temp_path $WORK/f; uwsgi_temp_path $WORK/u; scgi_temp_path $WORK/s;"
    echo " server { listen 127.4.0.1:443 ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.2; return 200 ok; }"
    echo "}"
} > "$WORK/nginx.conf"
nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
cat > "$WORK/relay.py" <<'PY'
import asyncio, resource, sys
addrs, first, last, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) / 1000
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

async def pump(reader, writer):
    try:
        while data := await reader.read(65536):
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

async def relay(client_r, client_w):
    try:
        server_r, server_w = await asyncio.open_connection("127.4.0.1", 443)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))

async def main():
    servers = [await asyncio.start_server(relay, f"127.3.0.{a}", p, backlog=1024) for a in range(1, addrs + 1) for p in range(first, last + 1)]
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
PY
python3 "$WORK/relay.py" "$ADDRS" "$FIRST_PORT" "$LAST_PORT" "$DELAY_MS" > "$WORK/relay.log" 2>&1 &
RELAY_PID=$!
for _ in $(seq 100); do
    grep -q ready "$WORK/relay.log" 2>/dev/null && (exec 3<>/dev/tcp/127.4.0.1/443) 2>/dev/null && break
    sleep 0.1
done

# Wall-clock seconds of one scan; checks that every endpoint got its (no-heartbeat) verdict.
run() {
    local binary=$1 out="$WORK/out.jsonl" start end
    start=$(date +%s.%N)
    "$binary" scan "127.3.0.1-$ADDRS" -p "$FIRST_PORT-$LAST_PORT" --per-host "$PER_HOST" --concurrency "$CONCURRENCY" \
        $BW_ARGS --no-db -q --json "$out" >/dev/null || [[ $? -le 1 ]]
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
echo "endpoints: $((ADDRS * PORTS)) ($ADDRS addresses x $PORTS ports, ${DELAY_MS} ms each way), --per-host $PER_HOST --concurrency $CONCURRENCY $BW_ARGS"
echo "after is $(echo "scale=1; ${times[BEFORE]} / ${times[AFTER]}" | bc)x faster (median wall clock)"
exit 0
