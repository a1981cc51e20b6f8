#!/usr/bin/env python3
"""Turn the raw outputs of bench/scan/run.sh into a results table (JSON and Markdown).

usage: compare.py WORK_DIR OUT_PREFIX

Reads WORK_DIR/{meta.json,versions.txt,*-ips.txt,runs/*} written by run.sh and writes
OUT_PREFIX.json and OUT_PREFIX.md; prints the Markdown to standard output.

Every tool's answer for every endpoint is reduced to one of
  vulnerable | safe | error
("safe" = the tool says not vulnerable, whatever its reason) and checked against what the endpoint
really is: 127.2.* are `bleedwatch lab --behaviour vulnerable`, 127.1.* are nginx with OpenSSL 3
(no heartbeat support at all; bleedwatch's precise verdict for them is `no-heartbeat`).
"""

import json
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Targets from the issue.
TARGET_VS_SSLYZE = 20.0
TARGET_VS_TESTSSL = 100.0
TARGET_CPU_US_PER_VERDICT = 50.0


def expected_for(ip: str) -> str:
    return "vulnerable" if ip.startswith("127.2.") else "safe"


def bleedwatch_verdicts(path: Path) -> tuple[dict, dict, int]:
    """address -> normalised verdict, address -> precise verdict, connections made."""
    norm, precise, connections = {}, {}, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        verdict = rec.get("heartbleed", "")
        precise[rec["address"]] = verdict
        norm[rec["address"]] = {
            "vulnerable": "vulnerable",
            "not-vulnerable": "safe",
            "no-heartbeat": "safe",
            "not-applicable": "safe",
        }.get(verdict, "error")
        connections += len(rec.get("details") or [])
    return norm, precise, connections


def nmap_verdicts(path: Path) -> tuple[dict, dict]:
    norm, why = {}, {}
    if not path.exists():
        return norm, why
    root = ET.parse(path).getroot()
    for host in root.iter("host"):
        addr_el = host.find("address[@addrtype='ipv4']")
        if addr_el is None:
            continue
        addr = addr_el.get("addr", "")
        port = host.find("ports/port[@portid='443']")
        state = port.find("state").get("state") if port is not None and port.find("state") is not None else "absent"
        script = port.find("script[@id='ssl-heartbleed']") if port is not None else None
        if state != "open":
            norm[addr], why[addr] = "error", f"port {state}"
        elif script is None:
            # ssl-heartbleed prints nothing for a server it considers safe.
            norm[addr], why[addr] = "safe", "no script output (nmap's 'not vulnerable')"
        else:
            out = script.get("output", "")
            if "State: VULNERABLE" in out:
                norm[addr], why[addr] = "vulnerable", "State: VULNERABLE"
            elif "NOT VULNERABLE" in out:
                norm[addr], why[addr] = "safe", "State: NOT VULNERABLE"
            else:
                norm[addr], why[addr] = "error", out.strip()[:120]
    return norm, why


def sslyze_verdicts(path: Path) -> tuple[dict, dict]:
    norm, why = {}, {}
    if not path.exists():
        return norm, why
    doc = json.loads(path.read_text(encoding="utf-8"))
    for res in doc.get("server_scan_results", []):
        loc = res.get("server_location") or {}
        addr = loc.get("ip_address") or loc.get("hostname", "")
        if res.get("scan_status") != "COMPLETED":
            trace = (res.get("connectivity_error_trace") or "").strip().splitlines()
            norm[addr], why[addr] = "error", f"{res.get('scan_status')}: {trace[-1] if trace else ''}"[:160]
            continue
        hb = (res.get("scan_result") or {}).get("heartbleed") or {}
        if hb.get("status") != "COMPLETED":
            norm[addr], why[addr] = "error", f"heartbleed {hb.get('status')}: {hb.get('error_reason')}"
            continue
        vulnerable = (hb.get("result") or {}).get("is_vulnerable_to_heartbleed")
        norm[addr] = "vulnerable" if vulnerable else "safe"
        why[addr] = f"is_vulnerable_to_heartbleed={vulnerable}"
    return norm, why


def testssl_verdicts(folder: Path) -> tuple[dict, dict]:
    norm, why = {}, {}
    if not folder.is_dir():
        return norm, why
    for f in sorted(folder.glob("*.json")):
        addr = f.name.rsplit(":", 1)[0]
        try:
            entries = json.loads(f.read_text(encoding="utf-8") or "[]")
        except json.JSONDecodeError as e:
            norm[addr], why[addr] = "error", f"unreadable JSON: {e}"
            continue
        hb = [e for e in entries if e.get("id") == "heartbleed"]
        if not hb:
            problems = [e.get("finding", "") for e in entries if e.get("severity") in ("FATAL", "WARN") or e.get("id") == "scanProblem"]
            norm[addr], why[addr] = "error", ("no heartbleed finding; " + "; ".join(problems))[:160]
            continue
        finding = hb[0].get("finding", "")
        if finding.upper().startswith("VULNERABLE"):
            norm[addr] = "vulnerable"
        elif "not vulnerable" in finding.lower():
            norm[addr] = "safe"
        else:
            norm[addr] = "error"
        why[addr] = finding
    return norm, why


