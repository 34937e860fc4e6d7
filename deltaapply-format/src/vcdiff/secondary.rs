//! Secondary compression of a window's sections as xdelta3 writes it
//! (`format-spec/vcdiff.md` §1.1), without the decompressor itself.
//!
//! With VCD_DECOMPRESS in the file header and compressor id 2 (LZMA), each of the
//! three sections whose Delta_Indicator bit is set (VCD_DATACOMP, VCD_INSTCOMP,
//! VCD_ADDRCOMP) holds a varint, the section's length uncompressed, then the next
//! piece of one `.xz` stream per kind of section: LZMA2 in one block, no integrity
//! check, which runs on across the windows (each piece ends at an LZMA2 sync flush,
//! and the stream is never finished). The first compressed section of each kind starts
//! with the stream header and block header, from which [`xz_dict_size`] reads the
//! dictionary size the decoder must hold.

use super::{Cursor, MAX_VARINT_LEN, Place, VcdiffError};

/// Delta_Indicator: the data section is compressed.
pub const VCD_DATACOMP: u8 = 0x01;
/// Delta_Indicator: the instructions section is compressed.
pub const VCD_INSTCOMP: u8 = 0x02;
/// Delta_Indicator: the addresses section is compressed.
pub const VCD_ADDRCOMP: u8 = 0x04;
/// xdelta3's compressor ids.
pub const DJW_ID: u8 = 1;
/// LZMA, the only secondary compressor supported.
pub const LZMA_ID: u8 = 2;
/// xdelta3's FGK compressor id.
pub const FGK_ID: u8 = 16;
/// The bytes of a compressed section's head that [`xz_dict_size`] may need: the
/// length varint, the 12-byte stream header and the longest block header.
pub const MAX_SECTION_HEAD: usize = MAX_VARINT_LEN + 12 + 1024;

/// One of a window's three sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// The data section (ADD and RUN bytes).
    Data,
    /// The instructions section.
    Inst,
    /// The addresses section.
    Addr,
}

impl Section {
    /// The three, in the order they are in a window.
    pub const ALL: [Section; 3] = [Section::Data, Section::Inst, Section::Addr];

    /// Its Delta_Indicator bit.
    pub fn bit(self) -> u8 {
        match self {
            Section::Data => VCD_DATACOMP,
            Section::Inst => VCD_INSTCOMP,
            Section::Addr => VCD_ADDRCOMP,
        }
    }

    /// Its place in [`Section::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Section::Data => "data section",
            Section::Inst => "instructions section",
            Section::Addr => "addresses section",
        }
    }

    /// The uncompressed-length field's name in messages.
    pub fn length_field(self) -> &'static str {
        match self {
            Section::Data => "uncompressed length of the data section",
            Section::Inst => "uncompressed length of the instructions section",
            Section::Addr => "uncompressed length of the addresses section",
        }
    }

    /// The most bytes this section can have uncompressed in a window whose target is
    /// `target_len` bytes and whose instructions make it (which `check_instructions`
    /// requires): every instruction makes at least one byte (zero sizes are refused),
    /// so the data section has at most one byte per target byte; an opcode is one byte
    /// and its size varint at most [`MAX_VARINT_LEN`]; an address at most
    /// [`MAX_VARINT_LEN`] bytes per COPY.
    pub fn max_len(self, target_len: u64) -> u64 {
        let per_byte = match self {
            Section::Data => 1,
            Section::Inst => 1 + MAX_VARINT_LEN as u64,
            Section::Addr => MAX_VARINT_LEN as u64,
        };
        target_len.saturating_mul(per_byte)
    }
}

/// A compressed section split into its declared length and its piece of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed<'a> {
    /// The section's length uncompressed, checked against [`Section::max_len`].
    pub len: u64,
    /// The compressed bytes after the length.
    pub body: &'a [u8],
}

/// Splits compressed section `section` (its bytes, or at least its first
/// [`MAX_VARINT_LEN`]) of a window whose target is `target_len` bytes: the declared
/// length must be 1 (xdelta3 never compresses an empty section) to
/// [`Section::max_len`].
pub fn split(
    section: Section,
    bytes: &[u8],
    target_len: u64,
    place: Place,
) -> Result<Compressed<'_>, VcdiffError> {
    let mut c = Cursor::new(bytes, place);
    let field = section.length_field();
    let len = c.varint(field)?;
    let max = section.max_len(target_len);
    if len == 0 || len > max {
        return Err(VcdiffError::Invalid {
            place,
            field,
            problem: format!(
                "is {len} bytes; a {target_len}-byte target window needs 1 to {max} \
                 (the compressed section is damaged or a decompression bomb)"
            ),
        });
    }
    Ok(Compressed {
        len,
        body: &bytes[c.pos()..],
    })
}

