//! Carrying out one window's instructions (RFC 3284 §5): the address cache of §5.3
//! with the default sizes (4 near, 3 same), a pre-pass that checks the instructions
//! against the window's lengths before anything is allocated, and the decoder.

use super::table::{CodeTable, Op};
use super::{Cursor, Place, VcdiffError, WindowHeader, adler32, write_varint};

/// Near cache slots of the default code table.
pub const NEAR: usize = 4;
/// Same cache blocks of the default code table (256 slots each).
pub const SAME: usize = 3;

/// How an address is written (§5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mode 0: the address itself, a varint.
    SelfAddr,
    /// Mode 1: the distance back from the current position, a varint.
    Here,
    /// Modes 2..=5: the distance forward from near cache slot `n`, a varint.
    Near(u8),
    /// Modes 6..=8: slot `256 × block + byte` of the same cache, one byte.
    Same(u8),
}

impl Mode {
    /// The mode number of an opcode.
    pub fn number(self) -> u8 {
        match self {
            Mode::SelfAddr => 0,
            Mode::Here => 1,
            Mode::Near(n) => 2 + n,
            Mode::Same(n) => 2 + NEAR as u8 + n,
        }
    }
}

/// The near and same caches, reset at the start of every window.
#[derive(Debug, Clone)]
pub struct AddressCache {
    near: [u64; NEAR],
    next: usize,
    same: Vec<u64>,
}

impl Default for AddressCache {
    fn default() -> Self {
        AddressCache::new()
    }
}

impl AddressCache {
    /// A cache as at the start of a window: every slot 0.
    pub fn new() -> AddressCache {
        AddressCache {
            near: [0; NEAR],
            next: 0,
            same: vec![0; SAME * 256],
        }
    }

    /// Records `addr`, as after every COPY.
    pub fn update(&mut self, addr: u64) {
        self.near[self.next] = addr;
        self.next = (self.next + 1) % NEAR;
        let slots = self.same.len() as u64;
        self.same[(addr % slots) as usize] = addr;
    }

    /// Decodes the address of a COPY in `mode` (0..=8) at position `here` (source
    /// segment length plus target bytes made so far), from the addresses section,
    /// and records it. The address must be below `here`.
    pub fn decode(
        &mut self,
        mode: u8,
        here: u64,
        addrs: &mut Cursor<'_>,
        place: Place,
    ) -> Result<u64, VcdiffError> {
        let field = "COPY address";
        let invalid = |problem: String| VcdiffError::Invalid {
            place,
            field,
            problem,
        };
        let addr = match mode {
            0 => addrs.varint(field)?,
            1 => {
                let back = addrs.varint(field)?;
                here.checked_sub(back).ok_or_else(|| {
                    invalid(format!(
                        "(mode HERE) goes {back} bytes back from position {here}, before 0"
                    ))
                })?
            }
            m if (m as usize) < 2 + NEAR => {
                let ahead = addrs.varint(field)?;
                let base = self.near[m as usize - 2];
                base.checked_add(ahead).ok_or_else(|| {
                    invalid(format!("(mode {m}, near {base}) plus {ahead} overflows"))
                })?
            }
            m if (m as usize) < 2 + NEAR + SAME => {
                let b = addrs.byte(field)?;
                self.same[(m as usize - 2 - NEAR) * 256 + b as usize]
            }
            m => return Err(invalid(format!("has mode {m}, beyond the 9 modes defined"))),
        };
        if addr >= here {
            return Err(invalid(format!(
                "{addr} is not below the current position {here} (source segment plus the \
                 target window so far)"
            )));
        }
        self.update(addr);
        Ok(addr)
    }

