//! Recognising executables for the bsdiff method's executable transform
//! (`format-spec/patch-v1.md` §5.2.6): the machine-code ranges of an ELF, PE/COFF or
//! Mach-O file for x86 or x86-64, found from its headers. Detection is the producer's
//! business only: the applier is told the ranges. Every header field is checked
//! against the file's length, and anything inconsistent means "not an executable"
//! (no transform), never a panic.

use deltaapply::exe::{Filter, MAX_RANGES, Range};

/// Which transform the bsdiff method uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransformChoice {
    /// Diff with and without the transform when old or new is a recognised
    /// executable, and keep the smaller patch.
    #[default]
    Auto,
    /// Never transform.
    None,
    /// Transform `call` targets (filter 1) whenever old or new is a recognised x86
    /// executable, even when the patch comes out larger.
    X86,
    /// As [`TransformChoice::X86`], with `jmp` and `jcc` targets too (filter 2).
    X86Branches,
}

impl std::str::FromStr for TransformChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TransformChoice::Auto),
            "none" => Ok(TransformChoice::None),
            "x86" => Ok(TransformChoice::X86),
            "x86-branches" => Ok(TransformChoice::X86Branches),
            _ => Err(format!(
                "unknown transform {s:?}: auto, none, x86 or x86-branches"
            )),
        }
    }
}

/// The x86 code ranges of `data` if it is an ELF, PE or Mach-O file for x86 or
/// x86-64, sorted, disjoint, at most [`MAX_RANGES`], to be coded with `filter`; empty
/// otherwise.
pub fn code_ranges(data: &[u8], filter: Filter) -> Vec<Range> {
    let found = elf(data)
        .or_else(|| pe(data))
        .or_else(|| macho(data))
        .unwrap_or_default();
    tidy(found, data.len() as u64, filter)
}

/// Drops empty, out-of-bounds and overlapping ranges and keeps the largest
/// [`MAX_RANGES`], sorted by start.
fn tidy(mut found: Vec<(u64, u64, u64)>, file_len: u64, filter: Filter) -> Vec<Range> {
    found.retain(|&(start, len, _)| {
        len > 0 && start.checked_add(len).is_some_and(|e| e <= file_len)
    });
    found.sort_unstable();
    let mut out: Vec<Range> = Vec::new();
    for (start, len, vaddr) in found {
        if out.last().is_some_and(|p| start < p.end()) {
            continue;
        }
        out.push(Range {
            filter,
            start,
            len,
            vaddr,
        });
    }
    if out.len() > MAX_RANGES {
        out.sort_by_key(|r| (std::cmp::Reverse(r.len), r.start));
        out.truncate(MAX_RANGES);
        out.sort_by_key(|r| r.start);
    }
    out
}

/// Little-endian field reads that fail (`None`) instead of panicking.
struct Le<'a>(&'a [u8]);

impl Le<'_> {
    fn bytes<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let at = usize::try_from(at).ok()?;
        self.0.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: u64) -> Option<u64> {
        self.bytes::<2>(at)
            .map(|b| u64::from(u16::from_le_bytes(b)))
    }
    fn u32(&self, at: u64) -> Option<u64> {
        self.bytes::<4>(at)
            .map(|b| u64::from(u32::from_le_bytes(b)))
    }
    fn u64(&self, at: u64) -> Option<u64> {
        self.bytes::<8>(at).map(u64::from_le_bytes)
    }
    /// A table of `count` entries of `size` bytes at `at`, if it lies inside the file.
    fn table(&self, at: u64, count: u64, size: u64) -> Option<()> {
        let end = at.checked_add(count.checked_mul(size)?)?;
        (end <= self.0.len() as u64).then_some(())
    }
}

/// ELF, little-endian, 32- or 64-bit, `e_machine` 3 (i386) or 62 (x86-64): the
/// `SHF_EXECINSTR` sections with file contents, or without section headers the
/// executable `PT_LOAD` segments.
fn elf(data: &[u8]) -> Option<Vec<(u64, u64, u64)>> {
    let f = Le(data);
    if f.bytes::<4>(0)? != *b"\x7fELF" || data.get(5) != Some(&1) || data.get(6) != Some(&1) {
        return None;
    }
    let wide = match data.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    if !matches!(f.u16(18)?, 3 | 62) {
        return None;
    }
    // (phoff, phentsize, phnum, shoff, shentsize, shnum), by class.
    let (phoff, phent, phnum, shoff, shent, shnum) = if wide {
        (
            f.u64(0x20)?,
            f.u16(0x36)?,
            f.u16(0x38)?,
            f.u64(0x28)?,
            f.u16(0x3A)?,
            f.u16(0x3C)?,
        )
    } else {
        (
            f.u32(0x1C)?,
            f.u16(0x2A)?,
            f.u16(0x2C)?,
            f.u32(0x20)?,
            f.u16(0x2E)?,
            f.u16(0x30)?,
        )
    };
    let mut found = Vec::new();
    if shnum > 0 {
        if shent != if wide { 64 } else { 40 } {
            return None;
        }
        f.table(shoff, shnum, shent)?;
        for k in 0..shnum {
            let h = shoff + k * shent;
            let (kind, flags, addr, offset, size) = if wide {
                (
                    f.u32(h + 4)?,
                    f.u64(h + 8)?,
                    f.u64(h + 16)?,
                    f.u64(h + 24)?,
                    f.u64(h + 32)?,
                )
            } else {
                (
                    f.u32(h + 4)?,
                    f.u32(h + 8)?,
                    f.u32(h + 12)?,
                    f.u32(h + 16)?,
                    f.u32(h + 20)?,
                )
            };
            const SHT_NOBITS: u64 = 8;
            const SHF_EXECINSTR: u64 = 4;
            if kind != SHT_NOBITS && flags & SHF_EXECINSTR != 0 {
                found.push((offset, size, addr));
            }
        }
    } else {
        if phnum == 0 || phent != if wide { 56 } else { 32 } {
            return None;
        }
        f.table(phoff, phnum, phent)?;
        for k in 0..phnum {
            let h = phoff + k * phent;
            let (kind, flags, offset, vaddr, filesz) = if wide {
                (
                    f.u32(h)?,
                    f.u32(h + 4)?,
                    f.u64(h + 8)?,
                    f.u64(h + 16)?,
                    f.u64(h + 32)?,
                )
            } else {
                (
                    f.u32(h)?,
                    f.u32(h + 24)?,
                    f.u32(h + 4)?,
                    f.u32(h + 8)?,
                    f.u32(h + 16)?,
                )
            };
            const PT_LOAD: u64 = 1;
            const PF_X: u64 = 1;
            if kind == PT_LOAD && flags & PF_X != 0 {
                found.push((offset, filesz, vaddr));
            }
        }
    }
    Some(found)
}

