#!/usr/bin/env python3
"""Kernel cost of one loopback TCP connection on this machine: the floor under any scanner.

usage: floor.py ENDPOINTS_FILE OUT.json

For every address:443 in ENDPOINTS_FILE (lines "a.b.c.d:443"), one after the other:
  bare:  connect, close;
  hello: connect, send one TLS 1.2 ClientHello (made by Python's ssl module), read until the
         server's flight ends (its last 4 bytes are ServerHelloDone, 0e 00 00 00) or 2 s pass, close.
Reports the system CPU time per connection (the kernel's TCP work; on loopback it includes the
packet processing done on behalf of the server while this process sends). User time is not a
floor (it is Python's) and is reported only for completeness.
"""

import json
import resource
import socket
import ssl
import sys
import time

SERVER_HELLO_DONE = bytes([0x0E, 0x00, 0x00, 0x00])


def client_hello() -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def run(addresses: list[str], hello: bytes | None) -> dict:
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    failures = 0
    for addr in addresses:
        try:
            with socket.create_connection((addr, 443), timeout=2) as s:
                if hello:
                    s.sendall(hello)
                    got = b""
                    while not got.endswith(SERVER_HELLO_DONE):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
        except OSError:
            failures += 1
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    n = len(addresses)
    return {
        "connections": n,
        "failures": failures,
        "wall_us_per_connection": wall / n * 1e6,
        "sys_us_per_connection": (after.ru_stime - before.ru_stime) / n * 1e6,
        "user_us_per_connection": (after.ru_utime - before.ru_utime) / n * 1e6,
    }


def main() -> int:
    addresses = [l.strip().rsplit(":", 1)[0] for l in open(sys.argv[1], encoding="ascii") if l.strip()]
    result = {"bare": run(addresses, None), "hello": run(addresses, client_hello())}
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
