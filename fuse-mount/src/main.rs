//! `lcfs`: format, mount, check and drive an lcfs image (docs/cli.md).
//!
//! Every error names what failed and what to do; the exit status is 1 on error, 2 on a usage
//! error, and `lcfs fsck` exits 4 when it finds issues. The code is the crate's library
//! (src/lib.rs).

use lcfs_fuse::cli;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lcfs: {e:#}");
            if e.downcast_ref::<cli::UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}
