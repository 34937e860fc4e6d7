//! BSDIFF40, the patch format of Colin Percival's bsdiff 4.x (Debian's `bsdiff`,
//! FreeBSD, the `qbsdiff` crate), without I/O: its 32-byte header, its 24-byte control
//! records, and the walk that checks each record against the target size before an
//! applier acts on it (`format-spec/foreign.md` §2).
//!
//! ```text
//! offset  size  field
//!  0       8    magic "BSDIFF40"
//!  8       8    control_len  bzip2 size of the control stream   (offtin, >= 0)
//! 16       8    diff_len     bzip2 size of the diff stream      (offtin, >= 0)
//! 24       8    new_size     size of the file the patch makes   (offtin, >= 0)
//! 32            control stream, diff stream, extra stream (to the end of the file)
//! ```
//!
//! Every integer is bsdiff's `offtin`: eight bytes, little-endian magnitude in the low
//! 63 bits, sign in the top bit. A control record is three of them: `add` bytes are
//! old bytes plus diff bytes, `copy` bytes come from the extra stream, then the old
//! cursor moves by `seek`. bspatch's CVE-2014-9862 was trusting `add` and `copy`:
//! here a negative length, a record writing past `new_size`, and an old cursor that
//! would overflow are errors naming the record and the field.

use crate::codec::Reader;

/// The format's magic bytes.
pub const MAGIC: [u8; 8] = *b"BSDIFF40";
/// The header's length; the control stream starts here.
pub const HEADER_LEN: usize = 32;
/// The length of one control record.
pub const RECORD_LEN: usize = 24;
/// Control records allowed beyond two per byte of the new file (see [`max_records`]).
pub const RECORD_SLACK: u64 = 16;

/// The most control records a patch making `new_size` bytes may have: `2 × new_size +`
/// [`RECORD_SLACK`]. Records that produce no byte are legitimate and can be many in a
/// row (Debian's bsdiff emits one per step over periodic text; qbsdiff's parallel mode
/// one or two per 256 KiB chunk), but bsdiff emits at most one per byte of the new file
/// plus one; the limit keeps the work of a control stream (a bzip2 bomb of empty
/// records, say) proportional to the declared new size.
pub fn max_records(new_size: u64) -> u64 {
    new_size.saturating_mul(2).saturating_add(RECORD_SLACK)
}

/// A decoded BSDIFF40 header, checked against the patch file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    /// Bytes of the bzip2 control stream, from offset 32.
    pub control_len: u64,
    /// Bytes of the bzip2 diff stream, after the control stream.
    pub diff_len: u64,
    /// Bytes of the bzip2 extra stream: the rest of the file.
    pub extra_len: u64,
    /// Size of the file the patch produces.
    pub new_size: u64,
}

impl Header {
    /// Decodes the first bytes of a patch file of `file_len` bytes. The streams must
    /// fit in the file; nothing here sizes an allocation.
    pub fn decode(head: &[u8], file_len: u64) -> Result<Header, Bsdiff40Error> {
        let mut r = Reader::new(head);
        let magic = r
            .bytes(head.len().min(MAGIC.len()), "magic")
            .map_err(|_| Bsdiff40Error::BadMagic)?;
        if magic != &MAGIC[..magic.len()] {
            return Err(Bsdiff40Error::BadMagic);
        }
        if file_len < HEADER_LEN as u64 || head.len() < HEADER_LEN {
            return Err(Bsdiff40Error::TruncatedHeader {
                got: file_len.min(head.len() as u64),
            });
        }
        let mut field = |name: &'static str| -> Result<u64, Bsdiff40Error> {
            let bytes = r
                .array::<8>(name)
                .map_err(|_| Bsdiff40Error::TruncatedHeader {
                    got: head.len() as u64,
                })?;
            let value = offtin(bytes);
            u64::try_from(value).map_err(|_| Bsdiff40Error::NegativeField { field: name, value })
        };
        let control_len = field("control length")?;
        let diff_len = field("diff length")?;
        let new_size = field("new size")?;
        let streams = (HEADER_LEN as u64)
            .checked_add(control_len)
            .and_then(|n| n.checked_add(diff_len))
            .filter(|&end| end <= file_len)
            .ok_or(Bsdiff40Error::StreamsPastEnd {
                control_len,
                diff_len,
                file_len,
            })?;
        Ok(Header {
            control_len,
            diff_len,
            extra_len: file_len - streams,
            new_size,
        })
    }

    /// The 32 header bytes. `None` if a length does not fit bsdiff's 63 bits.
    pub fn encode(control_len: u64, diff_len: u64, new_size: u64) -> Option<[u8; HEADER_LEN]> {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        for (i, v) in [control_len, diff_len, new_size].into_iter().enumerate() {
            let at = 8 + 8 * i;
            out[at..at + 8].copy_from_slice(&offtout(i64::try_from(v).ok()?)?);
        }
        Some(out)
    }

    /// Where the control, diff and extra streams are: (offset in the file, length).
    pub fn sections(&self) -> [(u64, u64); 3] {
        let control = HEADER_LEN as u64;
        let diff = control + self.control_len;
        [
            (control, self.control_len),
            (diff, self.diff_len),
            (diff + self.diff_len, self.extra_len),
        ]
    }
}

