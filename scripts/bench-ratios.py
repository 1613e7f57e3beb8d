#!/usr/bin/env python3
"""Prints the medians of the criterion benches of benches/ (with their 95% confidence
intervals), the throughput of those that declare one, and the ratios that check the O(1) and
cost claims (issue "Engine spine", item 6; issue 7, part 1), as markdown tables.

Reads every target/criterion/**/new/{benchmark,estimates}.json (the latest run of each bench).
Usage: scripts/bench-ratios.py [CRITERION_DIR]"""
import json, os, sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def load(root):
    """{full bench id: (median ns, CI low, CI high, throughput or None)}"""
    found = {}
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)["median"]
        ci = est["confidence_interval"]
        found[bench["full_id"]] = (est["point_estimate"], ci["lower_bound"], ci["upper_bound"],
                                   bench.get("throughput"))
    return found


def duration(ns):
    """A duration in the unit that keeps 3 to 4 significant digits."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            value = ns / scale
            return f"{value:,.{3 if value < 10 else 2 if value < 100 else 1}f} {unit}"
    return f"{ns:.0f} ns"


values = load(root)
print("| bench | median | 95% CI of median |\n| --- | --- | --- |")
for bench in sorted(values):
    m, lo, hi, _ = values[bench]
    print(f"| {bench} | {duration(m)} | [{duration(lo)}, {duration(hi)}] |")

print("\n| bench | throughput (median) |\n| --- | --- |")
for bench in sorted(values):
    m, _, _, throughput = values[bench]
    if not throughput:
        continue
    if "Bytes" in throughput:
        print(f"| {bench} | {throughput['Bytes'] / 2**20 / (m / 1e9):,.0f} MiB/s |")
    elif "Elements" in throughput:
        print(f"| {bench} | {duration(m / throughput['Elements'])} per item |")


def ratio(what, a, b, goal=None):
    """One row: the median of a over the median of b, against `goal` (<=) if there is one."""
    if a not in values or b not in values:
        return
    r = values[a][0] / values[b][0]
    verdict = "-" if goal is None else f"<= {goal}x: {'met' if r <= goal else 'missed'}"
    print(f"| {what} | {r:.2f}x | {verdict} |")


print("\n| ratio | value | goal |\n| --- | --- | --- |")
for op, what in (("create", "clone (create)"), ("commit", "commit"), ("remove", "remove")):
    ratio(f"{what}: parent of 100,000 files / 10 files, depth 1",
          f"layer/{op}/files100000-depth1", f"layer/{op}/files10-depth1", 1.5)
    ratio(f"{what}: depth 100 / depth 1, 10 files",
          f"layer/{op}/files10-depth100", f"layer/{op}/files10-depth1", 1.5)
    ratio(f"{what}: 100,000 files depth 100 / 10 files depth 1",
          f"layer/{op}/files100000-depth100", f"layer/{op}/files10-depth1", 1.5)
ratio("commit of a layer that wrote 100,000 files / 10 files (written back before)",
      "layer-commit-own/files100000", "layer-commit-own/files10", 1.5)
for what in ("committed", "writable-child"):
    for depth in (10, 100):
        ratio(f"lookup+read, {what}: depth {depth} / depth 1",
              f"lookup-read/{what}/depth{depth}", f"lookup-read/{what}/depth1", 1.2)
ratio("remove: 10,000 private blocks / 10 (grows with what the layer owns)",
      "remove-private/blocks10000", "remove-private/blocks10")
ratio("diff: 10 changes in 100,000 files / 10 changes in 100 files",
      "diff/changes/files100000-changes10", "diff/changes/files100-changes10", 2.0)
ratio("diff: 10,000 changes / 10 changes, 100,000 files (grows with the change)",
      "diff/changes/files100000-changes10000", "diff/changes/files100000-changes10")
ratio("append to 1,238 files: inherited (copy-on-write) / the layer's own",
      "append/inherited-1238", "append/own-1238")
for bench in ("sequential/write-1GiB", "sequential/read-1GiB", "small-files/create-10000",
              "small-files/stat-10000", "small-files/unlink-10000"):
    ratio(f"{bench}: through the mount / in the engine", f"mount-{bench}", bench)
