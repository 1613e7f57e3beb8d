# The two commands of the README, plus conveniences. Every target installs what it needs.
.PHONY: demo test bench clean

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench:
	cargo bench -p lcfs-benches

clean:
	cargo clean
