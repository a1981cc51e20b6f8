#!/usr/bin/env python3
"""Builds a large benchmark capture from the shared real captures.

Every shared capture (Ethernet, IPv4 and IPv6, TCP and UDP) is copied over and over with its 5-tuples
varied: each copy gets its own IPv4 addresses (10.a.b.c / 172.16.a.b for the two ends, consistently
per original address) or IPv6 addresses, and its client ports shifted, so that every copy is a new
set of connections. Copies start 2 ms apart, so thousands of connections are open at once, as on a
busy link. Payload bytes, TCP sequence numbers and checksums are left as they are (checksums were
already wrong in some originals; analysers run with checksum validation off).

Usage: make_capture.py --out FILE [--size-mb N] [--shared DIR]
"""
import argparse
import glob
import os
import struct
import sys


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic != b"\xd4\xc3\xb2\xa1":
        raise SystemExit(f"{path}: only little-endian microsecond pcap is supported here")
    linktype = struct.unpack_from("<I", data, 20)[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, expected Ethernet")
    packets = []
    i = 24
    while i + 16 <= len(data):
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", data, i)
        packets.append((sec * 1_000_000 + usec, origlen, data[i + 16:i + 16 + caplen]))
        i += 16 + caplen
    return packets


def rewrite(frame, copy, addr_map):
    """Returns the frame with addresses and ports varied for this copy."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    f = bytearray(frame)
    if ethertype == 0x0800:
        ihl = (f[14] & 0x0F) * 4
        proto = f[23]
        for off in (26, 30):
            orig = bytes(f[off:off + 4])
            f[off:off + 4] = addr_map(orig, copy)
        l4 = 14 + ihl
    elif ethertype == 0x86DD:
        proto = f[20]
        for off in (22, 38):
            orig = bytes(f[off + 12:off + 16])
            f[off:off + 16] = b"\x20\x01\x0d\xb8" + struct.pack("!I", copy) + b"\x00" * 4 + addr_map(orig, copy)
        l4 = 54
    else:
        return bytes(f)
    if proto in (6, 17) and len(f) >= l4 + 4:
        sport, dport = struct.unpack_from("!HH", f, l4)
        # Shift the ephemeral (larger) port so that copies never share a 5-tuple.
        shift = (copy * 7) % 20000
        if sport > dport:
            sport = 10000 + (sport + shift) % 50000
        else:
            dport = 10000 + (dport + shift) % 50000
        struct.pack_into("!HH", f, l4, sport, dport)
    return bytes(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--window", type=int, default=64, help="copies overlapping in time (more: more connections open at once)")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/pcap"))
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.shared, "zeek", "*.pcap")) + glob.glob(os.path.join(args.shared, "openssl-1.0.1f-lab", "*.pcap")))
    if not files:
        raise SystemExit(f"no captures under {args.shared}")
    sources = []
    for path in files:
        packets = read_pcap(path)
        if packets:
            start = packets[0][0]
            sources.append([(ts - start, origlen, frame) for ts, origlen, frame in packets])

    def addr_map(orig, copy):
        # Loopback and public originals map to per-copy private addresses, keeping the two ends apart.
        low = orig[3]
        return bytes([10, (copy >> 8) & 0xFF, copy & 0xFF, low]) if orig[0] != 127 or orig[3] == 1 else bytes([172, 16, (copy >> 8) & 0xFF, copy & 0xFF])

    target = args.size_mb * 1_000_000
    written = 24
    packets = 0
    copy = 0
    base = 1_700_000_000 * 1_000_000
    # Copies overlap in time: gather a window of copies, sort by time, write, move on.
    with open(args.out, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        while written < target:
            batch = []
            for _ in range(args.window):
                for src_index, src in enumerate(sources):
                    start = base + copy * 2_000
                    for ts, origlen, frame in src:
                        batch.append((start + ts, origlen, rewrite(frame, copy * len(sources) + src_index, addr_map)))
                copy += 1
            batch.sort(key=lambda p: p[0])
            for ts, origlen, frame in batch:
                out.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), max(origlen, len(frame))))
                out.write(frame)
                written += 16 + len(frame)
                packets += 1
            base += 60 * 1_000_000  # the next window starts a minute later
    print(f"{args.out}: {written / 1e6:.1f} MB, {packets} packets, {copy * len(sources)} capture copies", file=sys.stderr)


if __name__ == "__main__":
    main()
