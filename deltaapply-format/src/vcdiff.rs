//! VCDIFF (RFC 3284), the delta format of xdelta3 and open-vcdiff, without I/O: the
//! file header (§4.1), each window's header (§4.2, §4.3, and xdelta3's adler32
//! extension), the default code table (§5.6), the address cache (§5.3) and the
//! instruction decoder that carries one window out (§5.4) (`format-spec/vcdiff.md`).
//!
//! ```text
//! file    D6 C3 C4 00 | Hdr_Indicator | [compressor id] [code table: refused]
//!         [application header: varint length, bytes]   then windows to the end
//! window  Win_Indicator | [source segment size, position] | delta encoding length
//! delta   target window length | Delta_Indicator | data, inst, addr lengths
//!         [adler32 of the target window, 4 bytes big-endian] | data | inst | addr
//! ```
//!
//! Integers are RFC 3284's base-128 varints (most significant group first, top bit
//! set on every byte but the last); here they hold at most 64 bits in at most
//! [`MAX_VARINT_LEN`] bytes. Nothing in this module sizes an allocation: the applier
//! sizes a window's target from [`WindowHeader::target_len`] only after
//! [`check_instructions`] has shown that the instructions produce exactly that many
//! bytes, and after its memory limit has admitted it.

mod decode;
pub mod secondary;
mod table;

pub use decode::{AddressCache, DecodeError, Mode, ReadSource, check_instructions, decode_window};
pub use table::{CodeTable, Instruction, Op, opcode};

/// The first three bytes of every VCDIFF file ("VCD" with the top bits set).
pub const MAGIC: [u8; 3] = [0xD6, 0xC3, 0xC4];
/// The only version byte defined (RFC 3284 §4.1).
pub const VERSION: u8 = 0;
/// The longest varint accepted: 10 bytes carry 70 bits, enough for any `u64`.
pub const MAX_VARINT_LEN: usize = 10;
/// Hdr_Indicator: a secondary compressor id follows (§4.1).
pub const VCD_DECOMPRESS: u8 = 0x01;
/// Hdr_Indicator: a custom code table follows (§4.1, §7).
pub const VCD_CODETABLE: u8 = 0x02;
/// Hdr_Indicator: an application header follows (xdelta3's extension).
pub const VCD_APPHEADER: u8 = 0x04;
/// Win_Indicator: the source segment is in the source (old) file (§4.2).
pub const VCD_SOURCE: u8 = 0x01;
/// Win_Indicator: the source segment is in the target (output) already made.
pub const VCD_TARGET: u8 = 0x02;
/// Win_Indicator: an adler32 of the target window follows the section lengths
/// (xdelta3's extension).
pub const VCD_ADLER32: u8 = 0x04;
/// The longest window header before its sections: indicator, two source varints,
/// the delta length, target length, Delta_Indicator, three section lengths, adler32.
pub const MAX_WINDOW_HEADER: usize =
    1 + 2 * MAX_VARINT_LEN + 2 * MAX_VARINT_LEN + 1 + 3 * MAX_VARINT_LEN + 4;
/// The longest file header read at once (magic, version, indicator, compressor id,
/// the application header's length); the application header itself is skipped.
pub const MAX_FILE_HEADER: usize = 6 + MAX_VARINT_LEN;

/// Where in the patch a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The file header.
    FileHeader,
    /// Window `index` (from 0), which starts at `offset` in the patch.
    Window {
        /// The window's number.
        index: u64,
        /// Its offset in the patch file.
        offset: u64,
    },
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::FileHeader => f.write_str("file header"),
            Place::Window { index, offset } => write!(f, "window {index} (offset {offset})"),
        }
    }
}

