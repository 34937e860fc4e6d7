//! The control stream of a bsdiff patch: a sequence of [`Op`]s, each three LEB128
//! varints (`diff_len`, `extra_len`, zigzag `seek`). Decoding rejects overlong and
//! non-minimal varints, values that overflow, and a stream that ends mid-record.

use std::io::{self, Read};

/// One step of a bsdiff patch: add `diff_len` diff bytes to the old file at the
/// cursor, copy `extra_len` literal bytes, then move the old cursor by `seek`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// Bytes produced as `old[cursor + i] + diff[i]` (wrapping).
    pub diff_len: u64,
    /// Bytes copied from the extra stream.
    pub extra_len: u64,
    /// Signed move of the old-file cursor after this op.
    pub seek: i64,
}

impl Op {
    /// Appends the op's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.diff_len);
        write_varint(out, self.extra_len);
        write_varint(out, zigzag(self.seek));
    }
}

/// Why a control stream cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The underlying stream failed (for a compressed stream: corrupt data).
    #[error("control stream: {0}")]
    Io(#[from] io::Error),
    /// A varint is longer than 10 bytes, overflows 64 bits, or is not minimal.
    #[error("control stream: malformed varint at record {record}")]
    Varint {
        /// Index of the record.
        record: u64,
    },
    /// The stream ended inside a record.
    #[error("control stream ends inside record {record}")]
    Truncated {
        /// Index of the record.
        record: u64,
    },
}

/// Reads [`Op`]s from a byte stream.
pub struct OpReader<R> {
    inner: R,
    record: u64,
}

impl<R: Read> OpReader<R> {
    /// Wraps a reader positioned at the first record.
    pub fn new(inner: R) -> Self {
        OpReader { inner, record: 0 }
    }

    /// Returns the next op, or `None` at a clean end of stream.
    pub fn next_op(&mut self) -> Result<Option<Op>, ControlError> {
        let Some(diff_len) = self.varint(true)? else {
            return Ok(None);
        };
        let extra_len = self.varint(false)?.expect("mid-record EOF is an error");
        let seek = unzigzag(self.varint(false)?.expect("mid-record EOF is an error"));
        self.record += 1;
        Ok(Some(Op {
            diff_len,
            extra_len,
            seek,
        }))
    }

    fn varint(&mut self, eof_ok: bool) -> Result<Option<u64>, ControlError> {
        read_varint(&mut self.inner, eof_ok, self.record)
    }

    /// How many records have been read.
    pub fn records_read(&self) -> u64 {
        self.record
    }

    /// Unwraps the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Reads one minimal LEB128 varint of at most 64 bits. `Ok(None)` is a clean end of
/// stream before its first byte, allowed only when `eof_ok`; `record` is for errors.
fn read_varint(r: &mut impl Read, eof_ok: bool, record: u64) -> Result<Option<u64>, ControlError> {
    let mut value: u64 = 0;
    for i in 0..10u32 {
        let mut b = [0u8; 1];
        let b = loop {
            match r.read(&mut b) {
                Ok(0) => {
                    return if i == 0 && eof_ok {
                        Ok(None)
                    } else {
                        Err(ControlError::Truncated { record })
                    };
                }
                Ok(_) => break b[0],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        if i == 9 && b > 1 {
            return Err(ControlError::Varint { record });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(ControlError::Varint { record });
            }
            return Ok(Some(value));
        }
    }
    Err(ControlError::Varint { record })
}

/// Writes `v` as a minimal LEB128 varint.
pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Expands a zero-run coded diff stream: pairs of varints (zero count, literal count)
/// each followed by that many literal bytes. A pair that expands to nothing is an
/// error (it would let a small stream cost unbounded work), as is a stream that ends
/// inside a pair; [`ZeroRunReader::at_end`] tells whether it ended cleanly.
pub struct ZeroRunReader<R> {
    inner: R,
    zeros: u64,
    literals: u64,
    pairs: u64,
}

impl<R: Read> ZeroRunReader<R> {
    /// Wraps the coded stream.
    pub fn new(inner: R) -> Self {
        ZeroRunReader {
            inner,
            zeros: 0,
            literals: 0,
            pairs: 0,
        }
    }

    /// True when every pair read so far has been fully expanded and the coded stream
    /// has no further byte.
    pub fn at_end(&mut self) -> io::Result<bool> {
        if self.zeros > 0 || self.literals > 0 {
            return Ok(false);
        }
        let mut probe = [0u8; 1];
        Ok(self.inner.read(&mut probe)? == 0)
    }

    /// Unwraps the coded stream.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for ZeroRunReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.zeros == 0 && self.literals == 0 {
            let pair = self.pairs;
            let invalid = |e: ControlError| match e {
                ControlError::Io(e) => e,
                ControlError::Varint { .. } => io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("zero-run coding: malformed varint in pair {pair}"),
                ),
                ControlError::Truncated { .. } => io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("zero-run coding: the stream ends inside pair {pair}"),
                ),
            };
            let Some(zeros) = read_varint(&mut self.inner, true, self.pairs).map_err(invalid)?
            else {
                return Ok(0);
            };
            let literals = read_varint(&mut self.inner, false, self.pairs)
                .map_err(invalid)?
                .expect("mid-pair end of stream is an error");
            if zeros == 0 && literals == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("zero-run coding: pair {} expands to nothing", self.pairs),
                ));
            }
            (self.zeros, self.literals) = (zeros, literals);
            self.pairs += 1;
        }
        if self.zeros > 0 {
            let n = (buf.len() as u64).min(self.zeros) as usize;
            buf[..n].fill(0);
            self.zeros -= n as u64;
            return Ok(n);
        }
        let n = (buf.len() as u64).min(self.literals) as usize;
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "zero-run coding: literals cut short",
            ));
        }
        self.literals -= got as u64;
        Ok(got)
    }
}

