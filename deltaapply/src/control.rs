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

    fn byte(&mut self) -> Result<Option<u8>, ControlError> {
        let mut b = [0u8; 1];
        loop {
            return match self.inner.read(&mut b) {
                Ok(0) => Ok(None),
                Ok(_) => Ok(Some(b[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    fn varint(&mut self, eof_ok: bool) -> Result<Option<u64>, ControlError> {
        let record = self.record;
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let Some(b) = self.byte()? else {
                return if i == 0 && eof_ok {
                    Ok(None)
                } else {
                    Err(ControlError::Truncated { record })
                };
            };
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(ControlError::Varint { record });
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(ControlError::Varint { record });
                }
                return Ok(Some(value));
            }
        }
        Err(ControlError::Varint { record })
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

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
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