def read_ips(path: Path) -> list[str]:
    return [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def tally(ips: list[str], norm: dict, why: dict | None = None) -> dict:
    counts = {"vulnerable": 0, "safe": 0, "error": 0, "missing": 0}
    wrong = []
    for ip in ips:
        got = norm.get(ip, "missing")
        counts[got] += 1
        if got != expected_for(ip):
            wrong.append({"address": ip, "expected": expected_for(ip), "got": got, "why": (why or {}).get(ip, "")})
    return {"counts": counts, "agree_with_truth": len(ips) - len(wrong), "disagreements": wrong}


def load_run(work: Path, name: str) -> dict | None:
    p = work / "runs" / f"{name}.time.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def row(tool: str, set_name: str, ips: list[str], run: dict, extra: dict) -> dict:
    n = len(ips)
    wall, cpu = run["wall_s"], run["cpu_s"]
    return {
        "tool": tool,
        "set": set_name,
        "endpoints": n,
        "wall_s": wall,
        "user_s": run["user_s"],
        "sys_s": run["sys_s"],
        "cpu_s": cpu,
        "max_rss_kib": run["max_rss_kib"],
        "server_cpu_s": run.get("server_cpu_s"),
        "verdicts_per_s": n / wall if wall > 0 else None,
        "cpu_us_per_verdict": cpu / n * 1e6 if n else None,
        "exit_code": run["exit_code"],
        "timed_out": run["timed_out"],
        **extra,
    }


def bleedwatch_row(work: Path, set_name: str, ips: list[str], repeat: int) -> dict | None:
    runs = []
    for r in range(1, repeat + 1):
        run = load_run(work, f"bleedwatch-{set_name}-{r}")
        if run is not None:
            runs.append((r, run))
    if not runs:
        return None
    # The run with the median wall clock stands for the set; all walls are kept.
    runs.sort(key=lambda x: x[1]["wall_s"])
    r, run = runs[(len(runs) - 1) // 2]
    jsonl = work / "runs" / f"bleedwatch-{set_name}-{r}.jsonl"
    norm, precise, connections = bleedwatch_verdicts(jsonl) if jsonl.exists() else ({}, {}, 0)
    precise_counts: dict = {}
    for ip in ips:
        v = precise.get(ip, "missing")
        precise_counts[v] = precise_counts.get(v, 0) + 1
    t = tally(ips, norm)
    return row("bleedwatch", set_name, ips, run, {
        "runs_wall_s": [x[1]["wall_s"] for x in runs],
        "runs_cpu_s": [x[1]["cpu_s"] for x in runs],
        "median_cpu_s": statistics.median(x[1]["cpu_s"] for x in runs),
        "connections": connections,
        "cpu_us_per_connection": run["cpu_s"] / connections * 1e6 if connections else None,
        "precise_verdicts": precise_counts,
        "norm": norm,
        **t,
    })


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, float):
        if 0 < abs(x) < 1 and digits < 3:
            return f"{x:.3f}"
        return f"{x:,.{digits}f}"
    return str(x)


def main() -> int:
    work, out_prefix = Path(sys.argv[1]), Path(sys.argv[2])
    meta = json.loads((work / "meta.json").read_text(encoding="utf-8"))
    versions = dict(
        l.split("=", 1) for l in (work / "versions.txt").read_text(encoding="utf-8").splitlines() if "=" in l
    )
    repeat = meta["repeat"]
    sets = {name: read_ips(work / f"{name}-ips.txt") for name in ("all", "nmap", "sslyze", "testssl")}

    sets["all+tls12"] = sets["all"]
    bw = {name: bleedwatch_row(work, name, ips, repeat) for name, ips in sets.items()}
    peers = {}
    parsers = {
        "nmap": lambda: nmap_verdicts(work / "runs" / "nmap.xml"),
        "sslyze": lambda: sslyze_verdicts(work / "runs" / "sslyze.json"),
        "testssl": lambda: testssl_verdicts(work / "runs" / "testssl"),
    }
    for tool, parse in parsers.items():
        run = load_run(work, tool)
        if run is None:
            continue
        norm, why = parse()
        ips = sets[tool]
        t = tally(ips, norm, why)
        bw_norm = (bw[tool] or {}).get("norm", {})
        disagree_bw = [ip for ip in ips if norm.get(ip, "missing") != bw_norm.get(ip, "missing")]
        peers[tool] = row(tool, tool, ips, run, {**t, "disagree_with_bleedwatch": len(disagree_bw)})

    comparisons = []
    full = bw["all"]
    for tool, p in peers.items():
        same = bw[tool]
        c = {"peer": tool, "endpoints": p["endpoints"]}
        if same and p["verdicts_per_s"]:
            c["wall_ratio_same_targets"] = same["verdicts_per_s"] / p["verdicts_per_s"]
            # Over every bleedwatch repeat, since a shared machine makes its wall clock vary.
            each = [p["wall_s"] / w for w in same["runs_wall_s"] if w > 0]
            c["wall_ratio_same_targets_range"] = [min(each), max(each)] if each else None
            c["cpu_ratio_same_targets"] = p["cpu_s"] / same["cpu_s"] if same["cpu_s"] else None
        if full and p["verdicts_per_s"]:
            c["wall_ratio_vs_full_run"] = full["verdicts_per_s"] / p["verdicts_per_s"]
            c["cpu_ratio_vs_full_run"] = p["cpu_us_per_verdict"] / full["cpu_us_per_verdict"] if full["cpu_us_per_verdict"] else None
        comparisons.append(c)

    def ratio(tool, key):
        for c in comparisons:
            if c["peer"] == tool:
                return c.get(key)
        return None

    targets = {
        "vs_sslyze_wall_>=20x": {
            "same_targets": ratio("sslyze", "wall_ratio_same_targets"),
            "vs_full_run": ratio("sslyze", "wall_ratio_vs_full_run"),
        },
        "vs_testssl_wall_>=100x": {
            "same_targets": ratio("testssl", "wall_ratio_same_targets"),
            "vs_full_run": ratio("testssl", "wall_ratio_vs_full_run"),
        },
        "cpu_us_per_verdict_<=50": full["cpu_us_per_verdict"] if full else None,
    }
    def judge(value, ok):
        return None if value is None else bool(ok(value))

    met = {
        "vs_sslyze": judge(targets["vs_sslyze_wall_>=20x"]["same_targets"], lambda v: v >= TARGET_VS_SSLYZE),
        "vs_testssl": judge(targets["vs_testssl_wall_>=100x"]["same_targets"], lambda v: v >= TARGET_VS_TESTSSL),
        "cpu_per_verdict": judge(targets["cpu_us_per_verdict_<=50"], lambda v: v <= TARGET_CPU_US_PER_VERDICT),
    }
    verdict_word = {True: "met", False: "MISSED", None: "not measured"}

    floor_path = work / "runs" / "floor.json"
    floor = json.loads(floor_path.read_text(encoding="utf-8")) if floor_path.exists() else None

    profile = {}
    pdir = work / "profile"
    for name in ("strace-c.txt", "perf-stat.txt", "perf-dso.txt", "perf-report.txt"):
        if (pdir / name).exists():
            profile[name] = (pdir / name).read_text(encoding="utf-8", errors="replace")

    for r in bw.values():
        if r:
            r.pop("norm", None)
    result = {"meta": meta, "versions": versions, "bleedwatch": bw, "peers": peers,
              "comparisons": comparisons, "floor": floor, "targets": targets, "targets_met": met, "profile": profile}
    out_prefix.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    # Markdown.
    lines = [f"# bleedwatch scan benchmark, {meta['stamp']}", ""]
    lines.append(f"Machine: {meta['nproc']} CPUs, {meta['cpu_model']}, Linux {meta['kernel']}; "
                 f"load average before {meta['load_before']}, after {meta['load_after']}.")
    lines.append(f"Targets: {meta['n_nginx']} nginx endpoints (127.1.X.Y:443, ssl_protocols {meta.get('nginx_protocols')}) + {meta['n_lab']} vulnerable lab "
                 f"endpoints (127.2.0.Z:443) = {meta['total']}. bleedwatch runs: {repeat} per set, median wall shown; "
                 f"testssl.sh {meta['testssl_jobs']} at a time.")
    lines.append("")
    lines.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()))
    lines.append("")
    lines.append("| tool | endpoints | wall s | verdicts/s | CPU s (user + sys) | µs CPU/verdict | servers' CPU s | bleedwatch faster (wall, same targets) | CPU ratio (same targets) | vuln / safe / error | right |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")

    def md_row(r, comp=None):
        c = r["counts"]
        wall_ratio = comp.get("wall_ratio_same_targets") if comp else None
        cpu_ratio = comp.get("cpu_ratio_same_targets") if comp else None
        labels = {"all": "bleedwatch, all targets", "all+tls12": "bleedwatch --versions tls1.2, all targets"}
        name = r["tool"] if r["tool"] != "bleedwatch" else labels.get(r["set"], f"bleedwatch, {r['set']} sample")
        return (f"| {name} | {r['endpoints']} | {fmt(r['wall_s'], 3)} | {fmt(r['verdicts_per_s'])} | {fmt(r['cpu_s'], 3)} ({fmt(r['user_s'], 2)} u + {fmt(r['sys_s'], 2)} s) | "
                f"{fmt(r['cpu_us_per_verdict'], 0)} | {fmt(r['server_cpu_s'], 2)} | {fmt(wall_ratio) + '×' if wall_ratio else '–'} | "
                f"{fmt(cpu_ratio) + '×' if cpu_ratio else '–'} | {c['vulnerable']} / {c['safe']} / {c['error'] + c['missing']} | "
                f"{r['agree_with_truth']}/{r['endpoints']} |")

    if full:
        lines.append(md_row(full))
    if bw.get("all+tls12"):
        lines.append(md_row(bw["all+tls12"]))
    for tool in ("nmap", "sslyze", "testssl"):
        if bw.get(tool):
            lines.append(md_row(bw[tool]))
        if tool in peers:
            lines.append(md_row(peers[tool], next(c for c in comparisons if c["peer"] == tool)))
    lines.append("")
    if full:
        lines.append(f"bleedwatch, all {full['endpoints']} endpoints: walls {full['runs_wall_s']} s, CPU {full['runs_cpu_s']} s; "
                     f"{full['connections']} connections ({full['connections'] / max(full['endpoints'], 1):.2f} per endpoint), "
                     f"{fmt(full['cpu_us_per_connection'], 0)} µs CPU per connection; precise verdicts {full['precise_verdicts']}.")
    one = bw.get("all+tls12")
    if one:
        lines.append(f"bleedwatch --versions tls1.2, all endpoints: walls {one['runs_wall_s']} s, CPU {one['runs_cpu_s']} s; "
                     f"{one['connections']} connections, {fmt(one['cpu_us_per_connection'], 0)} µs CPU per connection.")
    if floor and full and full["connections"]:
        lines.append(f"Kernel floor on this machine (floor.py, one connection at a time to the nginx endpoints): "
                     f"bare connect+close {fmt(floor['bare']['sys_us_per_connection'], 0)} µs system CPU per connection, "
                     f"connect + TLS 1.2 ClientHello + read the server's flight + close {fmt(floor['hello']['sys_us_per_connection'], 0)} µs. "
                     f"bleedwatch (all targets): {fmt(full['sys_s'] / full['connections'] * 1e6, 0)} µs system + "
                     f"{fmt(full['user_s'] / full['connections'] * 1e6, 0)} µs user CPU per connection.")
    for c in comparisons:
        rng = c.get("wall_ratio_same_targets_range")
        if rng:
            lines.append(f"- vs {c['peer']}, same {c['endpoints']} targets: {fmt(c.get('wall_ratio_same_targets'))}× with bleedwatch's "
                         f"median run, {fmt(rng[0])}× to {fmt(rng[1])}× over its {len(bw[c['peer']]['runs_wall_s'])} runs.")
        lines.append(f"- vs {c['peer']}: bleedwatch on the full set is {fmt(c.get('wall_ratio_vs_full_run'))}× the peer's "
                     f"verdicts/s and uses {fmt(c.get('cpu_ratio_vs_full_run'))}× less CPU per verdict.")
    lines.append("")
    lines.append(f"Targets: ≥ 20× sslyze wall (same targets): {fmt(targets['vs_sslyze_wall_>=20x']['same_targets'])}× → "
                 f"{verdict_word[met['vs_sslyze']]}; ≥ 100× testssl.sh: {fmt(targets['vs_testssl_wall_>=100x']['same_targets'])}× → "
                 f"{verdict_word[met['vs_testssl']]}; ≤ 50 µs CPU/verdict: {fmt(targets['cpu_us_per_verdict_<=50'], 0)} µs → "
                 f"{verdict_word[met['cpu_per_verdict']]}.")
    lines.append("")
    for tool, p in list(peers.items()) + [(f"bleedwatch-{k}", v) for k, v in bw.items() if v]:
        if p["disagreements"]:
            lines.append(f"Wrong or missing answers from {tool}:")
            for d in p["disagreements"][:12]:
                lines.append(f"- {d['address']}: expected {d['expected']}, got {d['got']} {('(' + d['why'] + ')') if d.get('why') else ''}")
            if len(p["disagreements"]) > 12:
                lines.append(f"- … and {len(p['disagreements']) - 12} more")
    md = "\n".join(lines) + "\n"
    out_prefix.with_suffix(".md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
