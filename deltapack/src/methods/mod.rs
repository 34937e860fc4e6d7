//! The patch methods' encoders. Each turns (old, new) into a complete patch file's
//! bytes: header plus payload. [`crate::make_patch`] picks among them.

mod bsdiff;
mod fault;
mod single_frame;

pub(crate) use bsdiff::literal_clusters;
pub use bsdiff::{Transformed, encode as bsdiff, encode_transformed as bsdiff_transformed};
pub use single_frame::{full, zstd_ref};

use deltaapply::container::{FileId, Header, StreamSizes};
use deltaapply::{Method, Sha256Digest};

/// log2 of `n` rounded up, at least `deltaapply::container::MIN_WINDOW_LOG`.
pub(crate) fn window_log_for(n: u64) -> u8 {
    let min = deltaapply::container::MIN_WINDOW_LOG;
    if n <= 1 << min {
        return min;
    }
    (64 - (n - 1).leading_zeros()) as u8
}

/// Assembles header and payload into a patch file.
pub(crate) fn assemble(
    method: Method,
    window_log: u8,
    old: Option<&[u8]>,
    new: &[u8],
    streams: Option<StreamSizes>,
    payload: Vec<u8>,
) -> Vec<u8> {
    let id = |b: &[u8]| FileId {
        size: b.len() as u64,
        sha256: Sha256Digest::of(b),
    };
    let header = Header::unsigned(
        method,
        window_log,
        old.map(id),
        id(new),
        id(&payload),
        streams,
    );
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&payload);
    out
}
