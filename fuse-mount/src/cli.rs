//! The command line: parsing and one function per command (docs/cli.md).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use lcfs::{fsck, FileDevice, Fs, MkfsOptions};

use crate::control::{self, DaemonInfo, Request};
use crate::{daemon, mounts};

/// The image `lcfs mount` uses when none is given (created on first use).
pub const DEFAULT_IMAGE: &str = "/var/lib/lcfs/lcfs.img";
/// The mount point `lcfs mount` uses when none is given (created on first use).
pub const DEFAULT_MOUNTPOINT: &str = "/mnt/lcfs";
/// The size of a new image when `--size` is not given.
pub const DEFAULT_SIZE: &str = "8G";

const USAGE: &str = "usage:
  lcfs mkfs [--size 8G] [--label L] [--force] IMAGE     format an image file or block device
  lcfs mount [IMAGE [MOUNTPOINT]] [--foreground]       serve IMAGE (default /var/lib/lcfs/lcfs.img)
        [--snapshotter SOCK] [--graphdriver SOCK]      on MOUNTPOINT (default /mnt/lcfs); also
        [--containerd-root DIR]                        serve containerd's snapshotter and diff
        [--containerd-address SOCK]                    services, or Docker's graph-driver
                                                       plugin API, on SOCK; the differ reads
                                                       layers from the content store of the
                                                       containerd whose root is DIR, and
                                                       writes the layers it computes through
                                                       the containerd listening on SOCK
  lcfs umount [MOUNTPOINT] [--lazy]                    checkpoint, then unmount
  lcfs layer create NAME [--parent P] [--mount M]      a new writable layer (a clone of P)
  lcfs layer commit NAME [--mount M]                   make a layer immutable
  lcfs layer remove NAME [--mount M]                   remove a layer without children
  lcfs layer diff NAME [--mount M]                     changes against the parent (A/C/D)
  lcfs layer list [--mount M]                          every layer
  lcfs stats [--mount M] [--json]                      per layer: size, private bytes, inodes,
                                                       children, reads; the most popular layers
  lcfs gc [--dry-run] [--min-age 1h] [--mount M]       remove orphaned layers and leftovers of
                                                       unlinked-open files
  lcfs fsck [--progress] IMAGE                         check an image that is not mounted
  lcfs help | --help | --version";

/// A command line that does not parse.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{USAGE}", self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Positional arguments and `--flag [value]` options.
#[derive(Debug, Default)]
struct Args {
    positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

/// Options that take a value.
const VALUED: [&str; 9] = [
    "--size",
    "--label",
    "--parent",
    "--mount",
    "--min-age",
    "--snapshotter",
    "--graphdriver",
    "--containerd-root",
    "--containerd-address",
];

impl Args {
    fn parse(args: &[String]) -> Result<Args> {
        let mut out = Args::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if let Some((flag, value)) = arg.split_once('=').filter(|(f, _)| f.starts_with("--")) {
                out.options
                    .push((flag.to_string(), Some(value.to_string())));
            } else if VALUED.contains(&arg.as_str()) {
                let value = iter
                    .next()
                    .ok_or_else(|| usage(format!("{arg} needs a value")))?;
                out.options.push((arg.clone(), Some(value.clone())));
            } else if arg.starts_with("--") {
                out.options.push((arg.clone(), None));
            } else {
                out.positional.push(arg.clone());
            }
        }
        Ok(out)
    }

    fn value(&self, flag: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.as_deref())
    }

    fn flag(&self, flag: &str) -> bool {
        self.options.iter().any(|(f, _)| f == flag)
    }

    /// Refuses options other than `allowed` and more than `max` positional arguments.
    fn only(&self, allowed: &[&str], max: usize) -> Result<()> {
        if let Some((bad, _)) = self
            .options
            .iter()
            .find(|(f, _)| !allowed.contains(&f.as_str()))
        {
            return Err(usage(format!("unknown option {bad}")));
        }
        if self.positional.len() > max {
            return Err(usage(format!(
                "unexpected argument {:?}",
                self.positional.get(max)
            )));
        }
        Ok(())
    }

    fn positional(&self, index: usize, what: &str) -> Result<&str> {
        self.positional
            .get(index)
            .map(String::as_str)
            .ok_or_else(|| usage(format!("missing {what}")))
    }
}

