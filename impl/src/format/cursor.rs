//! Bounded little-endian cursors for the hand-written record codecs.
//!
//! Invariants: a `Reader` never reads past its slice (every getter returns `Err` instead);
//! a `Writer` never writes past its slice (it reports overflow, which the encoder asserts
//! against, since sizes are checked before encoding).

use crate::error::{Error, Result};

/// Reads little-endian integers and byte strings from a slice, with bounds checks.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    /// The block being decoded, for error messages.
    block: u64,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which came from block `block`.
    pub fn new(buf: &'a [u8], block: u64) -> Self {
        Self { buf, at: 0, block }
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| self.short("length overflow"))?;
        let out = self.buf.get(self.at..end).ok_or_else(|| self.short("record runs past its end"))?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A corruption error at the reader's block.
    pub fn short(&self, what: &str) -> Error {
        Error::corrupt(self.block, what.to_string())
    }
}

/// Writes little-endian integers and byte strings into a slice.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// A writer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, at: 0 }
    }

    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Appends `bytes`; panics if they do not fit (sizes are checked before encoding).
    pub fn bytes(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        match self.buf.get_mut(self.at..end) {
            Some(dst) => dst.copy_from_slice(bytes),
            None => panic_overflow(end),
        }
        self.at = end;
    }

    pub fn u8(&mut self, v: u8) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }
}

#[expect(clippy::panic, reason = "encoders check sizes first: overflow is a programmer error")]
fn panic_overflow(end: usize) -> ! {
    panic!("record encoder overflow: {end} bytes do not fit")
}