/// The dictionary size of the `.xz` stream that starts `body` (the first compressed
/// piece of a section kind): its stream header (magic, flags with no check or any
/// check id, CRC32 not verified here: the decoder does) and its first block header,
/// which must have exactly one filter, LZMA2.
pub fn xz_dict_size(section: Section, body: &[u8], place: Place) -> Result<u32, VcdiffError> {
    let field = section.name();
    let bad = |problem: &str| VcdiffError::Invalid {
        place,
        field,
        problem: format!("does not start an LZMA stream as xdelta3 writes it: {problem}"),
    };
    let mut c = Cursor::new(body, place);
    if c.take(6, field)? != [0xFD, b'7', b'z', b'X', b'Z', 0x00] {
        return Err(bad("no .xz stream header"));
    }
    c.take(6, field)?; // stream flags and their CRC32
    let size = (usize::from(c.byte(field)?) + 1) * 4;
    if size == 4 {
        return Err(bad("an index where a block header should be"));
    }
    let flags = c.byte(field)?;
    if flags & 0x03 != 0 {
        return Err(bad("more than one filter (only LZMA2 alone)"));
    }
    if flags & 0x3C != 0 {
        return Err(bad("reserved block flags set"));
    }
    for present in [flags & 0x40 != 0, flags & 0x80 != 0] {
        if present {
            xz_int(&mut c, field, place)?;
        }
    }
    if xz_int(&mut c, field, place)? != 0x21 {
        return Err(bad("the filter is not LZMA2"));
    }
    if xz_int(&mut c, field, place)? != 1 {
        return Err(bad("LZMA2 properties are not one byte"));
    }
    let p = c.byte(field)?;
    if c.pos() - 12 > size {
        return Err(bad("the block header is longer than its size byte says"));
    }
    match p {
        0..40 => Ok((2 | u32::from(p & 1)) << (p / 2 + 11)),
        40 => Ok(u32::MAX),
        _ => Err(bad("invalid LZMA2 dictionary size")),
    }
}

/// An `.xz` variable-length integer (7 bits a byte, least significant first).
fn xz_int(c: &mut Cursor<'_>, field: &'static str, place: Place) -> Result<u64, VcdiffError> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = c.byte(field)?;
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VcdiffError::Invalid {
        place,
        field,
        problem: "has an .xz integer longer than 9 bytes".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place = Place::Window {
        index: 0,
        offset: 5,
    };

    #[test]
    fn a_declared_length_past_what_the_window_can_need_is_refused() {
        assert_eq!(split(Section::Data, &[3, 9, 9], 3, PLACE).unwrap().len, 3);
        let e = split(Section::Data, &[4, 9], 3, PLACE)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("uncompressed length of the data section is 4 bytes"),
            "{e}"
        );
        assert!(split(Section::Inst, &[33], 3, PLACE).is_ok());
        assert!(split(Section::Inst, &[34], 3, PLACE).is_err());
        assert!(split(Section::Addr, &[0], 3, PLACE).is_err());
        let mut huge = Vec::new();
        super::super::write_varint(&mut huge, 1 << 40);
        assert!(split(Section::Addr, &huge, 1 << 20, PLACE).is_err());
    }

    #[test]
    fn the_dictionary_size_is_read_from_the_block_header() {
        let mut s = vec![0xFD, b'7', b'z', b'X', b'Z', 0, 0, 0, 0, 0, 0, 0];
        s.extend_from_slice(&[2, 0, 0x21, 1, 22, 0, 0, 0]);
        assert_eq!(xz_dict_size(Section::Data, &s, PLACE).unwrap(), 8 << 20);
        s[16] = 41;
        assert!(xz_dict_size(Section::Data, &s, PLACE).is_err());
        s[16] = 22;
        s[14] = 0x03; // a delta filter
        assert!(xz_dict_size(Section::Data, &s, PLACE).is_err());
        assert!(xz_dict_size(Section::Data, &s[..10], PLACE).is_err());
    }
}
