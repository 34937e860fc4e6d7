//! A suffix-array index of the old file: finds, for any position of the new file, the
//! longest matching string in the old file.
//!
//! The suffix array comes from libsais (the fastest SA-IS implementation; linear time,
//! so large, zero-filled and repetitive inputs cost no more than any other). Searches
//! start in a bucket chosen by the first two bytes, carry the common-prefix lengths of
//! both bounds so no byte is compared twice per step, and stop comparing at
//! [`MAX_MATCH`]; an 8-gram presence filter answers "no useful match here" with one
//! memory access.

use libsais::{SuffixArrayConstruction, ThreadCount};

/// Matches are measured up to this length; longer ones are reported as this long and
/// the scanner continues from their end.
pub const MAX_MATCH: usize = 1 << 16;
/// Length of the n-grams the presence filter records.
pub const FILTER_GRAM: usize = 8;

/// Largest old file the index can hold (the suffix array uses 32-bit positions).
pub const MAX_OLD_SIZE: usize = i32::MAX as usize;

/// The index. Memory: 4 bytes per old byte for the suffix array, 256 KiB of buckets and
/// about 2 bits per old byte for the filter.
pub struct SuffixIndex<'a> {
    old: &'a [u8],
    sa: Vec<i32>,
    /// `bucket[k]` is the range of the suffix array whose suffixes start with the two
    /// bytes `k >> 8, k & 0xff`.
    bucket: Vec<(u32, u32)>,
    filter: GramFilter,
}

/// Why an index cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The old file is larger than the suffix array can address.
    #[error("old file is {size} bytes; the bsdiff method handles at most {MAX_OLD_SIZE}")]
    TooLarge {
        /// The old file's size.
        size: usize,
    },
    /// libsais failed.
    #[error("suffix sorting failed: {0}")]
    Sais(String),
}

impl<'a> SuffixIndex<'a> {
    /// Builds the index with up to `threads` threads.
    pub fn build(old: &'a [u8], threads: usize) -> Result<Self, IndexError> {
        if old.len() > MAX_OLD_SIZE {
            return Err(IndexError::TooLarge { size: old.len() });
        }
        let sa = if old.is_empty() {
            Vec::new()
        } else {
            let construction = SuffixArrayConstruction::for_text(old).in_owned_buffer32();
            let result = if threads > 1 {
                construction
                    .multi_threaded(ThreadCount::fixed(threads as u16))
                    .run()
            } else {
                construction.single_threaded().run()
            };
            result
                .map_err(|e| IndexError::Sais(format!("{e:?}")))?
                .into_vec()
        };
        let bucket = buckets(old);
        let filter = GramFilter::build(old);
        Ok(SuffixIndex {
            old,
            sa,
            bucket,
            filter,
        })
    }

    /// The longest prefix of `needle` (measured up to [`MAX_MATCH`]) that occurs in
    /// the old file, as `(old position, length)`. Returns length 0 when no match of
    /// at least [`FILTER_GRAM`] bytes can exist.
    pub fn longest_match(&self, needle: &[u8]) -> (usize, usize) {
        let needle = &needle[..needle.len().min(MAX_MATCH)];
        if needle.len() < FILTER_GRAM || !self.filter.may_contain(&needle[..FILTER_GRAM]) {
            return (0, 0);
        }
        let key = usize::from(needle[0]) << 8 | usize::from(needle[1]);
        let (lo, hi) = self.bucket[key];
        let (mut lo, mut hi) = (lo as usize, hi as usize);
        if lo == hi {
            return (0, 0);
        }
        // Invariant: suffixes before `lo` sort below the needle, suffixes at or after
        // `hi` above it; `lcp_lo`/`lcp_hi` are the common prefix lengths of the needle
        // with the suffixes at `lo - 1` and `hi` (both at least 2 inside a bucket).
        let (mut lcp_lo, mut lcp_hi) = (2usize, 2usize);
        let mut best = (self.sa[lo] as usize, 0usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let pos = self.sa[mid] as usize;
            let suffix = &self.old[pos..];
            let start = lcp_lo.min(lcp_hi);
            let l = start + common_prefix(&suffix[start.min(suffix.len())..], &needle[start..]);
            if l > best.1 {
                best = (pos, l);
            }
            if l == needle.len() {
                break;
            }
            if l == suffix.len() || suffix[l] < needle[l] {
                lo = mid + 1;
                lcp_lo = l;
            } else {
                hi = mid;
                lcp_hi = l;
            }
        }
        best
    }
}

