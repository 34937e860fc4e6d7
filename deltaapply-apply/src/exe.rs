//! The executable transform of bsdiff patches (`method_flags` bit 2, patch-v1 §5.2.6):
//! the old file filtered block by block as the decoder reads it, and the decoded
//! output inverted block by block on its way to the sink. One block of each, at most
//! [`BLOCK_LEN`] bytes, is all the memory it adds (inside the fixed allowance of §4).

use std::fs::File;
use std::path::Path;

use deltaapply_format::exe::{BLOCK_LEN, Direction, Range, Span, code_block, span_at};

use crate::Error;
use crate::posread::read_exact_at;

/// Where the output goes after the inverse: the applier's staged, hashed output.
pub(crate) trait ByteSink {
    /// Takes the next output bytes.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error>;
    /// Bytes taken so far.
    fn written(&self) -> u64;
}

/// The old file as the transform sees it: positioned reads of its filtered bytes.
pub(crate) struct FilteredOld<'a> {
    file: &'a File,
    path: &'a Path,
    ranges: &'a [Range],
    size: u64,
    /// The last block read, filtered, and where it is.
    block: Vec<u8>,
    span: Option<Span>,
}

impl<'a> FilteredOld<'a> {
    pub(crate) fn new(file: &'a File, path: &'a Path, ranges: &'a [Range], size: u64) -> Self {
        FilteredOld {
            file,
            path,
            ranges,
            size,
            block: Vec::with_capacity(BLOCK_LEN as usize),
            span: None,
        }
    }

    /// Fills `buf` with the filtered bytes from `pos` (the caller checked the bounds).
    pub(crate) fn read_exact_at(&mut self, mut buf: &mut [u8], mut pos: u64) -> Result<(), Error> {
        let io_err = |source| Error::SourceIo {
            path: self.path.to_path_buf(),
            source,
        };
        while !buf.is_empty() {
            let span = match self.span {
                Some(s) if s.start <= pos && pos < s.end => s,
                _ => span_at(self.ranges, pos, self.size),
            };
            let n = ((span.end - pos) as usize).min(buf.len());
            let (head, rest) = buf.split_at_mut(n);
            match span.coded {
                None => read_exact_at(self.file, head, pos).map_err(io_err)?,
                Some((filter, at)) => {
                    if self.span != Some(span) {
                        self.span = None;
                        self.block.resize((span.end - span.start) as usize, 0);
                        read_exact_at(self.file, &mut self.block, span.start).map_err(io_err)?;
                        code_block(filter, &mut self.block, at, Direction::Forward);
                        self.span = Some(span);
                    }
                    let from = (pos - span.start) as usize;
                    head.copy_from_slice(&self.block[from..from + n]);
                }
            }
            buf = rest;
            pos += n as u64;
        }
        Ok(())
    }
}

/// The decoder's output on its way to the sink, with the transform inverted on the
/// new file's ranges (or passed through, without a transform).
pub(crate) struct Output<'s, S: ByteSink> {
    sink: &'s mut S,
    ranges: &'s [Range],
    /// Bytes the decoder produced (the sink may lag by one block).
    written: u64,
    size: u64,
    block: Vec<u8>,
    span: Option<Span>,
}

impl<'s, S: ByteSink> Output<'s, S> {
    pub(crate) fn new(sink: &'s mut S, ranges: &'s [Range], size: u64) -> Self {
        Output {
            written: sink.written(),
            sink,
            ranges,
            size,
            block: Vec::new(),
            span: None,
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Takes decoded bytes (the caller keeps within the target size).
    pub(crate) fn write(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        if self.ranges.is_empty() {
            self.written += bytes.len() as u64;
            return self.sink.put(bytes);
        }
        while !bytes.is_empty() {
            let span = match self.span {
                Some(s) => s,
                None => span_at(self.ranges, self.written, self.size),
            };
            let n = ((span.end - self.written) as usize).min(bytes.len());
            let (head, rest) = bytes.split_at(n);
            match span.coded {
                None => self.sink.put(head)?,
                Some((filter, at)) => {
                    self.span = Some(span);
                    self.block.extend_from_slice(head);
                    if self.written + n as u64 == span.end {
                        code_block(filter, &mut self.block, at, Direction::Inverse);
                        self.sink.put(&self.block)?;
                        self.block.clear();
                        self.span = None;
                    }
                }
            }
            self.written += n as u64;
            bytes = rest;
        }
        Ok(())
    }

    /// Passes on a block left incomplete (only when the output falls short of the
    /// target size, which the caller then rejects).
    pub(crate) fn finish(self) -> Result<(), Error> {
        if !self.block.is_empty() {
            self.sink.put(&self.block)?;
        }
        Ok(())
    }
}
