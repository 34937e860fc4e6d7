//! The verified bytes of a payload: after the pass that hashes it
//! (`Patch::verify_sections`), the sections a decoder reads a second time, hashed
//! again and compared with that pass ([`Verified`], [`VerifiedSection`]), so that
//! storage which serves other bytes the second time is caught before the output is
//! committed.

use std::io::{self, Read};

use crate::digest::Hasher;
use crate::posread::Section;

/// The sections of a payload whose hash passed, with each section's digest from that
/// pass (`Patch::verify_sections`).
pub(crate) struct Verified {
    /// (offset into the payload, length, SHA-256) of each section, in payload order.
    pub(crate) sections: Vec<(u64, u64, deltaapply_format::Sha256Digest)>,
}

impl Verified {
    /// A reader over section `k`, read by `inner` (which must read exactly that
    /// section's bytes), that hashes what it reads, for a decoder.
    pub(crate) fn section<'f>(
        &self,
        k: usize,
        inner: impl FnOnce(u64, u64) -> Section<'f>,
    ) -> VerifiedSection<'f> {
        let (offset, len, expected) = self.sections[k];
        VerifiedSection {
            inner: inner(offset, len),
            len,
            expected,
            hasher: Hasher::new(),
            head: [0; FRAME_HEAD],
            head_len: 0,
            head_pos: 0,
        }
    }
}

/// Bytes of a section's start kept for the frame check (`check_frame`): the longest zstd frame header
/// it needs (magic, descriptor, window descriptor, dictionary ID, content size).
const FRAME_HEAD: usize = 18;

/// A section read a second time, for a decoder: it hashes every byte it reads from the
/// file, and [`VerifiedSection::confirm`], once the decoder has read it all, compares
/// that with the digest of the verification pass. Its first bytes can be looked at
/// before the decoder reads them ([`VerifiedSection::peek`]), so the frame header
/// checked is the one decoded.
pub(crate) struct VerifiedSection<'f> {
    inner: Section<'f>,
    len: u64,
    expected: deltaapply_format::Sha256Digest,
    hasher: Hasher,
    head: [u8; FRAME_HEAD],
    head_len: usize,
    head_pos: usize,
}

impl VerifiedSection<'_> {
    /// The section's first bytes (all of them if it is shorter than [`FRAME_HEAD`]),
    /// which reading then returns first. Only before the first read.
    pub(crate) fn peek(&mut self) -> io::Result<&[u8]> {
        debug_assert_eq!(self.hasher.len(), 0, "peek before reading");
        let want = (self.len.min(FRAME_HEAD as u64)) as usize;
        while self.head_len < want {
            let n = match self.inner.read(&mut self.head[self.head_len..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.hasher
                .update(&self.head[self.head_len..self.head_len + n]);
            self.head_len += n;
        }
        Ok(&self.head[..self.head_len])
    }

    /// Checks that the whole section was read and hashes as it did when verified;
    /// the problem, if not.
    pub(crate) fn confirm(self, name: &str) -> Result<(), String> {
        let read = self.hasher.len();
        let digest = self.hasher.finish();
        if read != self.len || digest != self.expected {
            return Err(format!(
                "the {name} changed after it was verified: the decoder read {read} bytes \
                 hashing to {digest}, the verified {} bytes hash to {}; the patch file is \
                 being modified or its storage returns inconsistent data",
                self.len, self.expected
            ));
        }
        Ok(())
    }
}

impl Read for VerifiedSection<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.head_pos < self.head_len {
            let n = buf.len().min(self.head_len - self.head_pos);
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
