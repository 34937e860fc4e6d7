//! The bsdiff method's encoder: runs the matcher and streams its output into three
//! zstd encoders (control, diff, extra).

use std::io::{self, Write};

use deltaapply::Method;
use deltaapply::container::{MAX_CONTROL_WINDOW_LOG, StreamSizes};
use deltaapply::control::Op;
use zstd::stream::raw::CParameter;
use zstd::stream::write::Encoder;

use super::{assemble, window_log_for};
use crate::Settings;
use crate::matcher::{self, Emit};
use crate::suffix::SuffixIndex;

/// Encodes a bsdiff patch, with zstd windows of at most `2^max_window_log`.
pub fn encode(
    index: &SuffixIndex<'_>,
    old: &[u8],
    new: &[u8],
    settings: &Settings,
    max_window_log: u8,
) -> io::Result<Vec<u8>> {
    let window_log = window_log_for(new.len() as u64).min(max_window_log);
    let mut streams = Streams {
        old,
        new,
        control: Vec::new(),
        diff: encoder(settings, window_log)?,
        extra: encoder(settings, window_log)?,
        buf: vec![0u8; 64 << 10],
        pending: None,
        error: None,
    };
    matcher::diff(index, old, new, &mut streams);
    if let Some(op) = streams.pending.take() {
        op.encode(&mut streams.control);
    }
    if let Some(e) = streams.error {
        return Err(e);
    }
    let diff = streams.diff.finish()?;
    let extra = streams.extra.finish()?;
    let mut control_enc = encoder(settings, window_log.min(MAX_CONTROL_WINDOW_LOG))?;
    control_enc.write_all(&streams.control)?;
    let control = control_enc.finish()?;

    let sizes = StreamSizes {
        control: control.len() as u64,
        diff: diff.len() as u64,
        extra: extra.len() as u64,
    };
    let mut payload = control;
    payload.extend_from_slice(&diff);
    payload.extend_from_slice(&extra);
    Ok(assemble(
        Method::Bsdiff,
        window_log,
        Some(old),
        new,
        Some(sizes),
        payload,
    ))
}

fn encoder(settings: &Settings, window_log: u8) -> io::Result<Encoder<'static, Vec<u8>>> {
    let mut enc = Encoder::new(Vec::new(), settings.level)?;
    enc.set_parameter(CParameter::WindowLog(u32::from(window_log)))?;
    enc.include_checksum(false)?;
    settings.configure_workers(&mut enc)?;
    Ok(enc)
}

struct Streams<'a> {
    old: &'a [u8],
    new: &'a [u8],
    control: Vec<u8>,
    diff: Encoder<'static, Vec<u8>>,
    extra: Encoder<'static, Vec<u8>>,
    buf: Vec<u8>,
    /// The last op, held back so that a following op producing no bytes can be folded
    /// into its seek: the format allows such an op only as the first record.
    pending: Option<Op>,
    error: Option<io::Error>,
}

impl Emit for Streams<'_> {
    fn segment(
        &mut self,
        new_pos: usize,
        old_pos: usize,
        diff_len: usize,
        extra_len: usize,
        seek: i64,
    ) {
        if self.error.is_some() {
            return;
        }
        let op = Op {
            diff_len: diff_len as u64,
            extra_len: extra_len as u64,
            seek,
        };
        match &mut self.pending {
            Some(prev) if diff_len == 0 && extra_len == 0 => prev.seek += seek,
            pending => {
                if let Some(prev) = pending.replace(op) {
                    prev.encode(&mut self.control);
                }
            }
        }
        let mut done = 0;
        while done < diff_len {
            let n = (diff_len - done).min(self.buf.len());
            let new = &self.new[new_pos + done..new_pos + done + n];
            let old = &self.old[old_pos + done..old_pos + done + n];
            for ((d, &a), &b) in self.buf.iter_mut().zip(new).zip(old) {
                *d = a.wrapping_sub(b);
            }
            if let Err(e) = self.diff.write_all(&self.buf[..n]) {
                self.error = Some(e);
                return;
            }
            done += n;
        }
        let start = new_pos + diff_len;
        if let Err(e) = self.extra.write_all(&self.new[start..start + extra_len]) {
            self.error = Some(e);
        }
    }
}
