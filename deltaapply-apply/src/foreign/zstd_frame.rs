//! Applying a zstd frame made by `zstd --patch-from=OLD NEW`: the old file is the
//! frame's raw prefix. The frame header is checked first
//! ([`crate::zstd_frame::FrameHeader`]): a dictionary, a skippable frame or a window
//! beyond zstd's limit is refused, and the window it declares is allowed only if the
//! old file plus that window fit the caller's memory limit; libzstd's window limit is
//! then raised to exactly that window, never to what a later frame might claim (bytes
//! after the one frame are refused).

use std::io::{self, BufRead, BufReader, Read};

use super::{ForeignError, OldFile, PatchFile};
use crate::apply::{Section, Sink};
use crate::digest::IO_CHUNK;
use crate::zstd_frame::{FrameHeader, MAX_HEADER_LEN};

/// libzstd's decoding state beyond the window (its context, two blocks of 128 KiB,
/// the input buffer), rounded up, plus the applier's own buffers.
const FIXED: u64 = (1 << 20) + 2 * IO_CHUNK as u64;

/// A zstd frame ready to decode.
pub(super) struct Plan {
    /// Its header.
    pub(super) header: FrameHeader,
    /// The memory decoding it takes, at most: the old file, the window, [`FIXED`].
    pub(super) memory: u64,
    /// The window log libzstd is allowed.
    window_log: u32,
}

/// The frame header, validated.
pub(super) fn header(patch: &PatchFile) -> Result<FrameHeader, ForeignError> {
    let head = patch.head(0, MAX_HEADER_LEN)?;
    let header = FrameHeader::decode(&head).map_err(|source| ForeignError::ZstdFrame {
        path: patch.path.clone(),
        source,
    })?;
    if let Some(id) = header.dictionary_id {
        return Err(patch.corrupt(format!(
            "the zstd frame needs dictionary {id}; a --patch-from frame is made against the \
             old file, not a dictionary"
        )));
    }
    Ok(header)
}

/// The header and the memory bound for an old file of `old_size` bytes.
pub(super) fn plan(patch: &PatchFile, old_size: u64) -> Result<Plan, ForeignError> {
    let header = header(patch)?;
    // The smallest log whose power of two covers the window (zstd's windows are 2^n
    // plus eighths of it; libzstd compares the window with 2^window_log_max).
    let window_log = 64 - header.window_size.saturating_sub(1).leading_zeros();
    Ok(Plan {
        header,
        memory: old_size
            .saturating_add(header.window_size)
            .saturating_add(FIXED),
        window_log: window_log.max(10),
    })
}

/// Decodes the frame against `old` into `sink`, refusing output past `target_size`.
pub(super) fn decode(
    patch: &PatchFile,
    plan: &Plan,
    old: &OldFile,
    target_size: u64,
    sink: &mut Sink<'_, '_>,
) -> Result<(), ForeignError> {
    // The old file's size was counted in the memory bound checked by the caller.
    let mut prefix = Vec::new();
    prefix
        .try_reserve_exact(usize::try_from(old.size).unwrap_or(usize::MAX))
        .map_err(|_| old.io(io::Error::from(io::ErrorKind::OutOfMemory)))?;
    (&old.file)
        .take(old.size.saturating_add(1))
        .read_to_end(&mut prefix)
        .map_err(|e| old.io(e))?;
    if prefix.len() as u64 != old.size {
        return Err(old.io(io::Error::other(format!(
            "the old file changed size while it was read ({} bytes, then {})",
            old.size,
            prefix.len()
        ))));
    }
    let section = Section::new(&patch.file, 0, patch.len);
    let reader = BufReader::with_capacity(IO_CHUNK, section);
    // The old file is part of what the frame decodes against: a wrong one fails here
    // as often as a damaged frame does.
    let corrupt = |e: io::Error| {
        patch.corrupt(format!(
            "the zstd frame does not decode against the old file ({e}): the patch is damaged \
             or was made from another old file"
        ))
    };
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(reader, &prefix)
        .map_err(corrupt)?
        .single_frame();
    dec.window_log_max(plan.window_log).map_err(corrupt)?;
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        let n = match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(e)),
        };
        if n as u64 > target_size - sink.written() {
            return Err(patch.corrupt(format!(
                "the zstd frame decodes to more than the {target_size} bytes {}",
                if plan.header.content_size.is_some() {
                    "it declares"
                } else {
                    "expected"
                }
            )));
        }
        sink.write(&buf[..n])?;
    }
    let mut rest = dec.finish();
    match rest.fill_buf() {
        Ok([]) => Ok(()),
        Ok(_) => Err(patch.corrupt(
            "bytes follow the zstd frame (a second frame?): a --patch-from patch is one frame",
        )),
        Err(e) => Err(patch.io(e)),
    }
}