/// Length of the common prefix of two slices.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    // Compare eight bytes at a time; the first differing byte is found by the
    // trailing zero count of the XOR (little-endian loads).
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Bucket ranges of the two-byte prefixes, computed by counting (no random access
/// into the suffix array). The one suffix of length 1 sorts before every longer suffix
/// with the same first byte, between two buckets.
fn buckets(old: &[u8]) -> Vec<(u32, u32)> {
    let mut count = vec![0u32; 1 << 16];
    for w in old.windows(2) {
        count[usize::from(w[0]) << 8 | usize::from(w[1])] += 1;
    }
    let last = old.last().map(|&b| usize::from(b));
    let mut bucket = vec![(0u32, 0u32); 1 << 16];
    let mut at = 0u32;
    for (key, &c) in count.iter().enumerate() {
        if key & 0xff == 0 && Some(key >> 8) == last {
            at += 1;
        }
        bucket[key] = (at, at + c);
        at += c;
    }
    bucket
}

/// A one-hash Bloom filter of every 8-gram of the old file.
struct GramFilter {
    bits: Vec<u64>,
    mask: u64,
}

impl GramFilter {
    fn build(old: &[u8]) -> Self {
        // About 2-4 bits per gram keeps false positives below ~40% while staying
        // small next to the suffix array.
        let nbits = (old.len().max(64) * 2).next_power_of_two() as u64;
        let mut bits = vec![0u64; (nbits / 64) as usize];
        let mask = nbits - 1;
        for w in old.windows(FILTER_GRAM) {
            let h = gram_hash(w) & mask;
            bits[(h >> 6) as usize] |= 1 << (h & 63);
        }
        GramFilter { bits, mask }
    }

    fn may_contain(&self, gram: &[u8]) -> bool {
        let h = gram_hash(gram) & self.mask;
        self.bits[(h >> 6) as usize] & (1 << (h & 63)) != 0
    }
}

fn gram_hash(gram: &[u8]) -> u64 {
    let v = u64::from_le_bytes(gram[..8].try_into().expect("8-byte gram"));
    (v.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .rotate_left(29)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
        >> 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(old: &[u8], needle: &[u8]) -> usize {
        (0..old.len())
            .map(|p| common_prefix(&old[p..], needle))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn matches_naive_search() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        };
        let old: Vec<u8> = (0..4000).map(|_| rnd() % 4).collect();
        let idx = SuffixIndex::build(&old, 1).unwrap();
        for start in (0..3900).step_by(37) {
            let mut needle = old[start..start + 40].to_vec();
            needle[20] ^= 1;
            let (pos, len) = idx.longest_match(&needle);
            let expect = naive(&old, &needle);
            if expect >= FILTER_GRAM {
                assert_eq!(len, expect, "start {start}");
                assert_eq!(common_prefix(&old[pos..], &needle), len);
            }
        }
    }

    #[test]
    fn buckets_agree_with_suffix_array() {
        let old = b"abracadabra abracadabra zzz\0\0\0a";
        let idx = SuffixIndex::build(old, 1).unwrap();
        for key in 0..1usize << 16 {
            let (lo, hi) = idx.bucket[key];
            for i in lo..hi {
                let p = idx.sa[i as usize] as usize;
                assert_eq!((usize::from(old[p]) << 8) | usize::from(old[p + 1]), key);
            }
        }
    }
}
