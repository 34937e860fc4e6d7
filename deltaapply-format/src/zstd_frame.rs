//! The header of a zstd frame (RFC 8878 §3.1.1), without I/O: what an applier must know
//! before it lets libzstd decode a frame made by `zstd --patch-from` (the window it
//! will need, the content size, a dictionary it would ask for), so that the window is
//! the device's decision and not the frame's (`format-spec/foreign.md` §3).

use crate::codec::Reader;

/// The magic number of a zstd frame, as it is on the wire.
pub const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// The longest frame header: magic, descriptor, window descriptor, a 4-byte
/// dictionary ID and an 8-byte content size.
pub const MAX_HEADER_LEN: usize = 18;
/// The largest window libzstd decodes (on 64-bit targets), as a log.
pub const MAX_WINDOW_LOG: u32 = 31;

/// Whether `bytes` start with a skippable frame's magic (`0x184D2A50..=0x184D2A5F`).
pub fn is_skippable(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes[0] & 0xF0 == 0x50 && bytes[1..4] == [0x2A, 0x4D, 0x18]
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FrameHeader {
    /// The window the frame needs, in bytes (for a single-segment frame, its content
    /// size).
    pub window_size: u64,
    /// The content size it declares, if it declares one.
    pub content_size: Option<u64>,
    /// The dictionary it was made with, if any (`--patch-from` frames name none: the
    /// old file is a raw prefix).
    pub dictionary_id: Option<u32>,
    /// Whether a content checksum (XXH64) ends the frame.
    pub checksum: bool,
    /// The header's length in bytes.
    pub header_len: usize,
}

impl FrameHeader {
    /// Decodes the frame header at the start of `head` (up to [`MAX_HEADER_LEN`] bytes
    /// of the frame suffice).
    pub fn decode(head: &[u8]) -> Result<FrameHeader, FrameError> {
        if is_skippable(head) {
            return Err(FrameError::Skippable);
        }
        let mut r = Reader::new(head);
        let truncated = |_| FrameError::Truncated { got: head.len() };
        let magic: [u8; 4] = r.array("zstd magic").map_err(|_| FrameError::BadMagic)?;
        if magic != MAGIC {
            return Err(FrameError::BadMagic);
        }
        let descriptor = r.u8("Frame_Header_Descriptor").map_err(truncated)?;
        if descriptor & 0x08 != 0 {
            return Err(FrameError::ReservedBit);
        }
        let single_segment = descriptor & 0x20 != 0;
        let window = if single_segment {
            None
        } else {
            let w = r.u8("Window_Descriptor").map_err(truncated)?;
            let log = 10 + u32::from(w >> 3);
            if log > MAX_WINDOW_LOG {
                return Err(FrameError::WindowTooLarge { log });
            }
            let base = 1u64 << log;
            Some(base + base / 8 * u64::from(w & 7))
        };
        let dictionary_id = match descriptor & 3 {
            0 => 0,
            1 => u32::from(r.u8("Dictionary_ID").map_err(truncated)?),
            2 => u32::from(r.u16("Dictionary_ID").map_err(truncated)?),
            _ => u32::from_le_bytes(r.array("Dictionary_ID").map_err(truncated)?),
        };
        let content_size = match (descriptor >> 6, single_segment) {
            (0, false) => None,
            (0, true) => Some(u64::from(r.u8("Frame_Content_Size").map_err(truncated)?)),
            (1, _) => Some(u64::from(r.u16("Frame_Content_Size").map_err(truncated)?) + 256),
            (2, _) => Some(u64::from(u32::from_le_bytes(
                r.array("Frame_Content_Size").map_err(truncated)?,
            ))),
            _ => Some(r.u64("Frame_Content_Size").map_err(truncated)?),
        };
        Ok(FrameHeader {
            // A single-segment frame always has a content size (the flags give it one).
            window_size: window.or(content_size).unwrap_or(0),
            content_size,
            dictionary_id: (dictionary_id != 0).then_some(dictionary_id),
            checksum: descriptor & 0x04 != 0,
            header_len: r.position(),
        })
    }
}

/// Why the start of a zstd frame is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not a zstd frame.
    #[error("not a zstd frame (bad magic bytes)")]
    BadMagic,
    /// A skippable frame, which carries no content.
    #[error("starts with a skippable frame, not a zstd frame with content")]
    Skippable,
    /// The header is cut short.
    #[error("truncated: the zstd frame header is cut off after {got} bytes")]
    Truncated {
        /// Bytes present.
        got: usize,
    },
    /// The descriptor's reserved bit is set.
    #[error("zstd frame header descriptor has its reserved bit set")]
    ReservedBit,
    /// The window is beyond what zstd can decode.
    #[error("zstd frame window 2^{log} is beyond zstd's limit of 2^{MAX_WINDOW_LOG}")]
    WindowTooLarge {
        /// The window's log.
        log: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decode_field_by_field() {
        // Window descriptor 0x58: log 21, no mantissa; 4-byte content size 1000.
        let h = [0x28, 0xB5, 0x2F, 0xFD, 0x80, 0x58, 0xE8, 0x03, 0, 0];
        let f = FrameHeader::decode(&h).unwrap();
        assert_eq!(f.window_size, 1 << 21);
        assert_eq!(f.content_size, Some(1000));
        assert_eq!(
            (f.dictionary_id, f.checksum, f.header_len),
            (None, false, 10)
        );
        // Single segment, 1-byte content size, checksum, 1-byte dictionary 7.
        let f = FrameHeader::decode(&[0x28, 0xB5, 0x2F, 0xFD, 0x25, 7, 42]).unwrap();
        assert_eq!(
            (f.window_size, f.content_size, f.dictionary_id, f.checksum),
            (42, Some(42), Some(7), true)
        );
        // 2-byte content size is offset by 256; mantissa adds eighths of the base.
        let f = FrameHeader::decode(&[0x28, 0xB5, 0x2F, 0xFD, 0x40, 0x03, 0, 1]).unwrap();
        assert_eq!((f.content_size, f.window_size), (Some(512), 1024 + 3 * 128));
        for n in 0..10 {
            let e = FrameHeader::decode(&h[..n]).unwrap_err();
            assert!(
                matches!(e, FrameError::Truncated { .. } | FrameError::BadMagic),
                "{n}: {e}"
            );
        }
        assert_eq!(
            FrameHeader::decode(&[0x28, 0xB5, 0x2F, 0xFD, 0x08, 0]),
            Err(FrameError::ReservedBit)
        );
        assert_eq!(
            FrameHeader::decode(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xF8]),
            Err(FrameError::WindowTooLarge { log: 41 })
        );
        assert_eq!(
            FrameHeader::decode(&[0x5A, 0x2A, 0x4D, 0x18, 0, 0, 0, 0]),
            Err(FrameError::Skippable)
        );
    }
}