/// Runs the command line `args` (without the program name); returns the exit status.
pub fn run(args: &[String]) -> Result<i32> {
    let Some((command, rest)) = args.split_first() else {
        return Err(usage("no command given"));
    };
    let args = Args::parse(rest)?;
    match command.as_str() {
        "mkfs" => mkfs(&args).map(|()| 0),
        "mount" => mount(&args).map(|()| 0),
        "umount" | "unmount" => umount(&args).map(|()| 0),
        "layer" => layer(&args).map(|()| 0),
        "stats" => stats(&args).map(|()| 0),
        "gc" => gc(&args).map(|()| 0),
        "fsck" => fsck_image(&args),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(0)
        }
        "--version" | "version" => {
            println!("lcfs {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        other => Err(usage(format!("unknown command {other:?}"))),
    }
}

/// The leading decimal number of `text` and the unit after it; `what` and `examples` word the
/// error.
fn number_and_unit<'t>(text: &'t str, what: &str, examples: &str) -> Result<(u64, &'t str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number = digits
        .parse()
        .map_err(|_| usage(format!("bad {what} {text:?} (e.g. {examples})")))?;
    Ok((number, unit))
}

/// A size such as `8G`, `512M`, `100k` or a byte count.
pub fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text, "size", "8G, 512M")?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(usage(format!(
                "bad size unit in {text:?} (use K, M, G or T)"
            )))
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| usage(format!("size {text:?} is too large")))
}

fn mkfs(args: &Args) -> Result<()> {
    args.only(&["--size", "--label", "--force"], 1)?;
    let path = PathBuf::from(args.positional(0, "IMAGE")?);
    let size = parse_size(args.value("--size").unwrap_or(DEFAULT_SIZE))?;
    let label = args.value("--label").unwrap_or("").to_string();
    format_image(&path, size, &label, args.flag("--force"))?;
    println!(
        "lcfs: formatted {} ({} bytes); mount it with `lcfs mount {}`",
        path.display(),
        size,
        path.display()
    );
    Ok(())
}