    /// The cheapest way to write `addr` at position `here` (`addr < here`): the mode
    /// and the bytes to put in the addresses section. Records it.
    pub fn encode(&mut self, addr: u64, here: u64, out: &mut Vec<u8>) -> Mode {
        let slots = self.same.len() as u64;
        let slot = (addr % slots) as usize;
        let mode = if self.same[slot] == addr {
            out.push((slot % 256) as u8);
            Mode::Same((slot / 256) as u8)
        } else {
            let mut best = (Mode::SelfAddr, addr);
            let mut consider = |m: Mode, v: u64| {
                if super::varint_len(v) < super::varint_len(best.1) {
                    best = (m, v);
                }
            };
            consider(Mode::Here, here - addr);
            for (i, &n) in self.near.iter().enumerate() {
                if addr >= n {
                    consider(Mode::Near(i as u8), addr - n);
                }
            }
            write_varint(out, best.1);
            best.0
        };
        self.update(addr);
        mode
    }
}

/// The size of an instruction half: the table's, or a varint that follows.
fn size_of(size: u8, inst: &mut Cursor<'_>, field: &'static str) -> Result<u64, VcdiffError> {
    if size == 0 {
        inst.varint(field)
    } else {
        Ok(u64::from(size))
    }
}

fn field_of(op: Op) -> &'static str {
    match op {
        Op::Add => "ADD size",
        Op::Run => "RUN size",
        Op::Copy(_) => "COPY size",
        Op::Noop => "NOOP",
    }
}

/// Walks the instructions section without carrying it out: every size is read, and
/// together they must make exactly the window's target length, the ADDs and RUNs
/// exactly its data section. Run before the target window is allocated, so that its
/// size is what the instructions justify, not only what the header says.
pub fn check_instructions(
    w: &WindowHeader,
    inst: &[u8],
    table: &CodeTable,
    place: Place,
) -> Result<(), VcdiffError> {
    let mut c = Cursor::new(inst, place);
    let (mut made, mut data) = (0u64, 0u64);
    while c.left() > 0 {
        let at = c.pos();
        let code = c.byte("instruction")?;
        for half in table.get(code) {
            if half.op == Op::Noop {
                continue;
            }
            let size = size_of(half.size, &mut c, field_of(half.op))?;
            if size == 0 {
                // It makes nothing; refusing it bounds the sections by the target
                // length (`Section::max_len`).
                return Err(VcdiffError::Invalid {
                    place,
                    field: field_of(half.op),
                    problem: format!(
                        "is 0 (opcode {code} at offset {at} of the instructions section): an \
                         instruction must make at least one byte"
                    ),
                });
            }
            if size > w.target_len - made {
                return Err(VcdiffError::Invalid {
                    place,
                    field: field_of(half.op),
                    problem: format!(
                        "{size} (opcode {code} at offset {at} of the instructions section) \
                         exceeds the {} bytes left of the {}-byte target window",
                        w.target_len - made,
                        w.target_len
                    ),
                });
            }
            made += size;
            data += match half.op {
                Op::Add => size,
                Op::Run => 1,
                _ => 0,
            };
        }
    }
    if made != w.target_len {
        return Err(VcdiffError::Invalid {
            place,
            field: "target window length",
            problem: format!(
                "is {} bytes, but the instructions make {made}",
                w.target_len
            ),
        });
    }
    if data != w.data_len {
        return Err(VcdiffError::Invalid {
            place,
            field: "data section length",
            problem: format!(
                "is {} bytes, but the ADD and RUN instructions take {data}",
                w.data_len
            ),
        });
    }
    Ok(())
}

/// Reads bytes of the source segment: `(offset in the segment, buffer to fill)`.
pub type ReadSource<'a, E> = dyn FnMut(u64, &mut [u8]) -> Result<(), E> + 'a;

/// What stopped a window's decoding.
#[derive(Debug)]
pub enum DecodeError<E> {
    /// The window is invalid.
    Vcdiff(VcdiffError),
    /// Reading the source segment failed.
    Source(E),
}

impl<E> From<VcdiffError> for DecodeError<E> {
    fn from(e: VcdiffError) -> Self {
        DecodeError::Vcdiff(e)
    }
}

