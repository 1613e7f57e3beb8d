//! Layer blobs in containerd's content store on disk, as the differ reads them: where a blob
//! of a digest lives, which media types it decompresses and how (gzip with flate2, zstd with
//! ruzstd: both pure Rust), and a reader that counts and hashes what passes through it (so a
//! blob is verified while it streams into the engine).
//!
//! containerd's local content store keeps a committed blob at
//! `ROOT/io.containerd.content.v1.content/blobs/ALGORITHM/HEX` (ROOT is containerd's `root`),
//! written once and never changed; a proxy differ is given only the blob's descriptor.
//!
//! Invariants:
//! - only `sha256:` + 64 lowercase hex digits names a blob here: the digest is a path
//!   component, so nothing else may reach the file system;
//! - a media type this module does not list is not ours ([`Compression::of`] is `None`), so
//!   the differ declines it and containerd's own differ takes it;
//! - a compressed stream is read whole, as containerd's decompressors read it: every gzip
//!   member, every zstd frame (skippable frames skipped, content checksums checked); a zstd
//!   decode that stops making progress is an error, never a loop.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use ruzstd::frame::ReadFrameHeaderError;
use ruzstd::frame_decoder::{BlockDecodingStrategy, FrameDecoder, FrameDecoderError};
use sha2::{Digest, Sha256};

/// The blobs of containerd's content store, under its root.
pub const BLOBS_DIR: &str = "io.containerd.content.v1.content/blobs/sha256";

/// The media type of what the differ applied: an uncompressed OCI layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The media type of a gzip-compressed OCI layer: what a Diff writes unless asked otherwise.
pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Layer media types that are plain tars (OCI, OCI non-distributable, Docker, Docker foreign).
const PLAIN: [&str; 4] = [
    LAYER_TAR,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
];

/// Layer media types that are gzip-compressed tars.
const GZIP: [&str; 4] = [
    LAYER_TAR_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Layer media types that are zstd-compressed tars (OCI, and the Docker name containerd
/// knows).
const ZSTD: [&str; 3] = [
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// One or more gzip members (Go's reader, containerd's, takes several too).
    Gzip,
    /// One or more zstd frames.
    Zstd,
}

impl Compression {
    /// The compression of a layer of `media_type`; `None` for what this differ does not
    /// apply (zstd, encrypted layers, anything that is not a layer).
    pub fn of(media_type: &str) -> Option<Compression> {
        if PLAIN.contains(&media_type) {
            Some(Compression::None)
        } else if GZIP.contains(&media_type) {
            Some(Compression::Gzip)
        } else if ZSTD.contains(&media_type) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// `raw` decompressed.
    pub fn reader<'a>(self, raw: impl Read + 'a) -> Box<dyn Read + 'a> {
        match self {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(ZstdFrames {
                source: BufReader::new(raw),
                decoder: FrameDecoder::new(),
                in_frame: false,
            }),
        }
    }
}

/// Zstandard frames one after another, decoded (ruzstd's `StreamingDecoder` reads one frame).
struct ZstdFrames<R> {
    source: R,
    decoder: FrameDecoder,
    /// A frame was started and not yet drained.
    in_frame: bool,
}

fn invalid(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, format!("zstd: {what}"))
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                let n = self.read_frame(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.in_frame = false;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.init(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let length = u64::from(length);
                    let mut skipped = (&mut self.source).take(length);
                    if std::io::copy(&mut skipped, &mut std::io::sink())? != length {
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(invalid(e)),
            }
        }
    }
}

impl<R: BufRead> ZstdFrames<R> {
    /// Bytes of the current frame into `buf`; 0 once it is decoded, drained and checked.
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let decoder = &mut self.decoder;
        while decoder.can_collect() < buf.len() && !decoder.is_finished() {
            let (before, collectable) = (decoder.bytes_read_from_source(), decoder.can_collect());
            let wanted = buf.len() - decoder.can_collect();
            decoder
                .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                .map_err(invalid)?;
            let progress = decoder.bytes_read_from_source() != before
                || decoder.can_collect() != collectable
                || decoder.is_finished();
            if !progress {
                return Err(invalid("the frame stops making progress"));
            }
        }
        let n = decoder.read(buf)?;
        if n == 0 {
            let (given, computed) = (
                decoder.get_checksum_from_data(),
                decoder.get_calculated_checksum(),
            );
            if let (Some(given), Some(computed)) = (given, computed) {
                if given != computed {
                    return Err(invalid("a frame's content checksum does not match"));
                }
            }
        }
        Ok(n)
    }
}

/// Why a digest names no blob of this differ.
#[derive(Debug, PartialEq, Eq)]
pub enum BadDigest {
    /// A well-formed digest of another algorithm (e.g. `sha512:`).
    Algorithm(String),
    /// Not `ALGORITHM:ENCODED` with the encoding its algorithm has.
    Malformed,
}

/// The hex part of a `sha256:` digest.
pub fn sha256_hex(digest: &str) -> Result<&str, BadDigest> {
    let (algorithm, hex) = digest.split_once(':').ok_or(BadDigest::Malformed)?;
    if algorithm != "sha256" {
        let known = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        return Err(if known {
            BadDigest::Algorithm(algorithm.to_string())
        } else {
            BadDigest::Malformed
        });
    }
    let is_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex.len() != 64 || !is_hex {
        return Err(BadDigest::Malformed);
    }
    Ok(hex)
}

/// Where the content store under `root` keeps the blob of sha256 `hex`.
pub fn path(root: &Path, hex: &str) -> PathBuf {
    root.join(BLOBS_DIR).join(hex)
}