/// Why VCDIFF bytes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VcdiffError {
    /// The file does not start with D6 C3 C4.
    #[error("not a VCDIFF patch (bad magic bytes)")]
    BadMagic,
    /// A version byte other than 0.
    #[error("file header: version byte is {0:#04x}; only version 0 (RFC 3284) is defined")]
    BadVersion(u8),
    /// A field runs past the end of the bytes given.
    #[error("{place}: truncated inside the {field}")]
    Truncated {
        /// Where.
        place: Place,
        /// The field.
        field: &'static str,
    },
    /// A varint longer than [`MAX_VARINT_LEN`] bytes or above `u64::MAX`.
    #[error("{place}: the {field} is not a valid integer ({problem})")]
    Varint {
        /// Where.
        place: Place,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Hdr_Indicator bits this decoder does not know.
    #[error("file header: Hdr_Indicator {0:#04x} has bits RFC 3284 and xdelta3 do not define")]
    UnknownHeaderBits(u8),
    /// VCD_CODETABLE: a custom code table.
    #[error(
        "file header: Hdr_Indicator sets VCD_CODETABLE (a custom code table, RFC 3284 §7), \
         which this decoder does not support: only the default code table"
    )]
    CodeTable,
    /// A window's sections are compressed with a secondary compressor other than LZMA.
    #[error(
        "{place}: Delta_Indicator {delta_indicator:#04x} says its sections are compressed \
         with secondary compressor {id} ({}, VCD_DECOMPRESS), which this decoder does not \
         support (only LZMA, id 2); make the patch with xdelta3 -S lzma or -S none",
        compressor_name(*id)
    )]
    SecondaryCompression {
        /// Where.
        place: Place,
        /// The window's Delta_Indicator.
        delta_indicator: u8,
        /// The compressor id of the file header.
        id: u8,
    },
    /// Any other invalid field, named with what is wrong with it.
    #[error("{place}: {field} {problem}")]
    Invalid {
        /// Where.
        place: Place,
        /// The field.
        field: &'static str,
        /// What is wrong, with the values involved.
        problem: String,
    },
}

/// The name of a secondary compressor id, as xdelta3 numbers them.
pub fn compressor_name(id: u8) -> &'static str {
    match id {
        1 => "DJW",
        2 => "LZMA",
        16 => "FGK",
        _ => "unknown",
    }
}

/// A bounds-checked cursor reading VCDIFF varints and bytes; errors name the place.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    place: Place,
}

impl<'a> Cursor<'a> {
    /// A cursor over `bytes`, whose errors say `place`.
    pub fn new(bytes: &'a [u8], place: Place) -> Cursor<'a> {
        Cursor {
            bytes,
            pos: 0,
            place,
        }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// One byte.
    pub fn byte(&mut self, field: &'static str) -> Result<u8, VcdiffError> {
        let b = *self.bytes.get(self.pos).ok_or(VcdiffError::Truncated {
            place: self.place,
            field,
        })?;
        self.pos += 1;
        Ok(b)
    }

    /// `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], VcdiffError> {
        if n > self.left() {
            return Err(VcdiffError::Truncated {
                place: self.place,
                field,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A varint.
    pub fn varint(&mut self, field: &'static str) -> Result<u64, VcdiffError> {
        let mut value: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let b = self.byte(field)?;
            if value >> 57 != 0 {
                return Err(VcdiffError::Varint {
                    place: self.place,
                    field,
                    problem: "its value does not fit 64 bits",
                });
            }
            value = (value << 7) | u64::from(b & 0x7F);
            if b & 0x80 == 0 {
                return Ok(value);
            }
            debug_assert!(i < MAX_VARINT_LEN);
        }
        Err(VcdiffError::Varint {
            place: self.place,
            field,
            problem: "longer than 10 bytes",
        })
    }
}

/// Appends `value` as a VCDIFF varint.
pub fn write_varint(out: &mut Vec<u8>, value: u64) {
    let mut groups = [0u8; MAX_VARINT_LEN];
    let mut n = 0;
    let mut v = value;
    loop {
        groups[n] = (v & 0x7F) as u8;
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(groups[i] | if i > 0 { 0x80 } else { 0 });
    }
}

/// The bytes [`write_varint`] writes for `value`.
pub fn varint_len(value: u64) -> usize {
    (64 - value.leading_zeros()).max(1).div_ceil(7) as usize
}

/// The adler32 checksum (RFC 1950) of `bytes`, as xdelta3 writes it per window.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // 5552 bytes are the most that can be summed before the 32-bit sums overflow.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// A decoded file header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileHeader {
    /// Hdr_Indicator.
    pub indicator: u8,
    /// The secondary compressor id, if VCD_DECOMPRESS is set.
    pub compressor: Option<u8>,
    /// The application header's length, if VCD_APPHEADER is set.
    pub app_header_len: Option<u64>,
    /// The header's length: the first window starts here.
    pub len: u64,
}

impl FileHeader {
    /// Decodes the first bytes of a patch of `file_len` bytes (`head` is at most
    /// [`MAX_FILE_HEADER`] of them). The application header must fit in the file.
    pub fn decode(head: &[u8], file_len: u64) -> Result<FileHeader, VcdiffError> {
        let place = Place::FileHeader;
        let mut c = Cursor::new(head, place);
        let magic = c
            .take(head.len().min(3), "magic")
            .map_err(|_| VcdiffError::BadMagic)?;
        if magic != &MAGIC[..magic.len()] {
            return Err(VcdiffError::BadMagic);
        }
        if magic.len() < 3 {
            return Err(VcdiffError::Truncated {
                place,
                field: "magic",
            });
        }
        let version = c.byte("version byte")?;
        if version != VERSION {
            return Err(VcdiffError::BadVersion(version));
        }
        let indicator = c.byte("Hdr_Indicator")?;
        if indicator & !(VCD_DECOMPRESS | VCD_CODETABLE | VCD_APPHEADER) != 0 {
            return Err(VcdiffError::UnknownHeaderBits(indicator));
        }
        let compressor = if indicator & VCD_DECOMPRESS != 0 {
            Some(c.byte("secondary compressor id")?)
        } else {
            None
        };
        if indicator & VCD_CODETABLE != 0 {
            return Err(VcdiffError::CodeTable);
        }
        let app_header_len = if indicator & VCD_APPHEADER != 0 {
            let n = c.varint("application header length")?;
            let start = c.pos() as u64;
            if n > file_len.saturating_sub(start) {
                return Err(VcdiffError::Invalid {
                    place,
                    field: "application header length",
                    problem: format!(
                        "is {n} bytes, past the end of the {file_len}-byte file (from offset \
                         {start})"
                    ),
                });
            }
            Some(n)
        } else {
            None
        };
        let len = c.pos() as u64 + app_header_len.unwrap_or(0);
        Ok(FileHeader {
            indicator,
            compressor,
            app_header_len,
            len,
        })
    }
}

/// Which file a window's source segment is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentIn {
    /// The source (old) file: VCD_SOURCE.
    Source,
    /// The target made by earlier windows: VCD_TARGET.
    Target,
}

/// A window's source segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Segment {
    /// Which file.
    pub file: SegmentIn,
    /// Its length.
    pub len: u64,
    /// Where it starts in that file.
    pub pos: u64,
}

/// A decoded window header, its lengths checked against one another and against the
/// bytes left in the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WindowHeader {
    /// Win_Indicator.
    pub indicator: u8,
    /// The source segment, if the window has one.
    pub segment: Option<Segment>,
    /// The target window's length.
    pub target_len: u64,
    /// Delta_Indicator.
    pub delta_indicator: u8,
    /// Data section length.
    pub data_len: u64,
    /// Instructions section length.
    pub inst_len: u64,
    /// Addresses section length.
    pub addr_len: u64,
    /// xdelta3's adler32 of the target window, if VCD_ADLER32 is set.
    pub adler32: Option<u32>,
    /// Bytes from the window's start to its data section.
    pub header_len: u64,
}

