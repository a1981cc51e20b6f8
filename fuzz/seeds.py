#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets added for issue 14 from real inputs (see README.md):
shared captures cut small, recorded STARTTLS server replies, the crates' test fixtures.
Run from the repository root; the shared data is expected beside it (../shared)."""
import gzip
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data", "pcap")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def legacy_records(data):
    """(header, [(record header, packet bytes)]) of a little-endian microsecond pcap."""
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "little-endian pcap expected"
    header, at, records = data[:24], 24, []
    while at + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, at + 8)[0]
        records.append((data[at:at + 16], data[at + 16:at + 16 + caplen]))
        at += 16 + caplen
    return header, records


def first_packets(data, budget):
    """The file header and the first packets that fit in `budget` bytes (at least one)."""
    header, records = legacy_records(data)
    out = bytearray(header)
    for i, (rec, pkt) in enumerate(records):
        if i > 0 and len(out) + len(rec) + len(pkt) > budget:
            break
        out += rec + pkt
    return bytes(out)


def snapped(data, snaplen):
    """Every packet cut to `snaplen` bytes, as `tcpdump -s` writes it (original length kept)."""
    header, records = legacy_records(data)
    out = bytearray(header[:16] + struct.pack("<I", snaplen) + header[20:24])
    for rec, pkt in records:
        ts_sec, ts_usec, _, orig = struct.unpack("<IIII", rec)
        cut = pkt[:snaplen]
        out += struct.pack("<IIII", ts_sec, ts_usec, len(cut), orig) + cut
    return bytes(out)


def pcapng_first_blocks(data, budget):
    out, at = bytearray(), 0
    while at + 12 <= len(data):
        length = struct.unpack_from("<I", data, at + 4)[0]
        if len(out) >= 3 * 28 and len(out) + length > budget:
            break
        out += data[at:at + length]
        at += length
    return bytes(out)


def read(*parts):
    with open(os.path.join(*parts), "rb") as f:
        return f.read()


def pcap_seeds():
    lab = os.path.join(SHARED, "openssl-1.0.1f-lab")
    zeek = os.path.join(SHARED, "zeek")
    for name in ["nmap-heartbleed-vulnerable-1.0.1f-tls12", "hbprobe-heartbleed-nohb-1.0.1f-tls12",
                 "bleedwatch-dtls-probe-512-unanswered-1.0.1f-dtls1", "client-s_client-1.0.1g-overread-claim16384-patched-tls12",
                 "s_client-1.0.1f-normal-session-legit-heartbeat-1.0.1f-tls12"]:
        write("pcap_capture", name + "-first6k.pcap", first_packets(read(lab, name + ".pcap"), 6000))
    write("pcap_capture", "heartbleed-encrypted-first6k.pcap", first_packets(read(zeek, "heartbleed-encrypted.pcap"), 6000))
    for name in ["nmap-heartbleed-vulnerable-1.0.1f-tls12", "testssl-heartbleed-vulnerable-1.0.1f",
                 "hbprobe-heartbleed-vulnerable-1.0.1f-ssl3", "hbprobe-heartbleed-vulnerable-1.0.1f-dtls1",
                 "client-s_client-1.0.1f-overread-claim16384-vulnerable-tls12", "nmap-heartbleed-gnutls-heartbeat-enabled-not-vulnerable"]:
        write("pcap_capture", name + "-snap160.pcap", snapped(read(lab, name + ".pcap"), 160))
    for name in ["heartbleed-success", "heartbleed-encrypted-success"]:
        write("pcap_capture", "zeek-" + name + "-snap160.pcap", snapped(read(zeek, name + ".pcap"), 160))
    small = first_packets(read(lab, "hbprobe-heartbleed-nohb-1.0.1f-tls12.pcap"), 6000)
    write("pcap_capture", "hbprobe-heartbleed-nohb-1.0.1f-tls12-first6k.pcap.gz", gzip.compress(small, mtime=0))
    ng = read(ROOT, "crates", "pcap", "tests", "data", "nmap-heartbleed-vulnerable-1.0.1f-tls12.pcapng")
    write("pcap_capture", "nmap-heartbleed-vulnerable-1.0.1f-tls12-first6k.pcapng", pcapng_first_blocks(ng, 6000))


# Selector bytes of bleedwatch_starttls::fuzzing::client_for: Protocol::ALL's index, 14 = auto.
PROTOCOLS = {"smtp": 0, "lmtp": 1, "imap": 2, "pop3": 3, "ftp": 4, "xmpp": 5, "xmpp-server": 6, "ldap": 7,
             "nntp": 8, "sieve": 9, "postgres": 10, "mysql": 11, "rdp": 12, "irc": 13}
AUTO = 14


def starttls_seeds():
    data = os.path.join(ROOT, "crates", "starttls", "tests", "data")
    recordings = {"postfix-smtp.txt": "smtp", "dovecot-lmtp.txt": "lmtp", "dovecot-imap.txt": "imap",
                  "dovecot-pop3.txt": "pop3", "vsftpd.txt": "ftp", "prosody-c2s.xml": "xmpp",
                  "prosody-s2s.xml": "xmpp-server", "slapd-starttls.bin": "ldap", "slapd-no-tls.bin": "ldap",
                  "dovecot-sieve.txt": "sieve", "mariadb-greeting.bin": "mysql", "xrdp-confirm.bin": "rdp",
                  "inspircd.txt": "irc"}
    for file, protocol in recordings.items():
        replies = read(data, file)
        stem = file.rsplit(".", 1)[0]
        # Whole replies at once, and in pieces of 7 bytes.
        write("starttls_server_replies", stem, bytes([PROTOCOLS[protocol], 255]) + replies)
        write("starttls_server_replies", stem + "-chunk7", bytes([PROTOCOLS[protocol], 6]) + replies)
        if protocol in ("smtp", "lmtp", "imap", "pop3", "ftp", "sieve", "mysql", "irc"):
            write("starttls_server_replies", stem + "-auto", bytes([AUTO, 255]) + replies)


def targets_seeds():
    data = os.path.join(ROOT, "crates", "targets", "tests", "data")
    targets, exclude = read(data, "targets.txt"), read(data, "exclude.txt")
    write("targets_lists", "targets-exclude", b"443,8443\n" + targets + b"\n--exclude\n" + exclude)
    write("targets_lists", "targets-nmap-ports", b"T:443,U:4433\n" + targets)


def store_seeds():
    data = os.path.join(ROOT, "crates", "store", "tests", "data")
    for name in os.listdir(data):
        if name.endswith(".json"):
            write("store_masscan_json", name, read(data, name))
        elif name.endswith(".xml"):
            write("store_nmap_xml", name, read(data, name))
        elif name.endswith(".csv"):
            write("store_asset_csv", name, read(data, name))


def x509_seeds():
    data = os.path.join(ROOT, "crates", "x509", "tests", "data")
    for name in os.listdir(data):
        if name.endswith(".der"):
            write("x509_summary", name, read(data, name))


def audit_seeds():
    """Small archives around a fake ELF carrying OpenSSL's version and compiler-flags strings (a
    few hundred bytes, no real binary): every container kind audit opens, an image with a
    whiteout, squashfs images, and hostile cases (a cut gzip, a cut squashfs, a path-traversal name)."""
    import io
    import lzma
    import tarfile
    import zipfile

    elf = (b"\x7fELF\x02\x01\x01" + b"\0" * 57 + b"OpenSSL 1.0.1f 6 Jan 2014\0"
           + b"gcc -DOPENSSL_THREADS -DOPENSSL_NO_HEARTBEATS\0dtls1_heartbeat\0SSL_CTX_new\0")

    def tar(entries):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0
                t.addfile(info, io.BytesIO(data))
        return out.getvalue()

    def zipped(entries):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in entries:
                z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
        return out.getvalue()

    def ar(entries, pad=b"\n"):
        out = b"!<arch>\n"
        for name, data in entries:
            out += b"%-16s%-12s%-6s%-6s%-8s%-10d`\n" % (name.encode(), b"0", b"0", b"0", b"100644", len(data))
            out += data + (pad if len(data) % 2 else b"")
        return out

    gz = lambda d: gzip.compress(d, mtime=0)
    lib = tar([("usr/lib/libssl.so.1.0.0", elf), ("var/lib/dpkg/status",
               b"Package: libssl1.0.0\nStatus: install ok installed\nVersion: 1.0.1e-2+deb7u5\n\n"),
               ("var/lib/dpkg/info/libssl1.0.0:amd64.list", b"/usr/lib/libssl.so.1.0.0\n"),
               ("etc/os-release", b"ID=debian\nVERSION_ID=7\n")])
    write("audit_walk", "elf", elf)
    write("audit_walk", "rootfs.tar", lib)
    write("audit_walk", "rootfs.tar.gz", gz(lib))
    write("audit_walk", "rootfs.tar.xz", lzma.compress(lib))
    write("audit_walk", "rootfs.zip", zipped([("lib/libssl.so", elf), ("inner.tar.gz", gz(lib))]))
    write("audit_walk", "package.deb", ar([("debian-binary", b"2.0\n"),
          ("control.tar.gz", gz(tar([("./control", b"Package: libssl1.0.0\nVersion: 1.0.1e-2+deb7u5\n")]))),
          ("data.tar.gz", gz(tar([("./usr/lib/libssl.so.1.0.0", elf)])))]))
    upper = tar([("usr/lib/.wh.libssl.so.1.0.0", b""), ("opt/.wh..wh..opq", b"")])
    manifest = b'[{"Config":"c.json","RepoTags":["x:1"],"Layers":["a/layer.tar","b/layer.tar"]}]'
    write("audit_walk", "docker-save.tar", tar([("b/layer.tar", upper), ("a/layer.tar", lib), ("manifest.json", manifest)]))
    write("audit_walk", "cut.tar.gz", gz(lib)[:300])
    # Go's pack pads odd members with NUL; GNU keeps long names in `//` (`/0` points into it).
    write("audit_walk", "go.a", ar([("__.PKGDEF", b"go object linux amd64 go1.19.8\n!\n"), ("_go_.o", b"go object"),
          ("libssl.so/", elf)], pad=b"\0"))
    write("audit_walk", "gnu-long-names.a", ar([("//", b"a-member-name-longer-than-16.so/\n"), ("/0", elf)]))
    write("audit_walk", "traversal.tar", tar([("../../x/libssl.so", elf), ("/abs/openssl", elf)]))
    # Squashfs images of the same root by Debian's mksquashfs (squashfs-tools): gzip and xz, one
    # inside a tar.gz, one cut.
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        with tarfile.open(fileobj=io.BytesIO(lib)) as t:
            for member in t.getmembers():
                path = os.path.join(root, member.name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(t.extractfile(member).read())
        images = {}
        for comp in ("gzip", "xz"):
            out = os.path.join(tmp, comp + ".squashfs")
            subprocess.run(["mksquashfs", root, out, "-comp", comp, "-noappend", "-quiet", "-no-progress", "-nopad",
                            "-all-root", "-mkfs-time", "0", "-all-time", "0"], check=True, stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                images[comp] = f.read()
    write("audit_walk", "rootfs.squashfs", images["gzip"])
    write("audit_walk", "rootfs-xz.squashfs", images["xz"])
    write("audit_walk", "squashfs-in.tar.gz", gz(tar([("fw/rootfs.squashfs", images["gzip"])])))
    write("audit_walk", "cut.squashfs", images["gzip"][:len(images["gzip"]) * 3 // 4])


if __name__ == "__main__":
    audit_seeds()
    pcap_seeds()
    starttls_seeds()
    targets_seeds()
    store_seeds()
    x509_seeds()
    sys.exit(0)
