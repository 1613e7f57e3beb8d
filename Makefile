# The two commands of the README, plus conveniences. Every target installs what it needs.
.PHONY: demo demo-engine test bench bench-peers bench-pagecache clean

demo:
	bash scripts/demo.sh

demo-engine:
	bash scripts/demo-engine.sh

test:
	bash scripts/test.sh

bench:
	cargo bench -p lcfs-benches

# File-level workloads on lcfs and its peers (kernel overlayfs, fuse-overlayfs, btrfs, vfs),
# interleaved and repeated, on one loop-mounted scratch file system (REPEAT=5 by default).
bench-peers:
	bash scripts/bench/peers.sh

# The page cache of 20 layers reading one 256 MiB file, lcfs against kernel overlayfs (root).
bench-pagecache:
	bash scripts/bench/pagecache.sh

clean:
	cargo clean

# The end-to-end runs with real engines (root; installs and fetches what it needs): Docker 28 on
# containerd with lcfs as its snapshotter, and Docker 20.10 with lcfs as a graph-driver plugin.
# Pick with E2E_ROUTES="containerd plugin", E2E_DRIVER=lcfs|overlay2|overlayfs|baseline
# (bash scripts/e2e/run.sh --help). See docs/runtime.md.
.PHONY: e2e-docker
e2e-docker:
	bash scripts/e2e/run.sh

# The original LCFS benchmarks through real engines (root; installs and fetches what it needs):
# lcfs as containerd snapshotter (Docker 28) and as graph-driver plugin (Docker 20.10) against
# overlay2, fuse-overlayfs, vfs and containerd's overlayfs; pull, build, create/rm, commit,
# page cache. REPEAT=3 by default; QUICK=1 for a smoke run (bash scripts/bench/docker.sh --help).
# Results in target/bench-docker/. Not part of `make test`.
.PHONY: bench-docker
bench-docker:
	bash scripts/bench/docker.sh
