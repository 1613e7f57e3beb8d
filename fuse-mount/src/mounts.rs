//! The lcfs mounts of this machine, from /proc/self/mountinfo: FUSE mounts whose source is
//! `lcfs:IMAGE` (the daemon names its mounts so; `grep lcfs: /proc/mounts` lists them).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Undoes the octal escapes of mountinfo (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b, octal) {
            (b'\\', Some(d)) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The source name of the mounts of `image`.
pub fn source(image: &std::path::Path) -> String {
    format!("lcfs:{}", image.display())
}

/// The mount points of lcfs mounts in `mountinfo` text.
pub fn parse(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut fields = right.split(' ');
            let fstype = fields.next()?;
            let source = fields.next()?;
            let mountpoint = left.split(' ').nth(4)?;
            let lcfs = fstype.starts_with("fuse") && source.starts_with("lcfs:");
            lcfs.then(|| PathBuf::from(unescape(mountpoint)))
        })
        .collect()
}

/// The mount points of every lcfs mount.
pub fn lcfs_mounts() -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    Ok(parse(&text))
}

/// The mount point `given`, or the only lcfs mount when none is given.
pub fn choose(given: Option<&std::path::Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return path
            .canonicalize()
            .with_context(|| format!("mount point {} does not exist", path.display()));
    }
    let mounts = lcfs_mounts()?;
    match mounts.as_slice() {
        [] => bail!("no lcfs mount found: start one with `lcfs mount` (or name it with --mount)"),
        [one] => Ok(one.clone()),
        many => bail!(
            "{} lcfs mounts ({}): say which with --mount MOUNTPOINT",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lcfs_mounts_and_unescapes_their_paths() {
        let text = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - fuse lcfs:/img rw\n\
                    37 35 98:0 / /mnt/x rw - ext4 /dev/sda rw\n\
                    38 35 98:0 / /mnt/y rw - fuse /img rw\n";
        assert_eq!(parse(text), vec![PathBuf::from("/mnt/a b")]);
    }
}
