//! The BSDIFF40 writer: our bsdiff-class matcher's segments (the same ones the bsdiff
//! method codes), as bsdiff 4.x's 24-byte control records, diff bytes and extra bytes,
//! each stream compressed with bzip2 at block size 9 as bsdiff does. Dense clusters of
//! differences go to the extra stream as literals, as in the bsdiff method. The output
//! depends only on the inputs: bzip2 and the matcher are deterministic.

use std::io::{self, Write};

use bzip2::Compression;
use bzip2::write::BzEncoder;
use deltaapply::bsdiff40::{Control, Header};

use crate::matcher::{self, Emit};
use crate::methods::literal_clusters;
use crate::suffix::SuffixIndex;
use crate::{DiffError, Settings};

/// Makes the BSDIFF40 patch from `old` to `new`.
pub fn encode(old: &[u8], new: &[u8], settings: &Settings) -> Result<Vec<u8>, DiffError> {
    let index = SuffixIndex::build(old, settings.threads)?;
    Ok(encode_with(&index, old, new)?)
}

/// [`encode`] with the suffix index of `old` already built.
pub fn encode_with(index: &SuffixIndex<'_>, old: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    let mut w = Streams {
        old,
        new,
        control: BzEncoder::new(Vec::new(), Compression::best()),
        diff: BzEncoder::new(Vec::new(), Compression::best()),
        extra: BzEncoder::new(Vec::new(), Compression::best()),
        buf: vec![0u8; 64 << 10],
        pending: None,
        error: None,
    };
    matcher::diff(index, old, new, &mut w);
    if let Some(op) = w.pending.take() {
        w.write_control(op)?;
    }
    if let Some(e) = w.error {
        return Err(e);
    }
    let control = w.control.finish()?;
    let diff = w.diff.finish()?;
    let extra = w.extra.finish()?;
    let header = Header::encode(control.len() as u64, diff.len() as u64, new.len() as u64)
        .ok_or_else(too_large)?;
    let mut out = Vec::with_capacity(header.len() + control.len() + diff.len() + extra.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&control);
    out.extend_from_slice(&diff);
    out.extend_from_slice(&extra);
    Ok(out)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a length does not fit BSDIFF40's 63-bit integers",
    )
}

struct Streams<'a> {
    old: &'a [u8],
    new: &'a [u8],
    control: BzEncoder<Vec<u8>>,
    diff: BzEncoder<Vec<u8>>,
    extra: BzEncoder<Vec<u8>>,
    buf: Vec<u8>,
    /// The last record, held back so that a following record producing nothing is
    /// folded into its seek.
    pending: Option<Control>,
    error: Option<io::Error>,
}

impl Streams<'_> {
    fn write_control(&mut self, c: Control) -> io::Result<()> {
        let bytes = c.encode().ok_or_else(too_large)?;
        self.control.write_all(&bytes)
    }

    fn push(&mut self, c: Control) -> io::Result<()> {
        match &mut self.pending {
            Some(prev) if c.add == 0 && c.copy == 0 => {
                prev.seek = prev.seek.checked_add(c.seek).ok_or_else(too_large)?;
                Ok(())
            }
            pending => match pending.replace(c) {
                Some(prev) => self.write_control(prev),
                None => Ok(()),
            },
        }
    }

    /// `new[new_pos..][..len] - old[old_pos..][..len]` to the diff stream.
    fn write_diff(&mut self, new_pos: usize, old_pos: usize, len: usize) -> io::Result<()> {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(self.buf.len());
            let new = &self.new[new_pos + done..new_pos + done + n];
            let old = &self.old[old_pos + done..old_pos + done + n];
            for ((d, &a), &b) in self.buf.iter_mut().zip(new).zip(old) {
                *d = a.wrapping_sub(b);
            }
            self.diff.write_all(&self.buf[..n])?;
            done += n;
        }
        Ok(())
    }

    fn emit(
        &mut self,
        new_pos: usize,
        old_pos: usize,
        diff_len: usize,
        extra_len: usize,
        seek: i64,
    ) -> io::Result<()> {
        let mut start = 0;
        for (cs, ce) in literal_clusters(
            &self.new[new_pos..new_pos + diff_len],
            &self.old[old_pos..old_pos + diff_len],
        ) {
            let run = (ce - cs) as u64;
            self.push(Control {
                add: (cs - start) as u64,
                copy: run,
                seek: run as i64,
            })?;
            self.write_diff(new_pos + start, old_pos + start, cs - start)?;
            self.extra
                .write_all(&self.new[new_pos + cs..new_pos + ce])?;
            start = ce;
        }
        self.push(Control {
            add: (diff_len - start) as u64,
            copy: extra_len as u64,
            seek,
        })?;
        self.write_diff(new_pos + start, old_pos + start, diff_len - start)?;
        let at = new_pos + diff_len;
        self.extra.write_all(&self.new[at..at + extra_len])
    }
}

impl Emit for Streams<'_> {
    fn segment(
        &mut self,
        new_pos: usize,
        old_pos: usize,
        diff_len: usize,
        extra_len: usize,
        seek: i64,
    ) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.emit(new_pos, old_pos, diff_len, extra_len, seek) {
            self.error = Some(e);
        }
    }
}
