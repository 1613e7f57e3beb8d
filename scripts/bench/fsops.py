#!/usr/bin/env python3
"""The file-level workloads of `make bench-peers` (scripts/bench/peers.sh), python3 stdlib only.

Each timed command prints `NAME SECONDS` lines on stdout, timing only its loop of system calls
(interpreter start-up and the checks after the loop are not timed), and exits 1 if the check
after the loop finds the file system did not do what was asked.

  fsops.py pick STAGE N IMAGE_LIST TAR_LIST   choose N regular files of the tree STAGE (evenly
                                              spaced in sorted path order): IMAGE_LIST gets
                                              "size<TAB>path" per file, TAR_LIST the files and
                                              every directory above them, for `tar -T`
  fsops.py append ROOT IMAGE_LIST             append one line to every listed file
  fsops.py small ROOT N                       create N small files (100 per directory), stat
                                              them, unlink them: three timings
  fsops.py read ROOT IMAGE_LIST               read every listed file twice (4 KiB-aligned
                                              128 KiB buffer): both passes timed
"""
import mmap
import os
import sys
import time

LINE = b"appended by lcfs bench-peers\n"
SMALL_SIZE = 1024
PER_DIR = 100


def load_list(path):
    out = []
    with open(path, "rb") as f:
        for raw in f:
            size, name = raw.rstrip(b"\n").split(b"\t", 1)
            out.append((int(size), name))
    return out


def pick(stage, n, image_list, tar_list):
    stage = os.fsencode(stage)
    files = []
    for dirpath, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if (st.st_mode & 0o170000) == 0o100000:
                files.append((os.path.relpath(full, stage), st.st_size))
    files.sort()
    if len(files) < n:
        sys.exit(f"pick: the tree has {len(files)} regular files, fewer than {n}")
    chosen = [files[(i * len(files)) // n] for i in range(n)]
    dirs = set()
    for rel, _ in chosen:
        d = os.path.dirname(rel)
        while d:
            dirs.add(d)
            d = os.path.dirname(d)
    with open(image_list, "wb") as f:
        for rel, size in chosen:
            f.write(b"%d\t%s\n" % (size, rel))
    with open(tar_list, "wb") as f:
        for rel in sorted(dirs) + [rel for rel, _ in chosen]:
            f.write(b"./" + rel + b"\n")
    total = sum(size for _, size in chosen)
    print(f"{n:,} of its {len(files):,} regular files (evenly spaced in path order) and the "
          f"{len(dirs):,} directories above them, {total / 1048576:.1f} MiB")


def append(root, image_list):
    root = os.fsencode(root)
    entries = [(size, os.path.join(root, rel)) for size, rel in load_list(image_list)]
    t0 = time.perf_counter()
    for _, path in entries:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, LINE)
        os.close(fd)
    t = time.perf_counter() - t0
    bad = [p for size, p in entries if os.lstat(p).st_size != size + len(LINE)]
    print(f"append {t:.6f}")
    if bad:
        sys.exit(f"append: {len(bad)} files have the wrong size afterwards, e.g. {bad[0]!r}")


def small(root, n):
    base = os.path.join(root, "bench-small")
    ndirs = (n + PER_DIR - 1) // PER_DIR
    dirs = [os.path.join(base, "d%03d" % d) for d in range(ndirs)]
    paths = [os.path.join(dirs[i // PER_DIR], "f%05d" % i) for i in range(n)]
    data = b"s" * SMALL_SIZE
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    t0 = time.perf_counter()
    os.mkdir(base)
    for d in dirs:
        os.mkdir(d)
    for p in paths:
        fd = os.open(p, flags, 0o644)
        os.write(fd, data)
        os.close(fd)
    t1 = time.perf_counter()
    total = 0
    for p in paths:
        total += os.lstat(p).st_size
    t2 = time.perf_counter()
    for p in paths:
        os.unlink(p)
    for d in dirs:
        os.rmdir(d)
    os.rmdir(base)
    t3 = time.perf_counter()
    print(f"create {t1 - t0:.6f}")
    print(f"stat {t2 - t1:.6f}")
    print(f"unlink {t3 - t2:.6f}")
    if total != n * SMALL_SIZE:
        sys.exit(f"small: stat saw {total} bytes, not {n * SMALL_SIZE}")
    if os.path.lexists(base):
        sys.exit("small: the directory is still there after the unlinks")


def read(root, image_list):
    root = os.fsencode(root)
    entries = [(size, os.path.join(root, rel)) for size, rel in load_list(image_list)]
    expect = sum(size for size, _ in entries)
    buf = mmap.mmap(-1, 128 * 1024)  # page-aligned, so 4 KiB-aligned
    view = memoryview(buf)

    def one_pass():
        total = 0
        t0 = time.perf_counter()
        for _, path in entries:
            fd = os.open(path, os.O_RDONLY)
            while True:
                got = os.readv(fd, [view])
                if got == 0:
                    break
                total += got
            os.close(fd)
        return time.perf_counter() - t0, total

    first, total1 = one_pass()
    second, total2 = one_pass()
    print(f"read1 {first:.6f}")
    print(f"read2 {second:.6f}")
    if total1 != expect or total2 != expect:
        sys.exit(f"read: read {total1} and {total2} bytes, expected {expect}")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "pick" and len(args) == 4:
        pick(args[0], int(args[1]), args[2], args[3])
    elif cmd == "append" and len(args) == 2:
        append(*args)
    elif cmd == "small" and len(args) == 2:
        small(args[0], int(args[1]))
    elif cmd == "read" and len(args) == 2:
        read(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