/// The bytes that passed a [`Tallied`] reader: how many, and their sha256.
#[derive(Clone, Default)]
pub struct Tally {
    hash: Sha256,
    pub bytes: u64,
}

impl Tally {
    /// Adds `bytes`.
    pub fn add(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// `sha256:HEX` of the bytes so far.
    pub fn digest(&self) -> String {
        let sum = self.hash.clone().finalize();
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256:");
        for byte in sum {
            out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
        }
        out
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A reader that adds every byte it passes to a [`Tally`].
pub struct Tallied<'a, R> {
    pub inner: R,
    pub tally: &'a mut Tally,
}

impl<R: Read> Read for Tallied<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tally.add(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// As a writer: adds every byte it writes on.
impl<W: Write> Write for Tallied<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.tally.add(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn only_sha256_digests_name_blobs() {
        let hex = EMPTY.trim_start_matches("sha256:");
        assert_eq!(sha256_hex(EMPTY), Ok(hex));
        assert_eq!(
            sha256_hex("sha512:abcd"),
            Err(BadDigest::Algorithm("sha512".into()))
        );
        for bad in [
            "",
            "sha256",
            "sha256:",
            &EMPTY.to_uppercase(),
            &format!("{EMPTY}0"),
            &EMPTY[..70],
            "sha256:../../../../etc/passwd",
            &format!("sha256:{}/", &hex[..63]),
            "SHA256:abc",
            ":abc",
        ] {
            assert_eq!(sha256_hex(bad), Err(BadDigest::Malformed), "{bad:?}");
        }
        assert_eq!(
            path(Path::new("/var/lib/containerd"), hex),
            Path::new("/var/lib/containerd/io.containerd.content.v1.content/blobs/sha256")
                .join(hex)
        );
    }

    #[test]
    fn layer_media_types_have_their_compression_and_others_none() {
        for plain in PLAIN {
            assert_eq!(Compression::of(plain), Some(Compression::None));
        }
        for gzip in GZIP {
            assert_eq!(Compression::of(gzip), Some(Compression::Gzip));
        }
        for zstd in ZSTD {
            assert_eq!(Compression::of(zstd), Some(Compression::Zstd));
        }
        for other in [
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/vnd.oci.image.manifest.v1+json",
            "",
        ] {
            assert_eq!(Compression::of(other), None, "{other}");
        }
    }

    #[test]
    fn a_tally_counts_and_hashes_what_passes() {
        let mut tally = Tally::default();
        assert_eq!(tally.digest(), EMPTY);
        let mut reader = Tallied {
            inner: &b"abc"[..],
            tally: &mut tally,
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert_eq!(out, b"abc");
        assert_eq!(tally.bytes, 3);
        assert_eq!(
            tally.digest(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn gzip_blobs_of_several_members_decompress_whole() {
        let mut blob = Vec::new();
        for part in [&b"first "[..], b"second"] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).expect("compress");
            blob.extend(gz.finish().expect("finish"));
        }
        let mut out = Vec::new();
        Compression::Gzip
            .reader(&blob[..])
            .read_to_end(&mut out)
            .expect("decompress");
        assert_eq!(out, b"first second");
    }
}

#[cfg(test)]
mod zstd_tests {
    use super::*;

    /// `zstd -c` of "lcfs zstd frame one\n" and of "and frame two\n" (zstd 1.5.4, with
    /// `--check`), and a skippable frame of 3 bytes between them.
    const FRAME_ONE: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0xa1, 0x00, 0x00, 0x6c, 0x63, 0x66, 0x73, 0x20, 0x7a,
        0x73, 0x74, 0x64, 0x20, 0x66, 0x72, 0x61, 0x6d, 0x65, 0x20, 0x6f, 0x6e, 0x65, 0x0a, 0x50,
        0xe3, 0xfc, 0xf7,
    ];
    const SKIPPABLE: &[u8] = &[0x50, 0x2a, 0x4d, 0x18, 0x03, 0x00, 0x00, 0x00, 1, 2, 3];
    const FRAME_TWO: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x71, 0x00, 0x00, 0x61, 0x6e, 0x64, 0x20, 0x66, 0x72,
        0x61, 0x6d, 0x65, 0x20, 0x74, 0x77, 0x6f, 0x0a, 0xfb, 0x80, 0xc5, 0xbc,
    ];

    fn decode(blob: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Compression::Zstd.reader(blob).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn zstd_blobs_of_several_frames_decompress_whole() {
        assert_eq!(
            decode(FRAME_ONE).expect("one frame"),
            b"lcfs zstd frame one\n"
        );
        let blob = [FRAME_ONE, SKIPPABLE, FRAME_TWO].concat();
        assert_eq!(
            decode(&blob).expect("three frames"),
            b"lcfs zstd frame one\nand frame two\n"
        );
        assert_eq!(decode(b"").expect("no frame"), b"");
    }

    #[test]
    fn damaged_zstd_blobs_are_errors() {
        let mut bad_checksum = FRAME_ONE.to_vec();
        *bad_checksum.last_mut().expect("bytes") ^= 1;
        let truncated = &FRAME_ONE[..FRAME_ONE.len() - 6];
        let short_skip = &SKIPPABLE[..9];
        let not_zstd = b"this is not zstd at all";
        for (what, blob) in [
            ("checksum", &bad_checksum[..]),
            ("truncated", truncated),
            ("short skippable frame", short_skip),
            ("not zstd", &not_zstd[..]),
        ] {
            assert!(decode(blob).is_err(), "{what}");
        }
    }
}
