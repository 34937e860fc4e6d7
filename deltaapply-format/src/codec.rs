//! The one bounds-checked cursor every binary format of the crate is read with: the
//! patch header and its signature block (`container.rs`), the frame headers of a
//! payload (`apply.rs`), a tree patch's payload prefix (`tree/patch.rs`) and its index
//! and listings (`tree/format.rs`). Reading past the end is an error naming the field
//! and its offset, never a panic, so no caller has to check lengths first (though the
//! header decoder still does, to report its errors in the order the spec gives).
//!
//! Offsets are counted from the start of the bytes the outermost reader was made
//! over; a [`Reader::sub`] reader keeps counting from where it starts, so its errors
//! name offsets in the same coordinates.

use std::fmt;

/// Why bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// `field` at `offset` needs `needed` bytes; only `left` remain.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// `count` bytes follow the end of `what`, from `offset`.
    Trailing {
        /// What should have ended.
        what: &'static str,
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated {
                field,
                offset,
                needed,
                left,
            } => write!(
                f,
                "truncated: {field} at offset {offset} needs {needed} bytes, {left} remain"
            ),
            // The offset is the length less the count: the text is the one the tree
            // index has always given.
            CodecError::Trailing { what, count, .. } => {
                write!(f, "{count} trailing bytes after the {what}")
            }
        }
    }
}

/// A cursor over a byte slice reading little-endian integers. Every read names the
/// field it reads, for the error if the bytes run out.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes[0]` in the outermost reader's bytes.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, at offset 0.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            base: 0,
        }
    }

    /// The offset of the next byte, from the start of the outermost reader.
    pub fn position(&self) -> usize {
        self.base + self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The bytes left, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                field,
                offset: self.position(),
                needed: n,
                left: self.remaining(),
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips the next `n` bytes.
    pub fn skip(&mut self, n: usize, field: &'static str) -> Result<(), CodecError> {
        self.bytes(n, field).map(|_| ())
    }

    /// A reader over the next `len` bytes, which this one skips.
    pub fn sub(&mut self, len: usize, field: &'static str) -> Result<Reader<'a>, CodecError> {
        let base = self.position();
        let bytes = self.bytes(len, field)?;
        Ok(Reader {
            bytes,
            pos: 0,
            base,
        })
    }

    /// Refuses any byte left: `what` must end exactly here.
    pub fn expect_end(&self, what: &'static str) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::Trailing {
                what,
                offset: self.position(),
                count,
            }),
        }
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    /// The next byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
}

/// Appends little-endian integers to a buffer.
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    /// Appends `b`.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// Appends `n` zero bytes.
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    /// Forgets every byte written.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
    /// The bytes written.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_past_the_end_is_an_error_naming_the_field_and_offset() {
        let bytes = [1u8, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u16("first"), Ok(1));
        assert_eq!(r.u64("second"), Ok(2));
        let err = r.u16("third").unwrap_err();
        assert_eq!(
            err,
            CodecError::Truncated {
                field: "third",
                offset: 10,
                needed: 2,
                left: 0
            }
        );
        assert_eq!(
            err.to_string(),
            "truncated: third at offset 10 needs 2 bytes, 0 remain"
        );
        // A failed read consumes nothing.
        assert_eq!(r.position(), 10);
        let mut r = Reader::new(&bytes);
        assert!(r.bytes(usize::MAX, "huge").is_err());
        assert!(r.array::<11>("too long").is_err());
        assert_eq!(r.u8("still there"), Ok(1));
    }

    #[test]
    fn sub_readers_are_bounded_and_keep_offsets() {
        let bytes = [0u8, 1, 2, 3, 4, 5, 6, 7];
        let mut r = Reader::new(&bytes);
        r.skip(2, "lead").unwrap();
        let mut sub = r.sub(3, "middle").unwrap();
        assert_eq!(
            r.position(),
            5,
            "the outer reader skips the sub-reader's bytes"
        );
        assert_eq!(sub.position(), 2);
        assert_eq!(sub.rest(), [2, 3, 4]);
        assert_eq!(sub.u16("pair"), Ok(0x0302));
        let err = sub.u16("past the sub-reader").unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Truncated {
                    offset: 4,
                    left: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            sub.expect_end("middle").unwrap_err().to_string(),
            "1 trailing bytes after the middle"
        );
        assert!(matches!(
            sub.expect_end("middle"),
            Err(CodecError::Trailing {
                offset: 4,
                count: 1,
                ..
            })
        ));
        sub.skip(1, "last").unwrap();
        assert_eq!(sub.expect_end("middle"), Ok(()));
        assert!(r.sub(4, "beyond").is_err());
        assert_eq!(r.remaining(), 3);
    }
}
