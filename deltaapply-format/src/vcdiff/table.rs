//! RFC 3284's default code table (§5.6): 256 opcodes, each one or two instructions of
//! a type, a size (0: the size follows as a varint in the instructions section) and,
//! for COPY, an address mode.

/// An instruction type (§5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Nothing (the second half of a single-instruction opcode).
    Noop,
    /// Append the next `size` bytes of the data section.
    Add,
    /// Append the next data byte `size` times.
    Run,
    /// Append `size` bytes from an address, in the mode given.
    Copy(u8),
}

/// One half of an opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// What it does.
    pub op: Op,
    /// Its size, 0 if the size follows in the instructions section.
    pub size: u8,
}

/// A code table: what each opcode means.
#[derive(Debug, Clone)]
pub struct CodeTable {
    entries: [[Instruction; 2]; 256],
}

const NOOP: Instruction = Instruction {
    op: Op::Noop,
    size: 0,
};

impl CodeTable {
    /// The default code table, built as §5.6 lays it out.
    pub fn default_table() -> CodeTable {
        let mut entries = [[NOOP; 2]; 256];
        let mut i = 0;
        let mut put = |first: Instruction, second: Instruction| {
            entries[i] = [first, second];
            i += 1;
        };
        let ins = |op, size| Instruction { op, size };
        put(ins(Op::Run, 0), NOOP);
        for size in 0..=17 {
            put(ins(Op::Add, size), NOOP);
        }
        for mode in 0..9 {
            put(ins(Op::Copy(mode), 0), NOOP);
            for size in 4..=18 {
                put(ins(Op::Copy(mode), size), NOOP);
            }
        }
        for mode in 0..6 {
            for add in 1..=4 {
                for copy in 4..=6 {
                    put(ins(Op::Add, add), ins(Op::Copy(mode), copy));
                }
            }
        }
        for mode in 6..9 {
            for add in 1..=4 {
                put(ins(Op::Add, add), ins(Op::Copy(mode), 4));
            }
        }
        for mode in 0..9 {
            put(ins(Op::Copy(mode), 4), ins(Op::Add, 1));
        }
        debug_assert_eq!(i, 256);
        CodeTable { entries }
    }

    /// The instructions of `opcode`.
    pub fn get(&self, opcode: u8) -> [Instruction; 2] {
        self.entries[opcode as usize]
    }
}

/// Opcodes of the default table, for an encoder.
pub mod opcode {
    /// RUN, its size following.
    pub const RUN: u8 = 0;

    /// ADD of `size` bytes: the opcode carrying the size (1..=17), or opcode 1 with
    /// the size following (`None` in the second place means "write the size").
    pub fn add(size: u64) -> (u8, bool) {
        if (1..=17).contains(&size) {
            (1 + size as u8, false)
        } else {
            (1, true)
        }
    }

    /// COPY of `size` bytes in `mode` (0..=8).
    pub fn copy(size: u64, mode: u8) -> (u8, bool) {
        let base = 19 + 16 * mode;
        if (4..=18).contains(&size) {
            (base + (size as u8 - 3), false)
        } else {
            (base, true)
        }
    }

    /// ADD of `add` bytes then COPY of `copy` bytes in `mode`, if one opcode does both.
    pub fn add_copy(add: u64, copy: u64, mode: u8) -> Option<u8> {
        if !(1..=4).contains(&add) {
            return None;
        }
        let add = add as u8;
        if mode < 6 && (4..=6).contains(&copy) {
            Some(163 + mode * 12 + (add - 1) * 3 + (copy as u8 - 4))
        } else if (6..9).contains(&mode) && copy == 4 {
            Some(235 + (mode - 6) * 4 + (add - 1))
        } else {
            None
        }
    }

    /// COPY of 4 bytes in `mode` then ADD of 1 byte, if `copy` and `add` are those.
    pub fn copy_add(copy: u64, mode: u8, add: u64) -> Option<u8> {
        (copy == 4 && add == 1 && mode < 9).then_some(247 + mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_has_the_rfc_layout() {
        let t = CodeTable::default_table();
        let one = |op, size| [Instruction { op, size }, NOOP];
        assert_eq!(t.get(0), one(Op::Run, 0));
        assert_eq!(t.get(1), one(Op::Add, 0));
        assert_eq!(t.get(18), one(Op::Add, 17));
        assert_eq!(t.get(19), one(Op::Copy(0), 0));
        assert_eq!(t.get(20), one(Op::Copy(0), 4));
        assert_eq!(t.get(34), one(Op::Copy(0), 18));
        assert_eq!(t.get(35), one(Op::Copy(1), 0));
        assert_eq!(t.get(162), one(Op::Copy(8), 18));
        let two = |a, c, m| {
            [
                Instruction {
                    op: Op::Add,
                    size: a,
                },
                Instruction {
                    op: Op::Copy(m),
                    size: c,
                },
            ]
        };
        assert_eq!(t.get(163), two(1, 4, 0));
        assert_eq!(t.get(165), two(1, 6, 0));
        assert_eq!(t.get(166), two(2, 4, 0));
        assert_eq!(t.get(234), two(4, 6, 5));
        assert_eq!(t.get(235), two(1, 4, 6));
        assert_eq!(t.get(246), two(4, 4, 8));
        assert_eq!(
            t.get(255),
            [
                Instruction {
                    op: Op::Copy(8),
                    size: 4
                },
                Instruction {
                    op: Op::Add,
                    size: 1
                }
            ]
        );
        // The encoder's opcodes mean what the table says.
        for size in 0..30u64 {
            let (code, explicit) = opcode::add(size);
            let [i, _] = t.get(code);
            assert_eq!(i.op, Op::Add);
            assert_eq!(explicit, i.size == 0);
            if !explicit {
                assert_eq!(u64::from(i.size), size);
            }
            for mode in 0..9 {
                let (code, explicit) = opcode::copy(size, mode);
                let [i, _] = t.get(code);
                assert_eq!(i.op, Op::Copy(mode));
                assert_eq!(explicit, i.size == 0);
                for add in 0..6 {
                    if let Some(code) = opcode::add_copy(add, size, mode) {
                        assert_eq!(t.get(code), two(add as u8, size as u8, mode));
                    }
                    if let Some(code) = opcode::copy_add(size, mode, add) {
                        let [c, a] = t.get(code);
                        assert_eq!(
                            (c.op, c.size, a.op, a.size),
                            (Op::Copy(mode), 4, Op::Add, 1)
                        );
                    }
                }
            }
        }
    }
}
