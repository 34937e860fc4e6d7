use super::*;

const W0: Place = Place::Window {
    index: 0,
    offset: 5,
};

#[test]
fn varints_round_trip_and_refuse_overflow() {
    for v in [0u64, 1, 127, 128, 16383, 16384, 1 << 40, u64::MAX] {
        let mut out = Vec::new();
        write_varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v), "{v}");
        let mut c = Cursor::new(&out, W0);
        assert_eq!(c.varint("x").unwrap(), v);
        assert_eq!(c.left(), 0);
    }
    let mut c = Cursor::new(&[0x81, 0x00], W0);
    assert_eq!(c.varint("x").unwrap(), 128);
    // 11 bytes of continuation: too long.
    let long = [0x80u8; 11];
    let e = Cursor::new(&long, W0)
        .varint("target window length")
        .unwrap_err();
    assert!(e.to_string().contains("longer than 10 bytes"), "{e}");
    // Ten bytes whose value needs 70 bits.
    let mut big = vec![0xFFu8; 9];
    big.push(0x7F);
    let e = Cursor::new(&big, W0).varint("x").unwrap_err();
    assert!(e.to_string().contains("does not fit 64 bits"), "{e}");
    // Truncated.
    let e = Cursor::new(&[0x80], W0).varint("x").unwrap_err();
    assert!(matches!(e, VcdiffError::Truncated { .. }));
}

