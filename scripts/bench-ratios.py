#!/usr/bin/env python3
"""Prints the medians of the criterion benches of benches/ and the ratios that check the O(1)
claims (issue "Engine spine", item 6). Reads target/criterion/*/*/new/estimates.json."""
import json, os, sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"

def median(group, bench):
    path = os.path.join(root, group, bench, "new", "estimates.json")
    with open(path) as f:
        est = json.load(f)["median"]
    return est["point_estimate"], est["confidence_interval"]["lower_bound"], est["confidence_interval"]["upper_bound"]

def show(group, bench):
    m, lo, hi = median(group, bench)
    print(f"| {group}/{bench} | {m/1e3:.1f} us | [{lo/1e3:.1f}, {hi/1e3:.1f}] |")
    return m

print("| bench | median | 95% CI of median |\n| --- | --- | --- |")
values = {}
for group in sorted(os.listdir(root)):
    gdir = os.path.join(root, group)
    if not os.path.isdir(gdir) or group == "report":
        continue
    for bench in sorted(os.listdir(gdir)):
        bdir = os.path.join(gdir, bench)
        if bench == "report" or not os.path.isdir(bdir):
            continue
        for sub in sorted(os.listdir(bdir)):
            if os.path.exists(os.path.join(bdir, sub, "new", "estimates.json")):
                values[f"{group}/{bench}/{sub}"] = show(group, f"{bench}/{sub}")
        if os.path.exists(os.path.join(bdir, "new", "estimates.json")):
            values[f"{group}/{bench}"] = show(group, bench)

def ratio(what, a, b, goal):
    if a in values and b in values:
        r = values[a] / values[b]
        verdict = "meets" if r <= goal else "MISSES"
        print(f"| {what} | {r:.2f}x | goal <= {goal}x: {verdict} |")

print("\n| ratio | value | goal |\n| --- | --- | --- |")
for op in ("create", "commit", "remove"):
    ratio(f"{op}: 100,000 files depth 100 / 10 files depth 1",
          f"layer/{op}/files100000-depth100", f"layer/{op}/files10-depth1", 1.5)
for what in ("committed", "writable-child"):
    ratio(f"lookup+read {what}: depth 100 / depth 1",
          f"lookup-read/{what}/depth100", f"lookup-read/{what}/depth1", 1.2)
ratio("remove: 10,000 private blocks / 10", "remove-private/blocks10000", "remove-private/blocks10", 1e9)
ratio("diff: 10 changes in 100,000 files / 10 changes in 100 files",
      "diff/changes/files100000-changes10", "diff/changes/files100-changes10", 2.0)
ratio("diff: 10,000 changes / 10 changes, 100,000 files (grows with the change)",
      "diff/changes/files100000-changes10000", "diff/changes/files100000-changes10", 1e9)
