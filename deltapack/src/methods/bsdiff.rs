//! The bsdiff method's encoder: runs the matcher and streams its output into zstd
//! encoders for the control, diff and extra streams. The diff stream is compressed
//! both plain and zero-run coded, and the smaller is kept: zero-run coding wins when
//! exact matches leave long zero runs (disk images, Go binaries), plain when the
//! differences are dense (measured on the corpus: each wins on some pairs).

use std::io::{self, Write};

use deltaapply::Method;
use deltaapply::container::{DiffCoding, MAX_CONTROL_WINDOW_LOG, StreamSizes};
use deltaapply::control::{Op, ZeroRunWriter};
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
    encode_transformed(index, old, new, settings, max_window_log, None)
}

/// The real files and transform table of a transformed bsdiff patch
/// (`format-spec/patch-v1.md` §5.2.6), whose `old` and `new` are the filtered files.
pub struct Transformed<'a> {
    /// The old file as it is (its size and SHA-256 go in the header).
    pub old: &'a [u8],
    /// The new file as it is.
    pub new: &'a [u8],
    /// The encoded transform table.
    pub table: Vec<u8>,
}

/// [`encode`] of filtered files, with the transform that filtered them.
pub fn encode_transformed(
    index: &SuffixIndex<'_>,
    old: &[u8],
    new: &[u8],
    settings: &Settings,
    max_window_log: u8,
    transform: Option<Transformed<'_>>,
) -> io::Result<Vec<u8>> {
    let window_log = window_log_for(new.len() as u64).min(max_window_log);
    let mut streams = Streams {
        old,
        new,
        control: Vec::new(),
        diff: encoder(settings, window_log)?,
        diff_zero_run: encoder(settings, window_log)?,
        zero_run: ZeroRunWriter::default(),
        coded: Vec::new(),
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
    streams.zero_run.finish(&mut streams.coded);
    streams.diff_zero_run.write_all(&streams.coded)?;
    let plain = streams.diff.finish()?;
    let zero_run = streams.diff_zero_run.finish()?;
    let (diff, diff_coding) = if zero_run.len() < plain.len() {
        (zero_run, DiffCoding::ZeroRun)
    } else {
        (plain, DiffCoding::Plain)
    };
    let extra = streams.extra.finish()?;
    let mut control_enc = encoder(settings, window_log.min(MAX_CONTROL_WINDOW_LOG))?;
    control_enc.write_all(&streams.control)?;
    let control = control_enc.finish()?;

    let sizes = StreamSizes {
        control: control.len() as u64,
        diff: diff.len() as u64,
        extra: extra.len() as u64,
        diff_coding,
        transform: transform.as_ref().map_or(0, |t| t.table.len() as u64),
    };
    let (real_old, real_new, mut payload) = match transform {
        Some(t) => (t.old, t.new, t.table),
        None => (old, new, Vec::new()),
    };
    payload.extend_from_slice(&control);
    payload.extend_from_slice(&diff);
    payload.extend_from_slice(&extra);
    Ok(assemble(
        Method::Bsdiff,
        window_log,
        Some(real_old),
        real_new,
        Some(sizes),
        payload,
    ))
}

/// Below this window log the match tables are capped by the window.
const SMALL_WINDOW_LOG: u8 = 21;

fn encoder(settings: &Settings, window_log: u8) -> io::Result<Encoder<'static, Vec<u8>>> {
    let mut enc = Encoder::new(Vec::new(), settings.level)?;
    enc.set_parameter(CParameter::WindowLog(u32::from(window_log)))?;
    // The stream's size is not known up front, so zstd would size its match tables
    // for large inputs (about 80 MiB at level 19) even for a tiny patch: for small
    // windows, cap them by the window. Large windows keep the level's own tables.
    if window_log < SMALL_WINDOW_LOG {
        let tables = u32::from(window_log) + 1;
        enc.set_parameter(CParameter::HashLog(tables))?;
        enc.set_parameter(CParameter::ChainLog(tables))?;
    }
    enc.include_checksum(false)?;
    settings.configure_workers(&mut enc)?;
    Ok(enc)
}

struct Streams<'a> {
    old: &'a [u8],
    new: &'a [u8],
    control: Vec<u8>,
    diff: Encoder<'static, Vec<u8>>,
    diff_zero_run: Encoder<'static, Vec<u8>>,
    zero_run: ZeroRunWriter,
    /// Zero-run coded bytes on their way to `diff_zero_run`.
    coded: Vec<u8>,
    extra: Encoder<'static, Vec<u8>>,
    buf: Vec<u8>,
    /// The last op, held back so that a following op producing no bytes can be folded
    /// into its seek: the format allows such an op only as the first record.
    pending: Option<Op>,
    error: Option<io::Error>,
}

