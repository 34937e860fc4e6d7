//! Positioned reads: several readers of one file at once, without a shared offset.

use std::fs::File;
use std::io::{self, Read};

/// A positioned read (no shared file offset).
#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// A positioned read (no shared file offset).
#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Fills `buf` from `offset` of `file`; a file that ends first is an error.
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "old file shrank while reading",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A bounded window of the patch file read with positioned reads, so several
/// streams can read the same file at once without sharing a file offset.
pub(crate) struct Section<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl<'f> Section<'f> {
    /// The `len` bytes of `file` from `start`.
    pub(crate) fn new(file: &'f File, start: u64, len: u64) -> Section<'f> {
        Section {
            file,
            pos: start,
            end: start.saturating_add(len),
        }
    }
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = read_at(self.file, &mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "patch file shrank while reading",
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}