/// bsdiff's `offtin`: sign-magnitude, little-endian. The all-zero magnitude with the
/// sign bit set is 0, as in bspatch.
pub fn offtin(bytes: [u8; 8]) -> i64 {
    let raw = u64::from_le_bytes(bytes);
    // The magnitude has 63 bits, so it fits an i64 and so does its negation.
    let magnitude = (raw & (u64::MAX >> 1)) as i64;
    if raw >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

/// bsdiff's `offtout`, the inverse of [`offtin`]. `None` for `i64::MIN`, whose
/// magnitude needs 64 bits.
pub fn offtout(value: i64) -> Option<[u8; 8]> {
    let magnitude = value.checked_abs()? as u64;
    let sign = if value < 0 { 1u64 << 63 } else { 0 };
    Some((magnitude | sign).to_le_bytes())
}

/// One control record, its lengths known to be non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// Bytes made as old byte plus diff byte (wrapping).
    pub add: u64,
    /// Bytes copied from the extra stream.
    pub copy: u64,
    /// Signed move of the old cursor after the copy.
    pub seek: i64,
}

impl Control {
    /// Decodes record number `record` (counted from 0).
    pub fn decode(bytes: &[u8; RECORD_LEN], record: u64) -> Result<Control, Bsdiff40Error> {
        let int = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            offtin(b)
        };
        let length = |i: usize, field: &'static str| {
            let value = int(i);
            u64::try_from(value).map_err(|_| Bsdiff40Error::NegativeLength {
                record,
                field,
                value,
            })
        };
        Ok(Control {
            add: length(0, "add")?,
            copy: length(1, "copy")?,
            seek: int(2),
        })
    }

    /// The record's 24 bytes. `None` if a value does not fit bsdiff's 63 bits.
    pub fn encode(&self) -> Option<[u8; RECORD_LEN]> {
        let mut out = [0u8; RECORD_LEN];
        let add = offtout(i64::try_from(self.add).ok()?)?;
        let copy = offtout(i64::try_from(self.copy).ok()?)?;
        out[..8].copy_from_slice(&add);
        out[8..16].copy_from_slice(&copy);
        out[16..].copy_from_slice(&offtout(self.seek)?);
        Some(out)
    }
}

/// Where applying a BSDIFF40 patch stands, and the checks each record must pass
/// before it is carried out.
#[derive(Debug, Clone)]
pub struct Walk {
    new_size: u64,
    written: u64,
    /// The old cursor. It may leave `0..old_size`: bspatch reads old bytes outside
    /// the old file as 0, and so does an applier following this walk.
    old_pos: i64,
    records: u64,
}

/// What a checked record asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Add `control.add` diff bytes to the old bytes from this cursor (which may be
    /// negative or past the old file: those old bytes count as 0).
    pub old_pos: i64,
    /// The record.
    pub control: Control,
}

impl Walk {
    /// The walk of a patch producing `new_size` bytes.
    pub fn new(new_size: u64) -> Walk {
        Walk {
            new_size,
            written: 0,
            old_pos: 0,
            records: 0,
        }
    }

    /// Bytes the records taken so far produce.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Records taken so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Whether the records taken produce the whole target.
    pub fn is_complete(&self) -> bool {
        self.written == self.new_size
    }

