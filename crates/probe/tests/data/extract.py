#!/usr/bin/env python3
"""Extracts the server-to-client (and client-to-server) byte streams of single TCP connections from the
shared real OpenSSL captures, so the probe can be replayed against what real servers sent.
Usage: python3 extract.py  (needs tshark; reads ../../../../../shared/data/pcap/openssl-1.0.1f-lab)."""
import os, subprocess, sys
LAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../../shared/data/pcap/openssl-1.0.1f-lab")
WANT = [
    ("sslyze-heartbleed-vulnerable-1.0.1f.pcap", 2, "sslyze-101f"),
    ("sslyze-heartbleed-patched-1.0.1g.pcap", 2, "sslyze-101g"),
    ("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap", 2, "nmap-101f-tls12"),
    ("nmap-heartbleed-vulnerable-1.0.1f-tls10.pcap", 2, "nmap-101f-tls10"),
    ("nmap-heartbleed-patched-1.0.1g-tls12.pcap", 2, "nmap-101g-tls12"),
    ("nmap-heartbleed-gnutls-heartbeat-enabled-not-vulnerable.pcap", 4, "nmap-gnutls-tls12"),
    ("hbprobe-heartbleed-nohb-1.0.1f-tls12.pcap", 0, "hbprobe-nohb-tls12"),
    ("hbprobe-heartbleed-vulnerable-1.0.1f-ssl3.pcap", 0, "hbprobe-101f-ssl3"),
    ("testssl-heartbleed-vulnerable-1.0.1f.pcap", 8, "testssl-101f"),
    ("nmap-heartbleed-nohb-1.0.1f-tls10-11-12.pcap", 2, "nmap-nohb-tls10"),
    ("nmap-heartbleed-nohb-1.0.1f-tls10-11-12.pcap", 4, "nmap-nohb-tls12"),
    ("nmap-heartbleed-patched-1.0.1g-tls10-11-12.pcap", 2, "nmap-101g-tls10"),
    # Client side: a malicious server (s2c) tests a real s_client (c2s).
    ("client-s_client-1.0.1f-safe-probe-vulnerable-tls12.pcap", 0, "client-101f-safe-tls12"),
    ("client-s_client-1.0.1f-honest-heartbeat-tls12.pcap", 0, "client-101f-honest-tls12"),
    ("client-s_client-1.0.1f-overread-claim16384-vulnerable-tls12.pcap", 0, "client-101f-overread-tls12"),
    ("client-s_client-1.0.1f-overread-claim16384-vulnerable-tls10.pcap", 0, "client-101f-overread-tls10"),
    ("client-s_client-1.0.1f-overread-claim65535-vulnerable-tls12.pcap", 0, "client-101f-overread65535-tls12"),
    ("client-s_client-1.0.1f-overread-claim16384-no-hb-ext-vulnerable-tls12.pcap", 0, "client-101f-overread-nohbext-tls12"),
    ("client-s_client-1.0.1g-safe-probe-patched-tls12.pcap", 0, "client-101g-safe-tls12"),
    ("client-s_client-1.0.1g-honest-heartbeat-patched-tls12.pcap", 0, "client-101g-honest-tls12"),
    ("client-s_client-1.0.1g-overread-claim16384-patched-tls12.pcap", 0, "client-101g-overread-tls12"),
    ("client-s_client-1.0.1f-nohb-safe-probe-tls12.pcap", 0, "client-nohb-safe-tls12"),
    ("client-s_client-1.0.1f-nohb-safe-probe-tls10.pcap", 0, "client-nohb-safe-tls10"),
    ("client-s_client-openssl3-safe-probe-tls12.pcap", 0, "client-openssl3-safe-tls12"),
]
for pcap, stream, name in WANT:
    out = subprocess.run(["tshark", "-r", os.path.join(LAB, pcap), "-q", "-z", f"follow,tcp,raw,{stream}"],
                         check=True, capture_output=True, text=True).stdout
    c2s, s2c = bytearray(), bytearray()
    body = out.split("=" * 67)[1].splitlines()[5:]
    for line in body:
        if not line.strip():
            continue
        (s2c if line.startswith("\t") else c2s).extend(bytes.fromhex(line.strip()))
    open(f"{name}.s2c.bin", "wb").write(s2c)
    open(f"{name}.c2s.bin", "wb").write(c2s)
    print(name, len(c2s), len(s2c))
