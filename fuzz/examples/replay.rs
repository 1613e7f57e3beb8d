//! Runs inputs through a target's check outside libFuzzer, with ordinary panics and
//! backtraces: `cargo run --release --example replay -- <ops|image|records|tar|graphdriver|snapshotter> <file or dir>...`.
//! For `ops` it also counts the crashes the inputs recovered from, so a corpus can be checked
//! for how much of it exercises recovery; for `tar`, how many inputs applied whole and the
//! errors the others met.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let target = args
        .next()
        .ok_or("usage: replay <ops|image|records|tar|graphdriver|snapshotter> <file or dir>...")?;
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in args {
        let path = Path::new(&arg);
        if path.is_dir() {
            for entry in std::fs::read_dir(path)? {
                files.push(entry?.path());
            }
        } else {
            files.push(path.to_owned());
        }
    }
    files.sort();
    let (mut crashes, mut with_crash) = (0u64, 0u64);
    let mut tar_outcomes: std::collections::BTreeMap<String, u64> = Default::default();
    for file in &files {
        let data = std::fs::read(file)?;
        match target.as_str() {
            "ops" => {
                let n = lcfs_fuzz::run_ops(&data);
                crashes += u64::from(n);
                with_crash += u64::from(n > 0);
            }
            "image" => lcfs_fuzz::image::check(&data),
            "records" => lcfs_fuzz::records::check(&data),
            "graphdriver" => lcfs_fuzz::graphdriver::check(&data),
            "snapshotter" => lcfs_fuzz::snapshotter::check(&data),
            "tar" => {
                let outcome = lcfs_fuzz::tar::run(&data).map_or_else(|e| e, |_| "applied".into());
                *tar_outcomes.entry(outcome).or_default() += 1;
            }
            other => return Err(format!("unknown target {other}").into()),
        }
    }
    println!("{} inputs of {target} passed", files.len());
    for (outcome, count) in &tar_outcomes {
        println!("{count:6} {outcome}");
    }
    if target == "ops" {
        println!("{with_crash} of them crashed the device at least once ({crashes} crashes)");
    }
    Ok(())
}