    /// Checks the next record and advances past it. A record that would write past
    /// the target, move the old cursor beyond `i64`, or exceed [`max_records`] is an
    /// error. Records after the target is complete are allowed if they produce
    /// nothing (qbsdiff's last chunk ends with one).
    pub fn take(&mut self, bytes: &[u8; RECORD_LEN]) -> Result<Step, Bsdiff40Error> {
        let record = self.records;
        let control = Control::decode(bytes, record)?;
        let left = self.new_size - self.written;
        if control.add > left || control.copy > left - control.add {
            return Err(Bsdiff40Error::PastTarget {
                record,
                at: self.written,
                add: control.add,
                copy: control.copy,
                new_size: self.new_size,
            });
        }
        let limit = max_records(self.new_size);
        if record >= limit {
            return Err(Bsdiff40Error::TooManyRecords { record, limit });
        }
        let old_pos = self.old_pos;
        self.old_pos = i64::try_from(control.add)
            .ok()
            .and_then(|add| old_pos.checked_add(add))
            .and_then(|p| p.checked_add(control.seek))
            .ok_or(Bsdiff40Error::OldCursorOverflow { record })?;
        self.written += control.add + control.copy;
        self.records += 1;
        Ok(Step { old_pos, control })
    }
}

/// Why BSDIFF40 bytes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bsdiff40Error {
    /// The file does not start with "BSDIFF40".
    #[error("not a BSDIFF40 patch (bad magic bytes)")]
    BadMagic,
    /// Fewer than 32 bytes.
    #[error("truncated: the BSDIFF40 header needs {HEADER_LEN} bytes, the file has {got}")]
    TruncatedHeader {
        /// Bytes present.
        got: u64,
    },
    /// A header field is negative.
    #[error("header field {field} is negative ({value})")]
    NegativeField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// The control and diff streams end past the end of the file.
    #[error(
        "header declares a {control_len}-byte control stream and a {diff_len}-byte diff \
         stream, past the end of the {file_len}-byte file"
    )]
    StreamsPastEnd {
        /// The control length field.
        control_len: u64,
        /// The diff length field.
        diff_len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A control record's length is negative (CVE-2014-9862).
    #[error("control record {record}: {field} length is negative ({value})")]
    NegativeLength {
        /// The record, from 0.
        record: u64,
        /// `add` or `copy`.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A control record writes past the new size.
    #[error(
        "control record {record} writes {add} + {copy} bytes at offset {at}, past the new \
         size {new_size}"
    )]
    PastTarget {
        /// The record, from 0.
        record: u64,
        /// Bytes already produced.
        at: u64,
        /// Its add length.
        add: u64,
        /// Its copy length.
        copy: u64,
        /// The header's new size.
        new_size: u64,
    },
    /// A control record moves the old cursor beyond what 64 bits hold.
    #[error("control record {record}: the old cursor overflows (seek out of range)")]
    OldCursorOverflow {
        /// The record, from 0.
        record: u64,
    },
    /// More control records than a patch of this new size can need.
    #[error(
        "control record {record} is past the {limit} records a patch of this new size may have"
    )]
    TooManyRecords {
        /// The record, from 0.
        record: u64,
        /// [`max_records`] of the new size.
        limit: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(control: i64, diff: i64, new: i64) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        for v in [control, diff, new] {
            h.extend_from_slice(&offtout(v).unwrap());
        }
        h
    }

    #[test]
    fn offtin_is_sign_magnitude() {
        assert_eq!(offtin(5u64.to_le_bytes()), 5);
        assert_eq!(offtin((5u64 | 1 << 63).to_le_bytes()), -5);
        assert_eq!(offtin((1u64 << 63).to_le_bytes()), 0);
        assert_eq!(offtin(u64::MAX.to_le_bytes()), -i64::MAX);
        for v in [0, 1, -1, 300, -300, i64::MAX, -i64::MAX] {
            assert_eq!(offtin(offtout(v).unwrap()), v);
        }
        assert_eq!(offtout(i64::MIN), None);
    }

    #[test]
    fn header_fields_are_checked_against_the_file() {
        let h = header(10, 20, 1000);
        let ok = Header::decode(&h, 32 + 10 + 20 + 5).unwrap();
        assert_eq!(
            (ok.control_len, ok.diff_len, ok.extra_len, ok.new_size),
            (10, 20, 5, 1000)
        );
        assert_eq!(
            ok.sections(),
            [(32, 10), (42, 20), (62, 5)],
            "sections follow one another"
        );
        assert!(matches!(
            Header::decode(&h, 61),
            Err(Bsdiff40Error::StreamsPastEnd { .. })
        ));
        assert_eq!(
            Header::decode(&header(-1, 0, 0), 100),
            Err(Bsdiff40Error::NegativeField {
                field: "control length",
                value: -1
            })
        );
        assert!(matches!(
            Header::decode(&header(0, 0, -7), 100),
            Err(Bsdiff40Error::NegativeField {
                field: "new size",
                ..
            })
        ));
        // Lengths whose sum overflows.
        assert!(matches!(
            Header::decode(&header(i64::MAX, i64::MAX, 0), 100),
            Err(Bsdiff40Error::StreamsPastEnd { .. })
        ));
        // A huge new size is only a number: nothing is sized by it.
        assert_eq!(
            Header::decode(&header(0, 0, i64::MAX), 32)
                .unwrap()
                .new_size,
            i64::MAX as u64
        );
        for n in 0..32 {
            let e = Header::decode(&h[..n], n as u64).unwrap_err();
            assert!(
                matches!(e, Bsdiff40Error::TruncatedHeader { .. }),
                "{n} bytes: {e}"
            );
        }
        assert_eq!(
            Header::decode(b"BSDIFF41", 100),
            Err(Bsdiff40Error::BadMagic)
        );
        assert_eq!(
            Header::decode(b"", 0),
            Err(Bsdiff40Error::TruncatedHeader { got: 0 })
        );
        assert_eq!(
            Header::encode(10, 20, 1000).unwrap().to_vec(),
            h,
            "encode is decode's inverse"
        );
    }

    fn record(add: i64, copy: i64, seek: i64) -> [u8; RECORD_LEN] {
        let mut r = [0u8; RECORD_LEN];
        r[..8].copy_from_slice(&offtout(add).unwrap());
        r[8..16].copy_from_slice(&offtout(copy).unwrap());
        r[16..].copy_from_slice(&offtout(seek).unwrap());
        r
    }

    #[test]
    fn the_walk_refuses_what_bspatch_trusted() {
        let mut w = Walk::new(10);
        let s = w.take(&record(4, 2, -1)).unwrap();
        assert_eq!((s.old_pos, s.control.add), (0, 4));
        let s = w.take(&record(4, 0, 0)).unwrap();
        assert_eq!(s.old_pos, 3);
        assert!(w.is_complete());
        assert_eq!(
            w.take(&record(0, 0, 5)).unwrap().old_pos,
            7,
            "trailing empty records pass"
        );
        assert!(matches!(
            w.take(&record(1, 0, 0)),
            Err(Bsdiff40Error::PastTarget { record: 3, .. })
        ));

        let mut w = Walk::new(10);
        assert!(matches!(
            w.take(&record(-1, 0, 0)),
            Err(Bsdiff40Error::NegativeLength { field: "add", .. })
        ));
        assert!(matches!(
            w.take(&record(0, -5, 0)),
            Err(Bsdiff40Error::NegativeLength { field: "copy", .. })
        ));
        assert!(matches!(
            w.take(&record(6, 5, 0)),
            Err(Bsdiff40Error::PastTarget { .. })
        ));
        assert!(matches!(
            w.take(&record(i64::MAX, i64::MAX, 0)),
            Err(Bsdiff40Error::PastTarget { .. })
        ));

        let mut w = Walk::new(u64::MAX >> 1);
        w.take(&record(0, 0, i64::MAX)).unwrap();
        assert_eq!(
            w.take(&record(1, 0, 0)),
            Err(Bsdiff40Error::OldCursorOverflow { record: 1 })
        );

        let mut w = Walk::new(1);
        for _ in 0..max_records(1) {
            w.take(&record(0, 0, 1)).unwrap();
        }
        assert_eq!(
            w.take(&record(0, 0, 1)),
            Err(Bsdiff40Error::TooManyRecords {
                record: 18,
                limit: 18
            })
        );
        assert_eq!(
            Control {
                add: 3,
                copy: 4,
                seek: -9
            }
            .encode()
            .unwrap(),
            record(3, 4, -9)
        );
    }
}
