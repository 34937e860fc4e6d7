//! The LZMA secondary decompressor of VCDIFF sections, as xdelta3 writes them
//! (`format-spec/vcdiff.md` §1.1): one liblzma `.xz` stream decoder per kind of section,
//! created at its first compressed section and kept across the windows. Each piece is
//! decoded into exactly its declared length (the decoder is never given more room, so a
//! bomb stops there) and must use up its section.

use liblzma::stream::{Action, Status, Stream};

use crate::vcdiff::secondary::{self, Section};
use crate::vcdiff::{Place, VcdiffError, WindowHeader};

/// What liblzma's LZMA2 decoder takes beyond its dictionary (its probabilities, the
/// stream and block decoders: tens of KiB), with room to spare; its memory limit is the
/// dictionary plus this.
const STATE: u64 = 1 << 20;

/// Memory the decoder of a stream with a `dict`-byte dictionary may take.
pub(super) fn memory(dict: u32) -> u64 {
    u64::from(dict) + STATE
}

/// Why a window's sections did not decompress.
pub(super) enum Failure {
    /// The section is invalid or does not decompress.
    Vcdiff(VcdiffError),
    /// The window differs from what the plan read.
    Changed,
    /// The admitted buffer could not be allocated.
    Alloc(usize),
}

impl From<VcdiffError> for Failure {
    fn from(e: VcdiffError) -> Self {
        Failure::Vcdiff(e)
    }
}

/// The three decoders, and the dictionaries the plan admitted for them.
pub(super) struct Decoders {
    dicts: [Option<u32>; 3],
    streams: [Option<Stream>; 3],
}

impl Decoders {
    /// No decoder yet; `dicts` as [`super::Plan::dicts`].
    pub(super) fn new(dicts: [Option<u32>; 3]) -> Decoders {
        Decoders {
            dicts,
            streams: [None, None, None],
        }
    }

    /// Puts window `w`'s three sections, uncompressed, one after the other into
    /// `plain`, from `sections` (as stored); at most `budget` bytes. Returns their
    /// lengths.
    pub(super) fn window(
        &mut self,
        w: &WindowHeader,
        sections: &[u8],
        budget: u64,
        place: Place,
        plain: &mut Vec<u8>,
    ) -> Result<[u64; 3], Failure> {
        let mut lens = [0u64; 3];
        let mut parts: [&[u8]; 3] = [&[]; 3];
        let mut at = 0usize;
        for section in Section::ALL {
            let n = w.section_len(section) as usize;
            let bytes = &sections[at..at + n];
            at += n;
            let i = section.index();
            if w.is_compressed(section) {
                let c = secondary::split(section, bytes, w.target_len, place)?;
                lens[i] = c.len;
                parts[i] = c.body;
            } else {
                lens[i] = n as u64;
                parts[i] = bytes;
            }
        }
        let total = lens.iter().fold(0u64, |t, &n| t.saturating_add(n));
        if total > budget {
            return Err(Failure::Changed);
        }
        let total = total as usize;
        plain.clear();
        plain
            .try_reserve_exact(total)
            .map_err(|_| Failure::Alloc(total))?;
        for section in Section::ALL {
            let i = section.index();
            if !w.is_compressed(section) {
                plain.extend_from_slice(parts[i]);
                continue;
            }
            if self.streams[i].is_none() {
                let dict = self.dicts[i].ok_or(Failure::Changed)?;
                let stream = Stream::new_stream_decoder(memory(dict), 0)
                    .map_err(|e| lzma_error(section, place, &e.to_string()))?;
                self.streams[i] = Some(stream);
            }
            let stream = self.streams[i].as_mut().expect("created above");
            inflate(stream, parts[i], lens[i] as usize, section, place, plain)?;
        }
        Ok(lens)
    }
}

fn lzma_error(section: Section, place: Place, problem: &str) -> VcdiffError {
    VcdiffError::Invalid {
        place,
        field: section.name(),
        problem: format!("does not decompress (LZMA: {problem})"),
    }
}

/// Decodes the next `len` bytes of `stream` from `body`, which they must use up,
/// appending them to `out` (which has room for them).
fn inflate(
    stream: &mut Stream,
    body: &[u8],
    len: usize,
    section: Section,
    place: Place,
    out: &mut Vec<u8>,
) -> Result<(), VcdiffError> {
    let start = out.len();
    out.resize(start + len, 0);
    let (mut read, mut made) = (0usize, 0usize);
    while made < len {
        let (in0, out0) = (stream.total_in(), stream.total_out());
        let status = stream
            .process(&body[read..], &mut out[start + made..], Action::Run)
            .map_err(|e| lzma_error(section, place, &e.to_string()))?;
        let (took, gave) = (
            (stream.total_in() - in0) as usize,
            (stream.total_out() - out0) as usize,
        );
        read += took;
        made += gave;
        if made < len && (status == Status::StreamEnd || (took == 0 && gave == 0)) {
            let why = match status {
                Status::StreamEnd => "the stream ends",
                _ => "the compressed bytes end",
            };
            return Err(VcdiffError::Invalid {
                place,
                field: section.name(),
                problem: format!(
                    "is truncated: {why} after {made} of its {len} uncompressed bytes"
                ),
            });
        }
    }
    if read != body.len() {
        return Err(VcdiffError::Invalid {
            place,
            field: section.name(),
            problem: format!(
                "has {} compressed bytes left after its {len} uncompressed bytes",
                body.len() - read
            ),
        });
    }
    Ok(())
}