impl Streams<'_> {
    /// Queues an op for the control stream, folding an op that produces nothing into
    /// the previous op's seek.
    fn push_op(&mut self, op: Op) {
        match &mut self.pending {
            Some(prev) if op.diff_len == 0 && op.extra_len == 0 => prev.seek += op.seek,
            pending => {
                if let Some(prev) = pending.replace(op) {
                    prev.encode(&mut self.control);
                }
            }
        }
    }

    /// Writes `new[new_pos..][..len] - old[old_pos..][..len]` to the diff stream.
    fn write_diff(&mut self, new_pos: usize, old_pos: usize, len: usize) -> io::Result<()> {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(self.buf.len());
            let new = &self.new[new_pos + done..new_pos + done + n];
            let old = &self.old[old_pos + done..old_pos + done + n];
            for ((d, &a), &b) in self.buf.iter_mut().zip(new).zip(old) {
                *d = a.wrapping_sub(b);
            }
            super::fault::corrupt(&mut self.buf[..n]);
            self.diff.write_all(&self.buf[..n])?;
            self.zero_run.push(&self.buf[..n], &mut self.coded);
            self.diff_zero_run.write_all(&self.coded)?;
            self.coded.clear();
            done += n;
        }
        Ok(())
    }

    fn emit(
        &mut self,
        new_pos: usize,
        old_pos: usize,
        diff_len: usize,
        extra_len: usize,
        seek: i64,
    ) -> io::Result<()> {
        // Dense clusters of mismatches inside the aligned region (rewritten code, a
        // random overwrite) go to the extra stream as literals, with a seek that keeps
        // the old cursor aligned: literals compress against the rest of the new file,
        // while their differences from unrelated old bytes are noise.
        let mut start = 0;
        for (cs, ce) in literal_clusters(
            &self.new[new_pos..new_pos + diff_len],
            &self.old[old_pos..old_pos + diff_len],
        ) {
            let run = (ce - cs) as u64;
            self.push_op(Op {
                diff_len: (cs - start) as u64,
                extra_len: run,
                seek: run as i64,
            });
            self.write_diff(new_pos + start, old_pos + start, cs - start)?;
            self.extra
                .write_all(&self.new[new_pos + cs..new_pos + ce])?;
            start = ce;
        }
        self.push_op(Op {
            diff_len: (diff_len - start) as u64,
            extra_len: extra_len as u64,
            seek,
        });
        self.write_diff(new_pos + start, old_pos + start, diff_len - start)?;
        let at = new_pos + diff_len;
        self.extra.write_all(&self.new[at..at + extra_len])
    }
}

/// Mismatch clusters shorter than this stay in the diff stream.
const MIN_CLUSTER: usize = 16;
/// This many matching bytes in a row end a cluster.
const CLUSTER_GAP: usize = 8;
/// At least this share (percent) of a cluster's bytes must mismatch.
const CLUSTER_DENSITY: usize = 75;

/// The mismatch clusters of an aligned region worth coding as literals: maximal runs
/// in which no [`CLUSTER_GAP`] consecutive bytes match, at least [`MIN_CLUSTER`] long
/// and at least [`CLUSTER_DENSITY`] percent mismatches. Measured on the corpus: moves
/// random overwrites out of the diff stream (0.2% smaller on the disk image) and helps
/// rebuilt native code slightly.
pub(crate) fn literal_clusters(new: &[u8], old: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = new.len();
    while i < n {
        if new[i] == old[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut mismatches = 1;
        let mut j = i + 1;
        let mut run = 0;
        while j < n {
            if new[j] == old[j] {
                run += 1;
                if run >= CLUSTER_GAP {
                    break;
                }
            } else {
                run = 0;
                mismatches += 1;
                end = j + 1;
            }
            j += 1;
        }
        if end - start >= MIN_CLUSTER && mismatches * 100 >= (end - start) * CLUSTER_DENSITY {
            out.push((start, end));
        }
        i = end;
    }
    out
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
        if let Err(e) = self.emit(new_pos, old_pos, diff_len, extra_len, seek) {
            self.error = Some(e);
        }
    }
}
