#!/usr/bin/env python3
"""Run one command and report its wall clock and CPU time as JSON.

usage: measure.py OUT.json TIMEOUT_SECONDS -- COMMAND [ARGS...]

CPU is the user and system time of the command *and every descendant it waited for*
(wait4() on Linux returns the child's own usage plus its reaped children's), so a shell loop
around testssl.sh counts the openssl processes testssl.sh starts. The command runs in its own
process group; on timeout that group (and only that group) gets SIGTERM, then SIGKILL.
Standard output and error pass through unchanged.

If MEASURE_SERVER_PIDS holds process ids (space separated: the servers under test), their CPU
time during the run is reported too, as server_cpu_s (from /proc, 1/CLK_TCK resolution), so one
can see whether the scanner or the servers set the pace.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time


def server_cpu_seconds(pids: list[int]) -> float | None:
    """User+system CPU of the given processes (all their threads) so far, in seconds."""
    if not pids:
        return None
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                # Fields after the parenthesised command name; utime and stime are fields 14, 15.
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out_path, timeout_s, command = sys.argv[1], float(sys.argv[2]), sys.argv[4:]
    server_pids = [int(p) for p in os.environ.get("MEASURE_SERVER_PIDS", "").split() if p.isdigit()]
    server_before = server_cpu_seconds(server_pids)
    started = time.perf_counter()
    proc = subprocess.Popen(command, start_new_session=True)
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(5.0)  # grace period before SIGKILL
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def on_signal(signum, _frame) -> None:
        # The command has its own session, so an interrupted benchmark must end it here.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sys.exit(128 + signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    timer = threading.Timer(timeout_s, on_timeout)
    timer.daemon = True
    timer.start()
    # A blocking wait, so the measurement itself does not compete for the CPU.
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    wall = time.perf_counter() - started
    server_after = server_cpu_seconds(server_pids)
    # The process group may still hold orphans (e.g. a killed loop's children): end them.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    exit_code = os.waitstatus_to_exitcode(status)
    result = {
        "command": command,
        "wall_s": round(wall, 4),
        "user_s": round(usage.ru_utime, 4),
        "sys_s": round(usage.ru_stime, 4),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
        "max_rss_kib": usage.ru_maxrss,
        "voluntary_ctx_switches": usage.ru_nvcsw,
        "involuntary_ctx_switches": usage.ru_nivcsw,
        "exit_code": exit_code,
        "timed_out": timed_out.is_set(),
        "server_cpu_s": round(server_after - server_before, 2) if server_pids else None,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