/// Formats `path` (creating a sparse file of `size` bytes if it is not a block device).
fn format_image(path: &Path, size: u64, label: &str, force: bool) -> Result<()> {
    let exists = path.exists();
    if exists {
        // Refuses an image a daemon holds, and says so.
        let image = daemon::open_image(path)?;
        if !force && Fs::probe(image.device.as_ref()).is_ok() {
            bail!(
                "{} already holds an lcfs filesystem: add --force to erase it",
                path.display()
            );
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let is_device = std::fs::metadata(path)
        .map(|m| !m.is_file())
        .unwrap_or(false);
    let device = if is_device {
        FileDevice::open(path)
    } else {
        FileDevice::create(path, size)
    }
    .with_context(|| format!("cannot create {}", path.display()))?;
    Fs::mkfs(
        Arc::new(device),
        &MkfsOptions {
            label: label.to_string(),
        },
    )
    .map_err(|e| anyhow!("formatting {} failed: {e}", path.display()))
}

fn mount(args: &Args) -> Result<()> {
    args.only(
        &[
            "--foreground",
            "--snapshotter",
            "--graphdriver",
            "--containerd-root",
            "--containerd-address",
        ],
        2,
    )?;
    let containerd_root = match args.value("--containerd-root") {
        None => None,
        Some(_) if args.value("--snapshotter").is_none() => {
            return Err(usage(
                "--containerd-root is for the differ of --snapshotter SOCK",
            ))
        }
        Some(dir) => {
            Some(std::path::absolute(dir).with_context(|| format!("bad --containerd-root {dir}"))?)
        }
    };
    let containerd_address = match args.value("--containerd-address") {
        None => None,
        Some(_) if args.value("--snapshotter").is_none() => {
            return Err(usage(
                "--containerd-address is for the differ of --snapshotter SOCK",
            ))
        }
        Some(sock) => Some(
            std::path::absolute(sock)
                .with_context(|| format!("bad --containerd-address {sock}"))?,
        ),
    };
    let services = daemon::Services {
        snapshotter: args.value("--snapshotter").map(PathBuf::from),
        containerd_root,
        containerd_address,
        graphdriver: args.value("--graphdriver").map(PathBuf::from),
    };
    let image = PathBuf::from(
        args.positional
            .first()
            .map_or(DEFAULT_IMAGE, String::as_str),
    );
    let mountpoint = PathBuf::from(
        args.positional
            .get(1)
            .map_or(DEFAULT_MOUNTPOINT, String::as_str),
    );
    if args.positional.is_empty() && !image.exists() {
        println!(
            "lcfs: creating {} ({DEFAULT_SIZE}, sparse)",
            image.display()
        );
        format_image(&image, parse_size(DEFAULT_SIZE)?, "", false)?;
    }
    if args.positional.len() < 2 && mountpoint == Path::new(DEFAULT_MOUNTPOINT) {
        std::fs::create_dir_all(&mountpoint)
            .with_context(|| format!("cannot create {}", mountpoint.display()))?;
    }
    if args.flag("--foreground") {
        daemon::serve(&image, &mountpoint, &services)
    } else {
        daemon::spawn(&image, &mountpoint, &services)
    }
}

/// Sends `request` to the daemon of `mountpoint` and returns the reply's data.
fn call(mountpoint: &Path, request: &Request) -> Result<serde_json::Value> {
    let (socket, _, _) = control::paths(mountpoint);
    let reply = control::call(&socket, request).map_err(|e| {
        anyhow!(
            "cannot reach the lcfs daemon of {} ({e}): is it mounted? (`grep lcfs: /proc/mounts`)",
            mountpoint.display()
        )
    })?;
    match reply.ok {
        true => Ok(reply.data),
        false => bail!(
            "{}",
            reply
                .error
                .unwrap_or_else(|| "the daemon gave no reason".into())
        ),
    }
}

fn umount(args: &Args) -> Result<()> {
    args.only(&["--lazy", "--mount"], 1)?;
    let given = args
        .positional
        .first()
        .map(PathBuf::from)
        .or_else(|| args.value("--mount").map(PathBuf::from));
    let mountpoint = mounts::choose(given.as_deref())?;
    let (socket, info_path, _) = control::paths(&mountpoint);
    let info: Option<DaemonInfo> = std::fs::read(&info_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let lazy = args.flag("--lazy");
    match control::call(&socket, &Request::Umount { lazy }) {
        Ok(reply) if reply.ok => {}
        Ok(reply) => bail!("{}", reply.error.unwrap_or_default()),
        Err(_) if mounts::lcfs_mounts()?.contains(&mountpoint) => {
            crate::sys::unmount(&mountpoint, true)
                .with_context(|| format!("cannot detach {}", mountpoint.display()))?;
            println!(
                "lcfs: the daemon of {} was gone; detached the mount",
                mountpoint.display()
            );
            return Ok(());
        }
        Err(_) => bail!("nothing is mounted on {}", mountpoint.display()),
    }
    if let Some(info) = info {
        wait_exit(info.pid, Duration::from_secs(120))?;
    }
    println!("lcfs: unmounted {}", mountpoint.display());
    Ok(())
}

/// Waits until process `pid` is gone (the daemon released the image).
fn wait_exit(pid: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    while proc_dir.exists() {
        let zombie = std::fs::read_to_string(proc_dir.join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false);
        if zombie {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon (pid {pid}) has not exited after {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn layer(args: &Args) -> Result<()> {
    args.only(&["--parent", "--mount"], 2)?;
    let action = args.positional(0, "a layer command (create, commit, remove, diff, list)")?;
    let mountpoint = mounts::choose(args.value("--mount").map(Path::new))?;
    let name = || args.positional(1, "layer NAME").map(str::to_string);
    let request = match action {
        "create" => Request::LayerCreate {
            name: name()?,
            parent: args.value("--parent").map(str::to_string),
        },
        "commit" => Request::LayerCommit { name: name()? },
        "remove" | "rm" => Request::LayerRemove { name: name()? },
        "diff" => Request::LayerDiff { name: name()? },
        "list" | "ls" => Request::LayerList,
        other => return Err(usage(format!("unknown layer command {other:?}"))),
    };
    let data = call(&mountpoint, &request)?;
    match action {
        "list" | "ls" => print_layers(&data),
        "create" => println!(
            "{}",
            data.get("path")
                .and_then(|p| p.as_str())
                .unwrap_or_default()
        ),
        "commit" => println!("committed {}", name()?),
        "diff" => print_diff(&data),
        _ => println!("removed {}", name()?),
    }
    Ok(())
}

/// One line per change, as `docker diff` prints them: `A /path`, `C /path`, `D /path`.
fn print_diff(data: &serde_json::Value) {
    for change in data["changes"].as_array().into_iter().flatten() {
        println!(
            "{} {}",
            change["kind"].as_str().unwrap_or("?"),
            change["path"].as_str().unwrap_or_default()
        );
    }
}

fn print_layers(data: &serde_json::Value) {
    println!(
        "{:<32} {:>6} {:<10} {:>8}  PARENT",
        "NAME", "ID", "STATE", "CHILDREN"
    );
    for l in data.as_array().into_iter().flatten() {
        println!(
            "{:<32} {:>6} {:<10} {:>8}  {}",
            l["name"].as_str().unwrap_or_default(),
            l["id"].as_u64().unwrap_or(0),
            l["state"].as_str().unwrap_or_default(),
            l["children"].as_u64().unwrap_or(0),
            l["parent"].as_str().unwrap_or("-"),
        );
    }
}

fn stats(args: &Args) -> Result<()> {
    args.only(&["--mount", "--json"], 0)?;
    let mountpoint = mounts::choose(args.value("--mount").map(Path::new))?;
    let data = call(&mountpoint, &Request::Stats)?;
    if args.flag("--json") {
        println!("{data}");
        return Ok(());
    }
    let block = data["block_size"].as_u64().unwrap_or(4096);
    let total = data["blocks_total"].as_u64().unwrap_or(0) * block;
    let free = data["blocks_free"].as_u64().unwrap_or(0) * block;
    println!(
        "image: {} used of {}, {} inodes, checkpoint generation {}",
        human(total - free.min(total)),
        human(total),
        data["inodes"],
        data["generation"]
    );
    println!(
        "{:<24} {:<9} {:>10} {:>10} {:>8} {:>8} {:>8}  PARENT",
        "LAYER", "STATE", "SIZE", "PRIVATE", "INODES", "CHILDREN", "READS"
    );
    let mut layers: Vec<&serde_json::Value> =
        data["layers"].as_array().into_iter().flatten().collect();
    for l in &layers {
        println!(
            "{:<24} {:<9} {:>10} {:>10} {:>8} {:>8} {:>8}  {}",
            l["name"].as_str().unwrap_or_default(),
            l["state"].as_str().unwrap_or_default(),
            human(l["size_bytes"].as_u64().unwrap_or(0)),
            human(l["private_bytes"].as_u64().unwrap_or(0)),
            l["inodes"].as_u64().unwrap_or(0),
            l["children"].as_u64().unwrap_or(0),
            l["reads"].as_u64().unwrap_or(0),
            l["parent"].as_str().unwrap_or("-"),
        );
    }
    let count = |l: &serde_json::Value, key: &str| l[key].as_u64().unwrap_or(0);
    layers.sort_by_key(|l| std::cmp::Reverse((count(l, "reads"), count(l, "children"))));
    let popular: Vec<String> = layers
        .iter()
        .filter(|l| count(l, "reads") + count(l, "children") > 0)
        .take(5)
        .map(|l| {
            let name = l["name"].as_str().unwrap_or_default();
            let (reads, children) = (count(l, "reads"), count(l, "children"));
            format!("{name} ({reads} reads, {children} children)")
        })
        .collect();
    println!(
        "most popular (reads, then children): {}",
        if popular.is_empty() {
            "none yet (no reads, no children)".to_string()
        } else {
            popular.join(", ")
        }
    );
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"B"))
}

/// A duration such as `90`, `30s`, `10m`, `1h` or `2d`, in seconds.
pub fn parse_age(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text, "age", "600, 10m, 1h")?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(usage(format!(
                "bad age unit in {text:?} (use s, m, h or d)"
            )))
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| usage(format!("age {text:?} is too large")))
}

fn gc(args: &Args) -> Result<()> {
    args.only(&["--mount", "--dry-run", "--min-age"], 0)?;
    let mountpoint = mounts::choose(args.value("--mount").map(Path::new))?;
    let dry_run = args.flag("--dry-run");
    let min_age_sec = args.value("--min-age").map(parse_age).transpose()?;
    let data = call(
        &mountpoint,
        &Request::Gc {
            dry_run,
            min_age_sec,
        },
    )?;
    let layers: Vec<&serde_json::Value> = data["layers"].as_array().into_iter().flatten().collect();
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("gc: {verb} {} orphaned layers", layers.len());
    for l in &layers {
        println!(
            "  {:<32} {}",
            l["name"].as_str().unwrap_or_default(),
            l["reason"].as_str().unwrap_or_default()
        );
    }
    if dry_run {
        println!("gc: dry run: nothing was changed (run without --dry-run to remove them)");
    } else {
        println!(
            "gc: swept leftover unlinked files in {} writable layers",
            data["writable_layers_swept"]
        );
    }
    Ok(())
}

/// `lcfs fsck IMAGE`: exit 0 when clean, 4 when issues were found. A progress bar goes to
/// stderr when it is a terminal or with `--progress`; a last line with the time it took,
/// always.
fn fsck_image(args: &Args) -> Result<i32> {
    args.only(&["--progress"], 1)?;
    let path = PathBuf::from(args.positional(0, "IMAGE")?);
    let image = daemon::open_image(&path)?;
    let bar = args.flag("--progress") || std::io::stderr().is_terminal();
    let start = Instant::now();
    let last_drawn = std::sync::Mutex::new(None::<Instant>);
    let progress = move |p: fsck::Progress| {
        if !bar || p.done {
            return;
        }
        let mut last = last_drawn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
        eprint!("\r{}", progress_line(p, start.elapsed()));
        let _ = std::io::stderr().flush();
    };
    let report = fsck::check_with_progress(Arc::clone(&image.device), Arc::new(progress));
    if bar {
        eprint!("\r{:78}\r", "");
    }
    let report = report.map_err(|e| match e {
        lcfs::Error::NotLcfs(why) => anyhow!("{} is not an lcfs image ({why})", path.display()),
        e => anyhow!("fsck of {} stopped: {e}", path.display()),
    })?;
    let blocks = report.node_blocks + report.data_blocks;
    eprintln!(
        "fsck: checked {} in {} blocks in {:.1} s",
        human(blocks * 4096),
        blocks,
        start.elapsed().as_secs_f64()
    );
    println!("{report}");
    Ok(if report.is_clean() { 0 } else { 4 })
}

/// `fsck: [#####.....]  41% 220.0 MiB of 530.1 MiB, 3 s`.
fn progress_line(p: fsck::Progress, elapsed: Duration) -> String {
    const WIDTH: u64 = 30;
    let used = p.blocks_used.max(1);
    // Blocks read again after the cache dropped them may pass the total: hold at 99%.
    let percent = (p.blocks_read.saturating_mul(100) / used).min(99);
    let filled = (percent * WIDTH / 100) as usize;
    format!(
        "fsck: [{}{}] {:>3}% {} of {}, {} s",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled),
        percent,
        human(p.blocks_read.min(used) * 4096),
        human(used * 4096),
        elapsed.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("8G").ok(), Some(8 << 30));
        assert_eq!(parse_size("512M").ok(), Some(512 << 20));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("1GiB").ok(), Some(1 << 30));
        assert!(parse_size("8Q").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("600").ok(), Some(600));
        assert_eq!(parse_age("10m").ok(), Some(600));
        assert_eq!(parse_age("1h").ok(), Some(3600));
        assert_eq!(parse_age("2d").ok(), Some(172_800));
        assert!(parse_age("1y").is_err());
        assert!(parse_age("h").is_err());
    }

    #[test]
    fn the_progress_line_holds_below_100_until_done() {
        let p = fsck::Progress {
            blocks_read: 50,
            blocks_used: 200,
            done: false,
        };
        let line = progress_line(p, Duration::from_secs(3));
        assert!(line.contains(" 25% "), "{line}");
        let over = fsck::Progress {
            blocks_read: 300,
            ..p
        };
        assert!(progress_line(over, Duration::ZERO).contains(" 99% "));
    }

    #[test]
    fn options_and_positionals_separate() {
        let args: Vec<String> = ["create", "c1", "--parent", "base", "--mount=/mnt/x"]
            .map(String::from)
            .to_vec();
        let parsed = Args::parse(&args).unwrap_or_default();
        assert_eq!(parsed.positional, vec!["create", "c1"]);
        assert_eq!(parsed.value("--parent"), Some("base"));
        assert_eq!(parsed.value("--mount"), Some("/mnt/x"));
        assert!(parsed.only(&["--parent"], 2).is_err());
    }
}
