#!/usr/bin/env python3
"""Tabulates a `make bench-docker` run: medians per test and configuration, ratios to the same
engine's overlay2, the skipped configurations and failed tests; draws create.png (create and
remove time by container count) and build.png (build time by configuration) when matplotlib
imports. stdlib otherwise.

  docker-report.py OUTDIR [RUNDIR...]
      reads OUTDIR/{samples.csv,meta.txt,skipped.txt,failures.txt}, writes OUTDIR/results.md (and
      the PNGs), prints the markdown. Each RUNDIR is another run's output directory (same
      settings) whose samples count as further repetitions.
"""
import csv
import os
import statistics
import sys

ENGINES = [("d28", "Docker 28.5.2 + containerd 2.1.9"), ("d20", "Docker 20.10.24 (bookworm)")]
LABELS = {
    "pull-busybox": "pull busybox (1 layer, 2 MB)",
    "pull-debian": "pull debian minbase (1 layer)",
    "pull-layers": "pull layers (busybox + 5 COPY layers)",
    "build": "docker build",
    "commit": "docker commit ({COMMIT_MB} MiB written)",
    "mem-cache": "{MEM_CONTAINERS} containers read one {MEM_MB} MiB file: Cached growth, /proc/meminfo (MiB)",
    "mem-charged": "... page cache of the containers' cgroups + FUSE backing files (MiB)",
    "mem-rss": "storage daemon RSS (MiB; 0 = kernel)",
}


def label(test, meta):
    if test.startswith("create-"):
        return f"create {test[7:]} containers"
    if test.startswith("rm-"):
        return f"remove {test[3:]} containers"
    if test == "cd-total":
        return "create + remove, all counts (sum)"
    if test == "build":
        return "docker build (" + ("zlib: gcc .debs + configure/make/test/install" if meta.get("BUILD") == "zlib" else meta.get("BUILD", "")) + ")"
    return LABELS.get(test, test).format(**{k: meta.get(k, "?") for k in ("COMMIT_MB", "MEM_MB", "MEM_CONTAINERS")})


def fmt(x):
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def order_key(test):
    head = ["pull-busybox", "pull-debian", "pull-layers", "build"]
    if test in head:
        return (head.index(test), 0)
    if test.startswith("create-") or test.startswith("rm-"):
        return (10, int(test.split("-")[1]) * 2 + (1 if test.startswith("rm-") else 0))
    tail = ["cd-total", "commit", "mem-cache", "mem-charged", "mem-rss"]
    return (20 + (tail.index(test) if test in tail else 9), 0)