#[test]
fn adler32_matches_known_values() {
    assert_eq!(adler32(b""), 1);
    assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    let big = vec![0xFFu8; 100_000];
    // Computed the slow way, with the modulus after every byte.
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &big {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    assert_eq!(adler32(&big), (b << 16) | a);
}

#[test]
fn file_headers() {
    let h = FileHeader::decode(&[0xD6, 0xC3, 0xC4, 0, 0], 5).unwrap();
    assert_eq!((h.indicator, h.len, h.compressor), (0, 5, None));
    let h = FileHeader::decode(&[0xD6, 0xC3, 0xC4, 0, 5, 2, 3, b'a', b'b', b'c'], 10).unwrap();
    assert_eq!(
        (h.compressor, h.app_header_len, h.len),
        (Some(2), Some(3), 10)
    );
    assert_eq!(
        FileHeader::decode(&[0xD6, 0xC3, 0xC4, 0, 4, 9], 6).unwrap_err(),
        VcdiffError::Invalid {
            place: Place::FileHeader,
            field: "application header length",
            problem: "is 9 bytes, past the end of the 6-byte file (from offset 6)".into()
        }
    );
    assert_eq!(
        FileHeader::decode(&[0xD6, 0xC3, 0xC4, 0, 2], 5),
        Err(VcdiffError::CodeTable)
    );
    assert_eq!(
        FileHeader::decode(&[0xD6, 0xC3, 0xC4, 0, 8], 5),
        Err(VcdiffError::UnknownHeaderBits(8))
    );
    assert_eq!(
        FileHeader::decode(&[0xD6, 0xC3, 0xC4, 1, 0], 5),
        Err(VcdiffError::BadVersion(1))
    );
    assert_eq!(FileHeader::decode(b"BSD", 3), Err(VcdiffError::BadMagic));
    for n in 0..5 {
        let e = FileHeader::decode(&[0xD6, 0xC3, 0xC4, 0, 0][..n], n as u64).unwrap_err();
        assert!(matches!(e, VcdiffError::Truncated { .. }), "{n}: {e}");
    }
}

/// A window making "abcabcabcXYZ" + 4 bytes of a 10-byte source from offset 2.
fn window() -> (Vec<u8>, Vec<u8>) {
    let source = b"0123456789".to_vec();
    let target = b"abcabcabcXYZ2345".to_vec();
    let data = b"abcXYZ".to_vec();
    // ADD 3 (opcode 4); COPY 6 from target 0 (mode SELF: address 4 + 0), opcode 19+3;
    // ADD 3; COPY 4 from source 0 (its segment starts at 2), SELF.
    let inst = vec![4, 22, 4, 20];
    let addr = vec![4, 0];
    let mut w = vec![VCD_SOURCE | VCD_ADLER32];
    write_varint(&mut w, 4);
    write_varint(&mut w, 2);
    let mut delta = Vec::new();
    write_varint(&mut delta, target.len() as u64);
    delta.push(0);
    for s in [&data, &inst, &addr] {
        write_varint(&mut delta, s.len() as u64);
    }
    delta.extend_from_slice(&adler32(&target).to_be_bytes());
    for s in [&data, &inst, &addr] {
        delta.extend_from_slice(s);
    }
    write_varint(&mut w, delta.len() as u64);
    w.extend_from_slice(&delta);
    let _ = source;
    (w, target)
}

fn run(w: &[u8]) -> Result<Vec<u8>, VcdiffError> {
    let source = b"0123456789";
    let h = WindowHeader::decode(w, w.len() as u64, W0)?;
    h.check_segment(source.len() as u64, 0, W0)?;
    let table = CodeTable::default_table();
    let sections = &w[h.header_len as usize..];
    let inst = &sections[h.data_len as usize..][..h.inst_len as usize];
    check_instructions(&h, inst, &table, W0)?;
    let seg = h.segment.unwrap();
    let mut out = Vec::new();
    decode_window(
        &h,
        sections,
        &table,
        W0,
        &mut out,
        &mut |at, buf: &mut [u8]| {
            let at = (seg.pos + at) as usize;
            buf.copy_from_slice(&source[at..at + buf.len()]);
            Ok::<(), ()>(())
        },
    )
    .map_err(|e| match e {
        DecodeError::Vcdiff(e) => e,
        DecodeError::Source(()) => unreachable!(),
    })?;
    Ok(out)
}

#[test]
fn a_window_decodes_with_overlapping_copies_and_its_checksum() {
    let (w, target) = window();
    assert_eq!(run(&w).unwrap(), target);
    let h = WindowHeader::decode(&w, w.len() as u64, W0).unwrap();
    assert_eq!(h.total_len(), w.len() as u64);
    for n in 0..w.len() {
        assert!(run(&w[..n]).is_err(), "cut to {n}");
    }
    // Any flipped bit fails somewhere (checksum, lengths, instructions) or, if it
    // still decodes, makes the same bytes.
    for bit in 0..w.len() * 8 {
        let mut f = w.clone();
        f[bit / 8] ^= 1 << (bit % 8);
        if let Ok(out) = run(&f) {
            assert_eq!(out, target, "bit {bit}");
        }
    }
}

#[test]
fn window_header_refusals_name_the_field() {
    let (w, _) = window();
    let err = |bytes: &[u8]| WindowHeader::decode(bytes, bytes.len() as u64, W0).unwrap_err();
    let mut both = w.clone();
    both[0] |= VCD_TARGET;
    assert!(
        err(&both)
            .to_string()
            .contains("both VCD_SOURCE and VCD_TARGET")
    );
    let mut long = w.clone();
    long[3] += 1; // the delta encoding length, past the end
    assert!(err(&long).to_string().contains("past the end of the patch"));
    // A TiB target window in a 22-byte patch is only a number here; the section
    // lengths must still add up.
    let mut tib = vec![0u8];
    let mut delta = Vec::new();
    write_varint(&mut delta, 1 << 40);
    delta.extend_from_slice(&[0, 1, 1, 0]);
    delta.extend_from_slice(&[b'x', 2]);
    write_varint(&mut tib, delta.len() as u64);
    tib.extend_from_slice(&delta);
    let h = WindowHeader::decode(&tib, tib.len() as u64, W0).unwrap();
    assert_eq!(h.target_len, 1 << 40);
    let inst = &tib[h.header_len as usize + 1..][..1];
    let e = check_instructions(&h, inst, &CodeTable::default_table(), W0).unwrap_err();
    assert!(e.to_string().contains("the instructions make 1"), "{e}");
    // Overlapping sections: lengths that do not add up to the delta length.
    let mut over = tib.clone();
    over[tib.len() - 4] = 3;
    assert!(err(&over).to_string().contains("overlap or overrun"));
}

#[test]
fn copy_addresses_must_be_below_here() {
    let mut c = AddressCache::new();
    let mut out = Vec::new();
    for (addr, here) in [(5u64, 10u64), (7, 10), (9, 100), (0, 1), (5, 100)] {
        out.clear();
        let mode = c.clone().encode(addr, here, &mut out);
        let got = c
            .decode(mode.number(), here, &mut Cursor::new(&out, W0), W0)
            .unwrap();
        assert_eq!(got, addr);
        c.clone().encode(addr, here, &mut Vec::new());
    }
    let e = AddressCache::new()
        .decode(0, 10, &mut Cursor::new(&[10], W0), W0)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is not below the current position 10"),
        "{e}"
    );
    let e = AddressCache::new()
        .decode(1, 10, &mut Cursor::new(&[11], W0), W0)
        .unwrap_err();
    assert!(e.to_string().contains("before 0"), "{e}");
}
