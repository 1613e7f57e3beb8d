#!/usr/bin/env python3
"""Tabulates a `make bench-peers` run: medians per workload and peer, ratios to kernel overlayfs,
and lcfs against the goals of issue 7. stdlib only; draws a PNG chart when matplotlib imports.

  report.py OUTDIR      reads OUTDIR/samples.csv and OUTDIR/meta.txt, writes OUTDIR/results.md
                        (and OUTDIR/chart.png), prints the markdown
"""
import csv
import os
import statistics
import sys

BASE = "overlay"
# (key, label, goal for lcfs / overlay or None)
WORKLOADS = [
    ("layers-create", "create {LAYERS} layers (children of the image)", 1.0),
    ("layers-remove", "remove those {LAYERS} layers", None),
    ("untar", "untar the rootfs tarball into a new empty layer", 1.5),
    ("append", "append a line to each of the {IMAGE_FILES} inherited image files", 0.1),
    ("small-create", "create {SMALL_FILES} small files (1 KiB, 100 per directory)", 2.0),
    ("small-stat", "stat those {SMALL_FILES} files", 2.0),
    ("small-unlink", "unlink those {SMALL_FILES} files (and their directories)", 2.0),
    ("read2", "warm reads: read every image file, second pass", 1.1),
    ("read1", "read every image file, first pass (for information)", None),
]


def fmt_s(x):
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_r(x):
    if x >= 10:
        return f"{x:.0f}x"
    if x >= 0.1:
        return f"{x:.2f}x"
    return f"{x:.3f}x"


def main(out):
    meta = {}
    with open(os.path.join(out, "meta.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    samples = {}
    loads = []
    with open(os.path.join(out, "samples.csv")) as f:
        for row in csv.DictReader(f):
            samples.setdefault((row["workload"], row["peer"]), []).append(float(row["seconds"]))
            loads.append(float(row["load1"]))
    peers = meta.get("PEERS", "").split()
    med = {k: statistics.median(v) for k, v in samples.items()}

    lines = []
    w = lines.append
    w(f"Measured {meta.get('DATE', '?')} with `{meta.get('COMMAND', '?')}`, "
      f"{meta.get('REPEATS_DONE', '?')} repetitions (peers round-robin within each; medians).")
    w("")
    w(f"- Machine: {meta.get('MACHINE', '?')}")
    w(f"- Load average (1, 5, 15 min): {meta.get('LOAD_START', '?')} at start, "
      f"{meta.get('LOAD_END', '?')} at end; 1-min load at the measurements "
      + (f"{min(loads):.2f} to {max(loads):.2f} (median {statistics.median(loads):.2f})" if loads else "?"))
    w(f"- Scratch: {meta.get('SCRATCH', '?')}")
    w(f"- Image: {meta.get('IMAGE', '?')}")
    w(f"- Rootfs tarball: {meta.get('ROOTFS', '?')}")
    w(f"- lcfs: {meta.get('LCFS_VERSION', '?')}")
    w("")
    head = ["workload"] + peers + ["goal (lcfs / overlay)", "lcfs vs goal"]
    w("| " + " | ".join(head) + " |")
    w("|" + " --- |" * len(head))
    chart = []
    for key, label, goal in WORKLOADS:
        if not any((key, p) in med for p in peers):
            continue
        label = label.format(**{k: (f"{int(v):,}" if v.isdigit() else v) for k, v in meta.items()})
        base = med.get((key, BASE))
        cells = []
        ratios = {}
        for p in peers:
            m = med.get((key, p))
            if m is None:
                cells.append("-")
                continue
            if base:
                ratios[p] = m / base
                cells.append(f"{fmt_s(m)} s ({fmt_r(m / base)})")
            else:
                cells.append(f"{fmt_s(m)} s")
        verdict = "-"
        if goal is not None and "lcfs" in ratios:
            r = ratios["lcfs"]
            verdict = "met" if r <= goal else f"missed by {r / goal:.1f}x ({fmt_r(r)} against {fmt_r(goal)})"
        goal_s = f"<= {fmt_r(goal)}" if goal is not None else "-"
        w("| " + " | ".join([label] + cells + [goal_s, verdict]) + " |")
        chart.append((key, ratios, goal))
    w("")
    w("Spread (min to max seconds over the repetitions):")
    w("")
    w("| workload | " + " | ".join(peers) + " |")
    w("|" + " --- |" * (len(peers) + 1))
    for key, label, _ in WORKLOADS:
        if not any((key, p) in samples for p in peers):
            continue
        cells = []
        for p in peers:
            v = samples.get((key, p))
            cells.append(f"{fmt_s(min(v))} to {fmt_s(max(v))}" if v else "-")
        w(f"| {key} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    print(text)
    draw(out, peers, chart, meta)


def draw(out, peers, chart, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: no chart)")
        return
    keys = [c[0] for c in chart]
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(1, len(peers))
    for i, p in enumerate(peers):
        xs = [k + (i - (len(peers) - 1) / 2) * width for k in range(len(chart))]
        ys = [c[1].get(p, 0) for c in chart]
        ax.bar(xs, ys, width, label=p)
    for k, (_, _, goal) in enumerate(chart):
        if goal is not None:
            ax.hlines(goal, k - 0.45, k + 0.45, colors="black", linestyles="dashed")
    ax.set_yscale("log")
    ax.set_xticks(range(len(chart)))
    ax.set_xticklabels(keys, rotation=20)
    ax.set_ylabel("median time / kernel overlayfs (log)")
    ax.set_title(f"bench-peers {meta.get('DATE', '')}: dashed = lcfs goal")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    path = os.path.join(out, "chart.png")
    fig.savefig(path, dpi=100)
    print(f"chart: {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