/// PE/COFF (`MZ`, `PE\0\0`), machine AMD64 or i386: the sections with
/// `IMAGE_SCN_MEM_EXECUTE` or `IMAGE_SCN_CNT_CODE`, their raw data in the file.
fn pe(data: &[u8]) -> Option<Vec<(u64, u64, u64)>> {
    let f = Le(data);
    if f.bytes::<2>(0)? != *b"MZ" {
        return None;
    }
    let pe = f.u32(0x3C)?;
    if f.bytes::<4>(pe)? != *b"PE\0\0" || !matches!(f.u16(pe + 4)?, 0x8664 | 0x014C) {
        return None;
    }
    let count = f.u16(pe + 6)?;
    let table = pe + 24 + f.u16(pe + 20)?;
    f.table(table, count, 40)?;
    let mut found = Vec::new();
    for k in 0..count {
        let h = table + k * 40;
        let (vsize, vaddr, raw_size, raw_at, flags) = (
            f.u32(h + 8)?,
            f.u32(h + 12)?,
            f.u32(h + 16)?,
            f.u32(h + 20)?,
            f.u32(h + 36)?,
        );
        const EXECUTE: u64 = 0x2000_0000;
        const CODE: u64 = 0x20;
        if flags & (EXECUTE | CODE) != 0 {
            let len = if vsize > 0 {
                raw_size.min(vsize)
            } else {
                raw_size
            };
            found.push((raw_at, len, vaddr));
        }
    }
    Some(found)
}

/// Mach-O, 64-bit little-endian, CPU x86-64: the sections of `LC_SEGMENT_64` commands
/// flagged as holding instructions.
fn macho(data: &[u8]) -> Option<Vec<(u64, u64, u64)>> {
    let f = Le(data);
    if f.u32(0)? != 0xFEED_FACF || f.u32(4)? != 0x0100_0007 {
        return None;
    }
    let (ncmds, sizeofcmds) = (f.u32(16)?, f.u32(20)?);
    let end = 32u64.checked_add(sizeofcmds)?;
    if end > data.len() as u64 {
        return None;
    }
    let mut found = Vec::new();
    let mut at = 32;
    for _ in 0..ncmds {
        let (cmd, size) = (f.u32(at)?, f.u32(at + 4)?);
        if size < 8 || at + size > end {
            return None;
        }
        const LC_SEGMENT_64: u64 = 0x19;
        if cmd == LC_SEGMENT_64 {
            let nsects = f.u32(at + 64)?;
            if 72 + nsects.checked_mul(80)? > size {
                return None;
            }
            for k in 0..nsects {
                let s = at + 72 + k * 80;
                let (addr, len, offset, flags) = (
                    f.u64(s + 32)?,
                    f.u64(s + 40)?,
                    f.u32(s + 48)?,
                    f.u32(s + 64)?,
                );
                const PURE_INSTRUCTIONS: u64 = 0x8000_0000;
                const SOME_INSTRUCTIONS: u64 = 0x400;
                if flags & (PURE_INSTRUCTIONS | SOME_INSTRUCTIONS) != 0 && offset > 0 {
                    found.push((offset, len, addr));
                }
            }
        }
        at += size;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncations_are_not_executables() {
        let me = std::fs::read(std::env::current_exe().expect("test binary")).expect("read");
        let ranges = code_ranges(&me, Filter::X86);
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert!(!ranges.is_empty(), "the test binary is an x86-64 ELF");
        }
        for cut in [0, 3, 16, 63, 64, 100, 1000, 5000] {
            let part = &me[..cut.min(me.len())];
            for r in code_ranges(part, Filter::X86) {
                assert!(r.end() <= part.len() as u64);
            }
        }
        assert!(code_ranges(b"MZ\0\0", Filter::X86).is_empty());
        assert!(code_ranges(&[0x7f, b'E', b'L', b'F', 2, 1, 1], Filter::X86).is_empty());
        let mut flipped = me[..4096.min(me.len())].to_vec();
        for k in 0..flipped.len().min(128) {
            flipped[k] ^= 0xFF;
            let _ = code_ranges(&flipped, Filter::X86);
            flipped[k] ^= 0xFF;
        }
    }
}