/// Longest literal run the writer holds before it writes a pair.
const MAX_LITERAL_RUN: usize = 1 << 16;

/// Codes diff bytes as zero runs and literals (the producer's side of
/// [`ZeroRunReader`]): every zero byte ends a literal run, so literals never hold zeros.
#[derive(Debug, Default)]
pub struct ZeroRunWriter {
    zeros: u64,
    literals: Vec<u8>,
}

impl ZeroRunWriter {
    /// Codes `bytes`, appending complete pairs to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest[0] == 0 {
                if !self.literals.is_empty() {
                    self.flush(out);
                }
                let n = rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
                self.zeros += n as u64;
                rest = &rest[n..];
            } else {
                let room = MAX_LITERAL_RUN - self.literals.len();
                let n = rest
                    .iter()
                    .take(room)
                    .position(|&b| b == 0)
                    .unwrap_or(rest.len().min(room));
                self.literals.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if self.literals.len() == MAX_LITERAL_RUN {
                    // Bounds the writer's memory; the next pair starts with no zeros.
                    self.flush(out);
                }
            }
        }
    }

    /// Appends the last pair, if any.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if self.zeros > 0 || !self.literals.is_empty() {
            self.flush(out);
        }
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        write_varint(out, self.zeros);
        write_varint(out, self.literals.len() as u64);
        out.extend_from_slice(&self.literals);
        self.zeros = 0;
        self.literals.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_extremes() {
        let ops = [
            Op {
                diff_len: 0,
                extra_len: 0,
                seek: 0,
            },
            Op {
                diff_len: u64::MAX,
                extra_len: 1,
                seek: i64::MIN,
            },
            Op {
                diff_len: 127,
                extra_len: 128,
                seek: i64::MAX,
            },
            Op {
                diff_len: 300,
                extra_len: 0,
                seek: -1,
            },
        ];
        let mut buf = Vec::new();
        for op in ops {
            op.encode(&mut buf);
        }
        let mut r = OpReader::new(&buf[..]);
        for op in ops {
            assert_eq!(r.next_op().unwrap(), Some(op));
        }
        assert_eq!(r.next_op().unwrap(), None);
    }

    #[test]
    fn zero_runs_round_trip() {
        let diff: Vec<u8> = (0..5000u32)
            .map(|i| if i % 97 < 5 { (i % 7) as u8 } else { 0 })
            .collect();
        let mut coded = Vec::new();
        let mut w = ZeroRunWriter::default();
        for chunk in diff.chunks(333) {
            w.push(chunk, &mut coded);
        }
        w.finish(&mut coded);
        let mut r = ZeroRunReader::new(&coded[..]);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, diff);
        assert!(coded.len() < diff.len() / 4);
        // a pair that expands to nothing
        assert!(ZeroRunReader::new(&[0u8, 0][..]).read(&mut [0; 4]).is_err());
        // literals cut short
        assert!(
            ZeroRunReader::new(&[0u8, 3, 1][..])
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn rejects_malformed() {
        // non-minimal encoding of 0
        assert!(OpReader::new(&[0x80u8, 0x00, 0, 0][..]).next_op().is_err());
        // 11-byte varint
        assert!(OpReader::new(&[0xffu8; 11][..]).next_op().is_err());
        // overflow in the tenth byte
        let mut v = vec![0xffu8; 9];
        v.push(0x02);
        assert!(OpReader::new(&v[..]).next_op().is_err());
        // truncated record
        assert!(OpReader::new(&[5u8, 6][..]).next_op().is_err());
    }
}
