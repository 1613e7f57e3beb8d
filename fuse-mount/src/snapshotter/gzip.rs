//! The differ's gzip writer: the fastest deflate level, except where the data does not
//! compress, which it stores.
//!
//! A container's new layer is often mostly data that deflate cannot shrink (compressed files,
//! random bytes, media). Level 1 still searches it for matches, at about 47 MB/s here, and its
//! codes make such data 5.5% larger; deflate's stored blocks cost a copy and the crc. So the
//! input is taken in windows of [`WINDOW`] bytes. After a compressed window the stream is
//! flushed to a byte boundary (a sync flush) and the window's ratio decides: above
//! [`STORE_ABOVE`] of its size, the next windows go out as stored blocks written here; after
//! [`PROBE_AFTER`] stored windows a fresh compressor takes one window to see whether the data
//! changed.
//!
//! Invariants:
//! - the output is one gzip member (RFC 1952) whose crc32 and length are those of every byte
//!   written, and one deflate stream (RFC 1951) whose only final block is its last;
//! - a compressor is left only after a sync flush (byte-aligned, its blocks complete, none
//!   final), and a new one is started for the next compressed window: no back-reference ever
//!   reaches over data it did not see.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Input bytes between two decisions.
pub const WINDOW: u64 = 1 << 20;
/// A window that compressed to more than this share of its size is followed by stored ones.
pub const STORE_ABOVE: f64 = 0.97;
/// Stored windows before the next compressed probe.
pub const PROBE_AFTER: u32 = 8;
/// Output gathered before it goes to the inner writer.
const OUT_BYTES: usize = 256 << 10;
/// gzip header: magic, deflate, no flags, no time, no extra flags, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Largest stored block (RFC 1951: a 16-bit length).
const STORED_MAX: usize = 65_535;

enum Mode {
    /// A raw deflate stream at level 1; `total_out` where the window began.
    Compressed { deflate: Box<Compress>, window_out: u64 },
    /// Stored blocks; how many windows so far.
    Stored { windows: u32 },
}

pub struct AdaptiveGzip<W: Write> {
    inner: W,
    mode: Mode,
    crc: Crc,
    out: Vec<u8>,
    /// Input bytes taken in the current window.
    window_in: u64,
}

fn compressor() -> Mode {
    Mode::Compressed {
        deflate: Box::new(Compress::new(Compression::fast(), false)),
        window_out: 0,
    }
}

impl<W: Write> AdaptiveGzip<W> {
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        Ok(AdaptiveGzip {
            inner,
            mode: compressor(),
            crc: Crc::new(),
            out: Vec::with_capacity(OUT_BYTES * 2),
            window_in: 0,
        })
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.out.len() >= OUT_BYTES {
            self.inner.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Runs `deflate` over `input` with `flush` until it took all of it and, for a flush, gave
    /// everything out.
    fn deflate(
        out: &mut Vec<u8>,
        deflate: &mut Compress,
        mut input: &[u8],
        flush: FlushCompress,
    ) -> io::Result<Vec<u8>> {
        let mut full = Vec::new();
        loop {
            if out.capacity() - out.len() < OUT_BYTES / 4 {
                out.reserve(OUT_BYTES);
            }
            let before_in = deflate.total_in();
            let (len, spare) = (out.len(), out.capacity() - out.len());
            let status = deflate
                .compress_vec(input, out, flush)
                .map_err(io::Error::other)?;
            let took = usize::try_from(deflate.total_in() - before_in).unwrap_or(usize::MAX);
            input = input.get(took..).unwrap_or_default();
            // Output that filled all the room may have more behind it.
            let filled = out.len() - len == spare;
            if out.len() >= OUT_BYTES {
                full.append(out);
            }
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                FlushCompress::None => input.is_empty(),
                _ => input.is_empty() && !filled,
            };
            if done {
                return Ok(full);
            }
        }
    }

    /// Sends what `deflate` gathered past the output buffer.
    fn run(&mut self, input: &[u8], flush: FlushCompress) -> io::Result<()> {
        if let Mode::Compressed { deflate, .. } = &mut self.mode {
            let full = Self::deflate(&mut self.out, deflate, input, flush)?;
            if !full.is_empty() {
                self.inner.write_all(&full)?;
            }
        }
        Ok(())
    }