/// Decodes window `w` from its `sections` (data, instructions, addresses, as in the
/// file) into `target` (empty; reserve [`WindowHeader::target_len`] first). Bytes of
/// the source segment are read by `source(offset in the segment, buffer)`. The
/// window's adler32 is checked if it has one.
pub fn decode_window<E>(
    w: &WindowHeader,
    sections: &[u8],
    table: &CodeTable,
    place: Place,
    target: &mut Vec<u8>,
    source: &mut ReadSource<'_, E>,
) -> Result<(), DecodeError<E>> {
    let invalid = |field, problem: String| VcdiffError::Invalid {
        place,
        field,
        problem,
    };
    if sections.len() as u64 != w.sections_len() {
        return Err(invalid(
            "sections",
            format!(
                "are {} bytes, the header says {}",
                sections.len(),
                w.sections_len()
            ),
        )
        .into());
    }
    let (data, rest) = sections.split_at(w.data_len as usize);
    let (inst, addr) = rest.split_at(w.inst_len as usize);
    let mut data = Cursor::new(data, place);
    let mut inst = Cursor::new(inst, place);
    let mut addr = Cursor::new(addr, place);
    let mut cache = AddressCache::new();
    let seg = w.segment_len();
    let start = target.len();
    while inst.left() > 0 {
        let code = inst.byte("instruction")?;
        for half in table.get(code) {
            if half.op == Op::Noop {
                continue;
            }
            let size = size_of(half.size, &mut inst, field_of(half.op))?;
            let made = (target.len() - start) as u64;
            if size > w.target_len - made {
                return Err(invalid(
                    field_of(half.op),
                    format!(
                        "{size} exceeds the {} bytes left of the {}-byte target window",
                        w.target_len - made,
                        w.target_len
                    ),
                )
                .into());
            }
            // Fits: the target window's length was admitted before `target` was sized.
            let n = size as usize;
            match half.op {
                Op::Add => target.extend_from_slice(data.take(n, "data section (ADD)")?),
                Op::Run => {
                    let b = data.byte("data section (RUN)")?;
                    target.resize(target.len() + n, b);
                }
                Op::Copy(mode) => {
                    let here = seg + made;
                    let a = cache.decode(mode, here, &mut addr, place)?;
                    copy(target, start, seg, a, size, source)?;
                }
                Op::Noop => {}
            }
        }
    }
    let made = (target.len() - start) as u64;
    if made != w.target_len {
        return Err(invalid(
            "target window length",
            format!(
                "is {} bytes, but the instructions make {made}",
                w.target_len
            ),
        )
        .into());
    }
    for (c, name) in [(&data, "data section"), (&addr, "addresses section")] {
        if c.left() > 0 {
            return Err(invalid(
                name,
                format!("has {} bytes the instructions do not use", c.left()),
            )
            .into());
        }
    }
    if let Some(expected) = w.adler32 {
        let got = adler32(&target[start..]);
        if got != expected {
            return Err(invalid(
                "adler32 checksum",
                format!(
                    "is {expected:08x}, but the target window decoded has {got:08x}: the \
                     patch is damaged or was made from another source file"
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// COPY of `size` bytes from address `a`: the part below `seg` from the source
/// segment, the rest from the target window (which may overlap what it makes).
fn copy<E>(
    target: &mut Vec<u8>,
    start: usize,
    seg: u64,
    a: u64,
    size: u64,
    source: &mut ReadSource<'_, E>,
) -> Result<(), DecodeError<E>> {
    let mut left = size as usize;
    let mut a = a;
    if a < seg {
        let n = (seg - a).min(size) as usize;
        let at = target.len();
        target.resize(at + n, 0);
        source(a, &mut target[at..]).map_err(DecodeError::Source)?;
        left -= n;
        a = seg;
    }
    // From here `a - seg` is in the target window, below its current end.
    let mut from = start + (a - seg) as usize;
    while left > 0 {
        let n = left.min(target.len() - from);
        target.extend_from_within(from..from + n);
        from += n;
        left -= n;
    }
    Ok(())
}
