//! The bsdiff-class matcher: walks the new file, finds where it lines up with the old
//! file, and describes it as runs of "old bytes plus small differences" (which
//! compress to almost nothing when code moved and its pointers shifted) separated by
//! literal bytes.
//!
//! The approach is Colin Percival's: keep the current alignment (old offset) while it
//! explains the new bytes about as well as the best exact match, switch when an exact
//! match elsewhere beats it by more than [`SWITCH_MARGIN`] bytes, then extend both
//! alignments approximately to decide where one ends. Two changes keep it linear in
//! practice where bsdiff goes quadratic: positions the current alignment already
//! matches are skipped without a search, and match lengths are measured only up to
//! [`crate::suffix::MAX_MATCH`].

use crate::suffix::{SuffixIndex, common_prefix};

/// An exact match must beat the current alignment by more than this many bytes
/// before the matcher switches to it.
pub const SWITCH_MARGIN: usize = 8;

/// Receives the matcher's output in order.
pub trait Emit {
    /// `new[new_pos..new_pos + diff_len]` is coded against `old[old_pos..]`, then
    /// `new[new_pos + diff_len..new_pos + diff_len + extra_len]` is literal, then the old
    /// cursor moves by `seek`.
    fn segment(
        &mut self,
        new_pos: usize,
        old_pos: usize,
        diff_len: usize,
        extra_len: usize,
        seek: i64,
    );
}

/// Runs the matcher over `new` against the indexed old file.
pub fn diff(index: &SuffixIndex<'_>, old: &[u8], new: &[u8], out: &mut dyn Emit) {
    let (old_len, new_len) = (old.len(), new.len());
    // The byte at `i` agrees with the alignment `offset` (old position minus new position).
    let agrees = |i: usize, offset: isize| -> bool {
        let o = i as isize + offset;
        o >= 0 && (o as usize) < old_len && old[o as usize] == new[i]
    };

    let (mut scan, mut len, mut pos) = (0usize, 0usize, 0usize);
    let (mut last_scan, mut last_pos, mut last_offset) = (0usize, 0usize, 0isize);
    while scan < new_len {
        let mut old_score = 0usize;
        scan += len;
        let mut scored_to = scan;
        while scan < new_len {
            if agrees(scan, last_offset) {
                // The current alignment already explains this byte: measure its run
                // instead of searching, and let the outer loop jump over it.
                let o = (scan as isize + last_offset) as usize;
                // Bounded before comparing: on a long identical run, comparing to its
                // end at every 64 KiB step would be quadratic in the run's length.
                let end = (scan + crate::suffix::MAX_MATCH).min(new_len);
                len = common_prefix(&old[o..], &new[scan..end]);
                pos = o;
                old_score = len;
                break;
            }
            (pos, len) = index.longest_match(&new[scan..]);
            // Score the current alignment over the same span as the match.
            while scored_to < scan + len {
                if agrees(scored_to, last_offset) {
                    old_score += 1;
                }
                scored_to += 1;
            }
            if (len == old_score && len != 0) || len > old_score + SWITCH_MARGIN {
                break;
            }
            // `scan` leaves the scored span; it never agrees with the alignment here
            // (the shortcut above takes every byte that does), so the score stays.
            scan += 1;
            if scored_to < scan {
                scored_to = scan;
                old_score = 0;
            }
        }

        if len == old_score && scan != new_len {
            continue;
        }

        // Extend the previous alignment forward from last_scan.
        let mut lenf = 0usize;
        {
            let (mut s, mut best) = (0isize, 0isize);
            let mut i = 0usize;
            while last_scan + i < scan && last_pos + i < old_len {
                if old[last_pos + i] == new[last_scan + i] {
                    s += 1;
                }
                i += 1;
                if s * 2 - i as isize > best * 2 - lenf as isize {
                    best = s;
                    lenf = i;
                }
            }
        }
        // Extend the new alignment backward from scan.
        let mut lenb = 0usize;
        if scan < new_len {
            let (mut s, mut best) = (0isize, 0isize);
            let mut i = 1usize;
            while scan >= last_scan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    s += 1;
                }
                if s * 2 - i as isize > best * 2 - lenb as isize {
                    best = s;
                    lenb = i;
                }
                i += 1;
            }
        }
        // Where the two extensions overlap, split at the best point.
        if last_scan + lenf > scan - lenb {
            let overlap = (last_scan + lenf) - (scan - lenb);
            let (mut s, mut best, mut lens) = (0isize, 0isize, 0usize);
            for i in 0..overlap {
                if new[last_scan + lenf - overlap + i] == old[last_pos + lenf - overlap + i] {
                    s += 1;
                }
                if new[scan - lenb + i] == old[pos - lenb + i] {
                    s -= 1;
                }
                if s > best {
                    best = s;
                    lens = i + 1;
                }
            }
            lenf = lenf + lens - overlap;
            lenb -= lens;
        }

        let extra_len = (scan - lenb) - (last_scan + lenf);
        let seek = (pos as i64 - lenb as i64) - (last_pos + lenf) as i64;
        out.segment(
            last_scan,
            last_pos,
            lenf,
            extra_len,
            if scan < new_len { seek } else { 0 },
        );

        last_scan = scan - lenb;
        last_pos = pos - lenb;
        last_offset = pos as isize - scan as isize;
    }
}