def main(out, more):
    meta = {}
    with open(os.path.join(out, "meta.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    samples = {}
    loads = []
    per_rep = {}
    rows = []
    reps = 0
    for i, d in enumerate([out] + more):
        with open(os.path.join(d, "samples.csv")) as f:
            run_rows = list(csv.DictReader(f))
        for row in run_rows:
            row["rep"] = str(int(row["rep"]) + reps)
        reps = max([reps] + [int(r["rep"]) for r in run_rows])
        rows.extend(run_rows)
        if i > 0:
            other = {}
            with open(os.path.join(d, "meta.txt")) as f:
                for line in f:
                    if "=" in line:
                        k, v = line.rstrip("\n").split("=", 1)
                        other[k] = v
            meta["DATE"] += " and " + other.get("DATE", "?")
            meta["LOAD_START"] += " / " + other.get("LOAD_START", "?")
            meta["LOAD_END"] += " / " + other.get("LOAD_END", "?")
    meta["REPEAT"] = str(reps)
    for row in rows:
        v = float(row["value"])
        samples.setdefault((row["test"], row["config"]), []).append(v)
        loads.append(float(row["load1"]))
        t = row["test"]
        if t.startswith("create-") or t.startswith("rm-"):
            key = (row["rep"], row["config"])
            per_rep[key] = per_rep.get(key, 0.0) + v
    for (rep, config), v in per_rep.items():
        samples.setdefault(("cd-total", config), []).append(v)
    med = {k: statistics.median(v) for k, v in samples.items()}
    configs = meta.get("CONFIGS", "").split()
    seen = {c for (_, c) in samples}
    tests = sorted({t for (t, _) in samples}, key=order_key)

    lines = []
    lines.append(f"Measured {meta.get('DATE', '?')} on {meta.get('MACHINE', '?')}; load average "
                 f"{meta.get('LOAD_START', '?')} at start, {meta.get('LOAD_END', '?')} at end"
                 + (f" (1-minute load during samples: median {statistics.median(loads):.2f}, max {max(loads):.2f})" if loads else "") + ".")
    lines.append(f"Medians of {meta.get('REPEAT', '?')} repetition(s), configurations interleaved; seconds unless "
                 "said otherwise; in parentheses the ratio to the same engine's overlay2 (lower is better).")
    lines.append(f"Data of every daemon: {meta.get('SCRATCH', '?')}. lcfs: {meta.get('LCFS_VERSION', '-')}.")
    lines.append("")
    for prefix, name in ENGINES:
        cols = [c for c in configs if c.startswith(prefix + "-") and c in seen]
        if not cols:
            continue
        base = f"{prefix}-overlay2"
        lines.append(f"**{name}**")
        lines.append("")
        lines.append("| test | " + " | ".join(c[4:] for c in cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for t in tests:
            cells = []
            for c in cols:
                v = med.get((t, c))
                if v is None:
                    cells.append("-")
                    continue
                b = med.get((t, base))
                if c != base and b and t != "mem-rss":
                    cells.append(f"{fmt(v)} ({v / b:.2f}x)")
                else:
                    cells.append(fmt(v))
            lines.append(f"| {label(t, meta)} | " + " | ".join(cells) + " |")
        lines.append("")
        for c in cols:
            e = meta.get(f"ENGINE_{c}")
            if e:
                lines.append(f"- {c}: {e}")
        lines.append("")
    if int(meta.get("REPEAT", "1")) > 1:
        key_tests = [t for t in ("pull-debian", "pull-layers", "build", "cd-total", "commit", "mem-charged") if t in tests]
        lines.append("Spread, min to max over the repetitions:")
        lines.append("")
        lines.append("| configuration | " + " | ".join(key_tests) + " |")
        lines.append("|---|" + "---:|" * len(key_tests))
        for c in configs:
            if c not in seen:
                continue
            cells = []
            for t in key_tests:
                v = samples.get((t, c))
                cells.append(f"{fmt(min(v))} to {fmt(max(v))}" if v else "-")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
    skipped = []
    p = os.path.join(out, "skipped.txt")
    if os.path.exists(p):
        skipped = [l.rstrip("\n").split("\t", 1) for l in open(p) if l.strip()]
    for c in configs:
        if c not in seen and not any(s[0] == c for s in skipped):
            reasons = []
            for rep in range(1, int(meta.get("REPEAT", "1")) + 1):
                sp = os.path.join(out, "status", f"{c}-{rep}")
                if os.path.exists(sp):
                    reasons.append(open(sp).read().strip())
            skipped.append([c, "; ".join(sorted(set(reasons))) or "no samples"])
    if skipped:
        lines.append("Skipped: " + "; ".join(f"{c} ({why})" for c, why in skipped) + ".")
        lines.append("")
    p = os.path.join(out, "failures.txt")
    if os.path.exists(p):
        fails = [l.strip() for l in open(p) if l.strip()]
        if fails:
            lines.append("Failed tests (rep, configuration, test, last line of its log):")
            lines.append("")
            lines.extend(f"- {f}" for f in fails)
            lines.append("")
    charts = draw(out, med, configs, seen, meta)
    if charts:
        lines.append("Charts: " + ", ".join(charts) + ".")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    print(text)


def draw(out, med, configs, seen, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    counts = [int(n) for n in meta.get("COUNTS", "").split()]
    cols = [c for c in configs if c in seen]
    if counts and any((f"create-{counts[0]}", c) in med for c in cols):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, kind, title in ((axes[0], "create", "docker create (Engine API)"), (axes[1], "rm", "docker rm")):
            for c in cols:
                ys = [med.get((f"{kind}-{n}", c)) for n in counts]
                if all(y is not None for y in ys):
                    ax.plot(counts, ys, marker="o", label=c, linestyle="-" if "lcfs" in c else "--")
            ax.set_title(title)
            ax.set_xlabel("containers")
            ax.set_ylabel("seconds (median)")
            ax.set_xticks(counts)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "create.png"), dpi=80)
        plt.close(fig)
        made.append(os.path.join(out, "create.png"))
    bcols = [c for c in cols if ("build", c) in med]
    if bcols:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        vals = [med[("build", c)] for c in bcols]
        colors = ["tab:red" if "lcfs" in c else ("tab:blue" if c.startswith("d28") else "tab:gray") for c in bcols]
        ax.bar(range(len(bcols)), vals, color=colors)
        ax.set_xticks(range(len(bcols)))
        ax.set_xticklabels(bcols, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"docker build ({meta.get('BUILD', '')})")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "build.png"), dpi=80)
        plt.close(fig)
        made.append(os.path.join(out, "build.png"))
    return made


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