    /// Appends `data` as non-final stored blocks.
    fn store(&mut self, data: &[u8]) -> io::Result<()> {
        for block in data.chunks(STORED_MAX) {
            let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
            self.out.push(0);
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&(!len).to_le_bytes());
            self.out.extend_from_slice(block);
            self.spill()?;
        }
        Ok(())
    }

    /// The end of a window: choose how the next one goes.
    fn decide(&mut self) -> io::Result<()> {
        let took = std::mem::take(&mut self.window_in);
        let next = match &mut self.mode {
            Mode::Compressed { .. } => {
                self.run(&[], FlushCompress::Sync)?;
                let Mode::Compressed {
                    deflate,
                    window_out,
                } = &mut self.mode
                else {
                    return Ok(());
                };
                let gave = deflate.total_out() - *window_out;
                *window_out = deflate.total_out();
                (gave as f64 > took as f64 * STORE_ABOVE).then_some(Mode::Stored { windows: 0 })
            }
            Mode::Stored { windows } => {
                *windows += 1;
                (*windows >= PROBE_AFTER).then(compressor)
            }
        };
        if let Some(mode) = next {
            self.mode = mode;
        }
        Ok(())
    }

    /// Ends the member (the last block, crc32 and length) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        match self.mode {
            Mode::Compressed { .. } => self.run(&[], FlushCompress::Finish)?,
            // An empty final stored block.
            Mode::Stored { .. } => self.out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]),
        }
        self.inner.write_all(&self.out)?;
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for AdaptiveGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = WINDOW - self.window_in;
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let (now, _) = buf.split_at(take);
        self.crc.update(now);
        match self.mode {
            Mode::Compressed { .. } => self.run(now, FlushCompress::None)?,
            Mode::Stored { .. } => self.store(now)?,
        }
        self.window_in += take as u64;
        if self.window_in >= WINDOW {
            self.decide()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Bytes deflate cannot shrink (xorshift).
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.extend_from_slice(&seed.to_le_bytes());
        }
        v.truncate(len);
        v
    }

    fn text(len: usize) -> Vec<u8> {
        let line = b"usr/lib/x86_64-linux-gnu/libexample.so.1: the same words again and again\n";
        line.iter().copied().cycle().take(len).collect()
    }

    fn gzip(data: &[u8], piece: usize) -> Vec<u8> {
        let mut gz = AdaptiveGzip::new(Vec::new()).expect("header");
        for chunk in data.chunks(piece) {
            gz.write_all(chunk).expect("write");
        }
        gz.finish().expect("finish")
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn noise_is_stored_not_grown() {
        // Level 1 alone makes noise 5.5% larger; stored, only the first window and the probes
        // (2 of 16 here) are, and the rest costs a few bytes a block.
        let data = noise(16 << 20, 7);
        let blob = gzip(&data, 100_000);
        assert_eq!(gunzip(&blob), data);
        let limit = data.len() + data.len() / 100;
        assert!(blob.len() < limit, "{} bytes of noise took {}", data.len(), blob.len());
    }

    #[test]
    fn text_after_noise_is_compressed_again_from_the_next_probe() {
        let mut data = noise(2 << 20, 9);
        data.extend(text(20 << 20));
        let blob = gzip(&data, 65_536);
        assert_eq!(gunzip(&blob), data);
        // 2 MiB of noise and at most PROBE_AFTER MiB of text stored, the rest compressed.
        let limit = (2 + PROBE_AFTER as usize + 1) << 20;
        assert!(blob.len() < limit, "blob of {} bytes, over {limit}", blob.len());
    }

    #[test]
    fn compressible_data_stays_compressed_and_odd_sizes_round_trip() {
        let data = text((5 << 20) + 12_345);
        let blob = gzip(&data, 4097);
        assert_eq!(gunzip(&blob), data);
        assert!(blob.len() < data.len() / 20, "text compressed to {} bytes", blob.len());
        for len in [0usize, 1, 4096, WINDOW as usize, WINDOW as usize + 1] {
            let data = noise(len, len as u64 + 1);
            assert_eq!(gunzip(&gzip(&data, 65_536)), data, "{len} bytes");
        }
    }
}

