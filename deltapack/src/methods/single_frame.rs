//! The two single-frame methods: `full` (the new file alone) and `zstd` (the new file
//! with the whole old file as reference prefix, as `zstd --patch-from` does).

use std::io::{self, Write};

use deltaapply::Method;
use zstd::stream::raw::CParameter;

use super::{assemble, window_log_for};
use crate::Settings;

/// The new file, zstd-compressed, with a window of at most `max_window_log`.
pub fn full(new: &[u8], settings: &Settings, max_window_log: u8) -> io::Result<Vec<u8>> {
    let window_log = window_log_for(new.len() as u64).min(max_window_log);
    let payload = compress(None, new, settings, window_log)?;
    Ok(assemble(Method::Full, window_log, None, new, None, payload))
}

/// The new file compressed against the old one as reference prefix. The window covers
/// old and new together so matches can reach the start of the old file.
pub fn zstd_ref(old: &[u8], new: &[u8], settings: &Settings) -> io::Result<Vec<u8>> {
    let window_log = window_log_for(old.len() as u64 + new.len() as u64)
        .min(deltaapply::container::MAX_WINDOW_LOG);
    let payload = compress(Some(old), new, settings, window_log)?;
    Ok(assemble(
        Method::ZstdRef,
        window_log,
        Some(old),
        new,
        None,
        payload,
    ))
}

fn compress(
    prefix: Option<&[u8]>,
    data: &[u8],
    settings: &Settings,
    window_log: u8,
) -> io::Result<Vec<u8>> {
    let out = Vec::with_capacity(data.len() / 4);
    let mut enc = match prefix {
        Some(p) => zstd::stream::write::Encoder::with_ref_prefix(out, settings.level, p)?,
        None => zstd::stream::write::Encoder::new(out, settings.level)?,
    };
    enc.set_parameter(CParameter::WindowLog(u32::from(window_log)))?;
    enc.set_parameter(CParameter::EnableLongDistanceMatching(
        window_log > 27 || prefix.is_some(),
    ))?;
    enc.include_checksum(false)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(data.len() as u64))?;
    settings.configure_workers(&mut enc)?;
    enc.write_all(&super::fault::corrupted(data))?;
    enc.finish()
}