impl WindowHeader {
    /// Decodes the header of window `place` from `head` (its first bytes, up to
    /// [`MAX_WINDOW_HEADER`]); `left` is the patch's bytes from the window's start to
    /// the end of the file. The delta encoding must fit in `left` and its length must
    /// be exactly the header fields plus the three sections.
    pub fn decode(head: &[u8], left: u64, place: Place) -> Result<WindowHeader, VcdiffError> {
        let invalid = |field, problem: String| VcdiffError::Invalid {
            place,
            field,
            problem,
        };
        let mut c = Cursor::new(head, place);
        let indicator = c.byte("Win_Indicator")?;
        if indicator & !(VCD_SOURCE | VCD_TARGET | VCD_ADLER32) != 0 {
            return Err(invalid(
                "Win_Indicator",
                format!("{indicator:#04x} has bits RFC 3284 and xdelta3 do not define"),
            ));
        }
        let file = match indicator & (VCD_SOURCE | VCD_TARGET) {
            0 => None,
            VCD_SOURCE => Some(SegmentIn::Source),
            VCD_TARGET => Some(SegmentIn::Target),
            _ => {
                return Err(invalid(
                    "Win_Indicator",
                    format!("{indicator:#04x} sets both VCD_SOURCE and VCD_TARGET"),
                ));
            }
        };
        let segment = match file {
            Some(file) => {
                let len = c.varint("source segment length")?;
                let pos = c.varint("source segment position")?;
                if pos.checked_add(len).is_none() {
                    return Err(invalid(
                        "source segment position",
                        format!("{pos} plus its length {len} overflows 64 bits"),
                    ));
                }
                Some(Segment { file, len, pos })
            }
            None => None,
        };
        let delta_len = c.varint("delta encoding length")?;
        let delta_start = c.pos() as u64;
        if delta_len > left.saturating_sub(delta_start) {
            return Err(invalid(
                "delta encoding length",
                format!(
                    "is {delta_len} bytes, past the end of the patch ({} bytes left after it)",
                    left.saturating_sub(delta_start)
                ),
            ));
        }
        let target_len = c.varint("target window length")?;
        let delta_indicator = c.byte("Delta_Indicator")?;
        if delta_indicator & !0x07 != 0 {
            return Err(invalid(
                "Delta_Indicator",
                format!("{delta_indicator:#04x} has bits RFC 3284 does not define"),
            ));
        }
        let data_len = c.varint("data section length")?;
        let inst_len = c.varint("instructions section length")?;
        let addr_len = c.varint("addresses section length")?;
        let adler32 = if indicator & VCD_ADLER32 != 0 {
            let b = c.take(4, "adler32 checksum")?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let fields = c.pos() as u64 - delta_start;
        let sections = data_len
            .checked_add(inst_len)
            .and_then(|n| n.checked_add(addr_len));
        if sections.and_then(|s| s.checked_add(fields)) != Some(delta_len) {
            return Err(invalid(
                "delta encoding length",
                format!(
                    "is {delta_len} bytes, but its fields take {fields} and its sections \
                     {data_len} + {inst_len} + {addr_len}: the sections overlap or overrun"
                ),
            ));
        }
        Ok(WindowHeader {
            indicator,
            segment,
            target_len,
            delta_indicator,
            data_len,
            inst_len,
            addr_len,
            adler32,
            header_len: c.pos() as u64,
        })
    }

    /// The window's whole length in the patch: header and sections.
    pub fn total_len(&self) -> u64 {
        // `decode` checked this sum fits the bytes left in the file.
        self.header_len + self.sections_len()
    }

    /// The three sections' length together.
    pub fn sections_len(&self) -> u64 {
        self.data_len + self.inst_len + self.addr_len
    }

    /// Refuses a window whose sections are compressed with anything but LZMA (the
    /// Delta_Indicator bits need the secondary compressor the file header names).
    pub fn check_compressor(&self, header: &FileHeader, place: Place) -> Result<(), VcdiffError> {
        if self.delta_indicator == 0 {
            return Ok(());
        }
        match header.compressor {
            Some(secondary::LZMA_ID) => Ok(()),
            Some(id) => Err(VcdiffError::SecondaryCompression {
                place,
                delta_indicator: self.delta_indicator,
                id,
            }),
            None => Err(VcdiffError::Invalid {
                place,
                field: "Delta_Indicator",
                problem: format!(
                    "{:#04x} says sections are compressed, but the file header names no \
                     secondary compressor (VCD_DECOMPRESS is not set)",
                    self.delta_indicator
                ),
            }),
        }
    }

    /// Whether `section` is compressed in this window.
    pub fn is_compressed(&self, section: secondary::Section) -> bool {
        self.delta_indicator & section.bit() != 0
    }

    /// The length of `section` in the patch.
    pub fn section_len(&self, section: secondary::Section) -> u64 {
        match section {
            secondary::Section::Data => self.data_len,
            secondary::Section::Inst => self.inst_len,
            secondary::Section::Addr => self.addr_len,
        }
    }

    /// Where `section` starts, from the window's start.
    pub fn section_offset(&self, section: secondary::Section) -> u64 {
        match section {
            secondary::Section::Data => self.header_len,
            secondary::Section::Inst => self.header_len + self.data_len,
            secondary::Section::Addr => self.header_len + self.data_len + self.inst_len,
        }
    }

    /// Checks the source segment against the files it is in: a VCD_SOURCE segment
    /// within the `source_len`-byte source file, a VCD_TARGET segment within the
    /// `made` bytes of target the earlier windows made.
    pub fn check_segment(
        &self,
        source_len: u64,
        made: u64,
        place: Place,
    ) -> Result<(), VcdiffError> {
        let Some(seg) = self.segment else {
            return Ok(());
        };
        let (limit, what) = match seg.file {
            SegmentIn::Source => (source_len, "the source file's"),
            SegmentIn::Target => (made, "the target made so far,"),
        };
        // `decode` checked that the sum fits 64 bits.
        if seg.pos + seg.len > limit {
            return Err(VcdiffError::Invalid {
                place,
                field: "source segment",
                problem: format!(
                    "{}..{} ({}) is past {what} {limit} bytes",
                    seg.pos,
                    seg.pos + seg.len,
                    match seg.file {
                        SegmentIn::Source => "VCD_SOURCE",
                        SegmentIn::Target => "VCD_TARGET",
                    }
                ),
            });
        }
        Ok(())
    }

    /// The source segment's length (0 without one): the lowest target address.
    pub fn segment_len(&self) -> u64 {
        self.segment.map_or(0, |s| s.len)
    }
}

#[cfg(test)]
mod tests;
