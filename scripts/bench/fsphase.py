#!/usr/bin/env python3
"""fsops.py's small-file loop and warm-read loop, one phase per process, so that a profiler or
fuse-requests.sh can be pointed at one phase (docs/benchmarks.md, "Where the time goes").

  fsphase.py small ROOT create|stat|unlink N   N files of 1 KiB, 100 per directory
  fsphase.py read ROOT LIST PASSES             read the files named in LIST (one path
                                               relative to ROOT a line) PASSES times
Prints microseconds a file for each phase or pass.
"""
import os
import sys
import time

PER_DIR = 100
SMALL_SIZE = 1024


def small(root, phase, n):
    base = os.path.join(root, "bench-small")
    dirs = [os.path.join(base, "d%03d" % d) for d in range((n + PER_DIR - 1) // PER_DIR)]
    paths = [os.path.join(dirs[i // PER_DIR], "f%05d" % i) for i in range(n)]
    data = b"s" * SMALL_SIZE
    t0 = time.perf_counter()
    if phase == "create":
        os.mkdir(base)
        for d in dirs:
            os.mkdir(d)
        for p in paths:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
    elif phase == "stat":
        for p in paths:
            os.lstat(p)
    elif phase == "unlink":
        for p in paths:
            os.unlink(p)
        for d in dirs:
            os.rmdir(d)
        os.rmdir(base)
    else:
        sys.exit(f"unknown phase {phase}")
    dt = time.perf_counter() - t0
    print(f"{phase} {dt:.4f} s {dt / n * 1e6:.1f} us/file")


def read(root, listing, passes):
    with open(listing) as f:
        paths = [os.path.join(root, line.strip()) for line in f if line.strip()]
    for i in range(passes):
        t0 = time.perf_counter()
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            while os.read(fd, 128 * 1024):
                pass
            os.close(fd)
        dt = time.perf_counter() - t0
        print(f"pass{i + 1} {dt:.4f} s {dt / len(paths) * 1e6:.1f} us/file")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "small":
        small(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
