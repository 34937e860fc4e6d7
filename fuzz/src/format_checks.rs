//! What the fuzz targets of the I/O-free parsers run, one function per target: each
//! feeds the bytes to the parser and, when it accepts them, checks what must then
//! hold (a round trip to the same bytes, sizes within the input). A panic, an
//! overrun or a hang is the finding.
//!
//! The same file is compiled into `deltaapply-format/tests/fuzz_regressions.rs`
//! (`#[path]`), which replays every input under `testdata/fuzz/<target>/` through
//! these functions with plain `cargo test`. It names only `deltaapply_format` and std.

use std::io::{self, Read};

use deltaapply_format::bsdiff40::{self, Control, Walk};
use deltaapply_format::container::{self, AnyHeader, Body, HEADER_LEN};
use deltaapply_format::control::{Op, OpReader, ZeroRunReader, ZeroRunWriter};
use deltaapply_format::manifest::Manifest;
use deltaapply_format::signature::{self, encode_signature_file, parse_signature_file};
use deltaapply_format::tree::format::{MemoryBudget, TreeIndex};
use deltaapply_format::tree::{Entry, EntryKind, Listing, TreePath};
use deltaapply_format::zstd_frame::{self, FrameHeader};
use deltaapply_format::{PublicKey, Sha256Digest, TrustedKeys};

/// Read sizes for the decoders that implement [`Read`]: a small deterministic
/// generator seeded from the input, so that every input reproduces its own sequence
/// of output buffer sizes (1 byte to 64 KiB, with a bias to tiny ones).
pub struct ReadSizes(u64);

impl ReadSizes {
    /// The sizes for `data`.
    pub fn for_input(data: &[u8]) -> ReadSizes {
        // FNV-1a, then never zero for xorshift.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        ReadSizes(h | 1)
    }

    /// Every read one byte long.
    pub fn ones() -> ReadSizes {
        ReadSizes(0)
    }

    /// The next buffer size.
    pub fn next_size(&mut self) -> usize {
        if self.0 == 0 {
            return 1;
        }
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        match x % 4 {
            0 => 1 + (x >> 8) as usize % 8,
            1 => 1 + (x >> 8) as usize % 300,
            2 => 1 + (x >> 8) as usize % 5000,
            _ => 1 + (x >> 8) as usize % 65536,
        }
    }
}

/// How reading a whole stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// A clean end of stream.
    Eof,
    /// An error of this kind.
    Error(io::ErrorKind),
    /// The output reached the cap first.
    Capped,
}

/// Reads `r` to its end (or `cap` bytes) with buffers of the sizes `sizes` gives.
/// Every read must return at most the buffer's length.
pub fn read_all(r: &mut impl Read, sizes: &mut ReadSizes, cap: usize) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        if out.len() >= cap {
            return (out, End::Capped);
        }
        let want = sizes.next_size().min(cap - out.len());
        match r.read(&mut buf[..want]) {
            Ok(0) => return (out, End::Eof),
            Ok(n) => {
                assert!(n <= want, "read returned {n} for a {want}-byte buffer");
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (out, End::Error(e.kind())),
        }
    }
}

/// Two reads of the same stream with different buffer sizes agree: on the bytes
/// both produced, and on how it ended when neither was capped.
pub fn assert_same_reads(a: &(Vec<u8>, End), b: &(Vec<u8>, End), what: &str) {
    let common = a.0.len().min(b.0.len());
    assert_eq!(a.0[..common], b.0[..common], "{what}: output differs");
    if a.1 != End::Capped && b.1 != End::Capped {
        assert_eq!(
            a, b,
            "{what}: reads with other buffer sizes end differently"
        );
    }
}

/// Target `patch_header`: the patch-v1 header, as it is and with its checksum
/// recomputed (so that the field checks behind it are reached), against the input's
/// length and against the length its payload_size field implies.
pub fn patch_header(data: &[u8]) {
    header_once(data, data.len() as u64);
    if data.len() >= HEADER_LEN {
        let mut fixed = data.to_vec();
        let check = Sha256Digest::of(&fixed[..176]);
        fixed[176..192].copy_from_slice(&check.0[..16]);
        header_once(&fixed, data.len() as u64);
        let payload = u64::from_le_bytes(fixed[96..104].try_into().unwrap());
        header_once(&fixed, payload.wrapping_add(HEADER_LEN as u64));
    }
}

fn header_once(bytes: &[u8], file_len: u64) {
    let Ok(artifact) = AnyHeader::decode(bytes, file_len) else {
        return;
    };
    // A header that decodes is the one canonical encoding of its fields.
    assert_eq!(
        artifact.encode()[..],
        bytes[..HEADER_LEN],
        "header does not round-trip"
    );
    match artifact {
        AnyHeader::File(h) => {
            check_header(&h, file_len);
            let bound = container::memory_bound(
                h.method(),
                h.window_log,
                h.source().map_or(0, |s| s.size),
                h.target.size,
            );
            assert_eq!(h.apply_memory, bound);
            if let Body::Bsdiff { streams, .. } = h.body {
                // The executable transform's table (if any) fills what the streams leave.
                assert_eq!(
                    Some(h.payload.size),
                    streams
                        .transform
                        .checked_add(streams.control)
                        .and_then(|s| s.checked_add(streams.diff))
                        .and_then(|s| s.checked_add(streams.extra))
                );
            }
        }
        AnyHeader::Tree(h) => {
            check_header(&h, file_len);
            assert!(h.apply_memory >= container::BASE_APPLY_MEMORY);
        }
    }
}

/// What holds for a decoded header of either kind.
fn check_header<B: container::HeaderBody>(h: &container::Header<B>, file_len: u64) {
    assert_eq!(
        Some(file_len),
        h.payload.size.checked_add(HEADER_LEN as u64)
    );
    assert!((container::MIN_WINDOW_LOG..=container::MAX_WINDOW_LOG).contains(&h.window_log));
    let _ = signature::check_patch_origin(h, None);
    let _ = h.signed_message();
}

/// Most bytes a zero-run stream is expanded to here (a short stream can declare 2^64
/// zeros).
const EXPANSION_CAP: usize = 1 << 20;

/// Target `control_stream`: the bsdiff method's control stream (ops of three varints)
/// and its zero-run diff coding, read with output buffers of random sizes.
pub fn control_stream(data: &[u8]) {
    // Ops: a stream that decodes to its end re-encodes to the same bytes (varints
    // must be minimal).
    let mut ops = OpReader::new(data);
    let mut decoded = Vec::new();
    let clean = loop {
        match ops.next_op() {
            Ok(Some(op)) => decoded.push(op),
            Ok(None) => break true,
            Err(_) => break false,
        }
        assert!(
            decoded.len() <= data.len() / 3,
            "more ops than the bytes allow"
        );
    };
    assert_eq!(ops.records_read(), decoded.len() as u64);
    if clean {
        let mut out = Vec::new();
        decoded.iter().for_each(|op: &Op| op.encode(&mut out));
        assert_eq!(out, data, "control stream does not round-trip");
    }

    // Zero-run decoding: the same output whatever the buffer sizes.
    let mut sizes = ReadSizes::for_input(data);
    let a = read_all(&mut ZeroRunReader::new(data), &mut sizes, EXPANSION_CAP);
    // One-byte reads, over less of the output (a read call per byte).
    let b = read_all(
        &mut ZeroRunReader::new(data),
        &mut ReadSizes::ones(),
        64 << 10,
    );
    assert_same_reads(&a, &b, "zero-run reader");
    if a.1 == End::Eof {
        let mut z = ZeroRunReader::new(data);
        let _ = read_all(&mut z, &mut ReadSizes::for_input(&a.0), EXPANSION_CAP);
        assert!(
            z.at_end().unwrap(),
            "a stream read to its end is at its end"
        );
    }

    // And the writer's coding of the input as diff bytes decodes back to it.
    let mut coded = Vec::new();
    let mut w = ZeroRunWriter::default();
    for chunk in data.chunks(sizes.next_size()) {
        w.push(chunk, &mut coded);
    }
    w.finish(&mut coded);
    let back = read_all(&mut ZeroRunReader::new(&coded[..]), &mut sizes, usize::MAX);
    assert_eq!(
        back,
        (data.to_vec(), End::Eof),
        "zero-run coding does not round-trip"
    );
}

/// Target `bsdiff40`: the BSDIFF40 header (against the input's length and a few
/// others) and its control records walked against the header's new size.
pub fn bsdiff40(data: &[u8]) {
    for file_len in [data.len() as u64, u64::MAX, 32] {
        if let Ok(h) = bsdiff40::Header::decode(data, file_len) {
            let end = h.sections()[2];
            assert_eq!(end.0 + end.1, file_len);
            // Encoding gives the same header back (not always the same bytes:
            // sign-magnitude has a negative zero, which reads as 0, as in bspatch).
            let enc = bsdiff40::Header::encode(h.control_len, h.diff_len, h.new_size).unwrap();
            assert_eq!(bsdiff40::Header::decode(&enc, file_len), Ok(h));
        }
    }
    // Records from byte 32 on, for a new size from bytes 24..32 (as in the header).
    let new_size = data.get(24..32).map_or(0, |b| {
        bsdiff40::offtin(b.try_into().unwrap()).unsigned_abs()
    });
    let mut walk = Walk::new(new_size);
    for record in data
        .get(32..)
        .unwrap_or_default()
        .chunks_exact(bsdiff40::RECORD_LEN)
    {
        let bytes: &[u8; 24] = record.try_into().unwrap();
        if let Ok(c) = Control::decode(bytes, 0) {
            // Sign-magnitude has two zeros; every other value round-trips.
            if let Some(enc) = c.encode() {
                assert_eq!(Control::decode(&enc, 0).unwrap(), c);
            }
        }
        let before = walk.written();
        match walk.take(bytes) {
            Ok(step) => {
                assert_eq!(
                    walk.written(),
                    before + step.control.add + step.control.copy
                );
                assert!(walk.written() <= new_size);
            }
            Err(_) => break,
        }
        assert!(walk.records() <= bsdiff40::max_records(new_size));
    }
    for chunk in data.chunks_exact(8) {
        let v = bsdiff40::offtin(chunk.try_into().unwrap());
        assert_eq!(bsdiff40::offtout(v).map(bsdiff40::offtin), Some(v));
    }
}

/// Target `zstd_frame_header`: the zstd frame header decoder the applier checks a
/// frame with before libzstd sees it.
pub fn zstd_frame_header(data: &[u8]) {
    let skippable = zstd_frame::is_skippable(data);
    match FrameHeader::decode(data) {
        Ok(f) => {
            assert!(!skippable);
            assert!(f.header_len <= data.len() && f.header_len <= zstd_frame::MAX_HEADER_LEN);
            assert_eq!(data[..4], zstd_frame::MAGIC);
            assert!(
                f.window_size <= (1u64 << zstd_frame::MAX_WINDOW_LOG) * 15 / 8
                    || f.content_size == Some(f.window_size)
            );
            // The header alone decodes the same.
            assert_eq!(FrameHeader::decode(&data[..f.header_len]), Ok(f));
        }
        Err(zstd_frame::FrameError::Skippable) => assert!(skippable),
        Err(_) => {}
    }
}

/// Target `tree_index`: a tree patch's payload (`index_len`, the index, the blobs),
/// decoded within a memory budget and without one.
pub fn tree_index(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = (u64::from_le_bytes(*len) as usize).min(rest.len());
    let (index, blobs) = rest.split_at(len);
    let blobs_len = blobs.len() as u64;
    let limit = 16 * data.len() as u64 + 4096;
    let mut budget = MemoryBudget::new(limit);
    let within = TreeIndex::decode_within(index, blobs_len, &mut budget);
    let unlimited = TreeIndex::decode(index, blobs_len);
    match (within, &unlimited) {
        (Ok(a), Ok(b)) => assert_eq!(&a, b),
        (Ok(_), Err(e)) => panic!("decodes within a budget, not without one: {e}"),
        (Err(_), _) => {}
    }
    if let Ok(ix) = unlimited {
        assert_eq!(ix.encode(), index, "index does not round-trip");
        let blobs_used = ix.new.entries().iter().filter_map(|e| match e.kind {
            EntryKind::File { recipe, .. } => recipe.blob(),
            _ => None,
        });
        assert!(
            blobs_used.eq(0..ix.blobs.len()),
            "each blob used once, in order"
        );
        let mut end = 8 + index.len() as u64;
        for blob in &ix.blobs {
            assert_eq!(blob.offset, end);
            end += blob.len;
        }
        assert_eq!(end, data.len() as u64);
        let _ = (ix.old.id(), ix.new.id(), ix.new.total_size());
    }
}

/// Target `tree_listing`: a listing built from entries the input spells out
/// (kind, mode, path, then size and hash or link target), validated.
pub fn tree_listing(data: &[u8]) {
    let mut entries = Vec::new();
    let mut r = data;
    let take = |n: usize, r: &mut &[u8]| -> Vec<u8> {
        let n = n.min(r.len());
        let (a, b) = r.split_at(n);
        *r = b;
        a.to_vec()
    };
    while let Some((&kind, rest)) = r.split_first() {
        r = rest;
        let head = take(3, &mut r);
        if head.len() < 3 {
            break;
        }
        let mode = u32::from(u16::from_le_bytes([head[0], head[1]]));
        let path = take(usize::from(head[2]), &mut r);
        let Ok(path) = TreePath::new(&String::from_utf8_lossy(&path)) else {
            continue;
        };
        let kind = match kind % 3 {
            0 => {
                let b = take(9, &mut r);
                let size = b.iter().take(8).fold(0u64, |a, &x| a << 8 | u64::from(x));
                EntryKind::File {
                    size,
                    sha256: Sha256Digest([b.get(8).copied().unwrap_or(0); 32]),
                    recipe: (),
                }
            }
            1 => EntryKind::Dir,
            _ => {
                let n = take(1, &mut r).first().copied().unwrap_or(0);
                let target = take(usize::from(n), &mut r);
                EntryKind::Symlink {
                    target: String::from_utf8_lossy(&target).into_owned(),
                }
            }
        };
        entries.push(Entry { path, mode, kind });
    }
    let count = entries.len();
    if let Ok(listing) = Listing::new(entries) {
        assert_eq!(listing.entries().len(), count);
        assert!(
            listing
                .entries()
                .windows(2)
                .all(|w| w[0].path.as_str().as_bytes() < w[1].path.as_str().as_bytes())
        );
        for (i, e) in listing.entries().iter().enumerate() {
            assert_eq!(listing.position(&e.path), Some(i));
        }
        let again = Listing::new(listing.entries().to_vec()).expect("a valid listing stays valid");
        assert_eq!(again.id(), listing.id());
        let manifest_entries = deltaapply_format::manifest::tree_entries(&listing);
        assert_eq!(manifest_entries.len(), count);
    }
}

/// Target `manifest`: a release manifest's TOML (what the applier parses once its
/// signature has been checked), then every tree artifact's listing.
pub fn manifest(data: &[u8]) {
    let Ok(m) = Manifest::parse(data) else {
        return;
    };
    for (_, artifact) in m.all_artifacts() {
        if let Some(listing) = artifact.listing() {
            let _ = listing.map(|l| l.id());
        }
    }
    let _ = m.is_expired(deltaapply_format::manifest::Timestamp(0));
}

/// Target `signature_file`: a manifest's signature file; one that parses re-encodes
/// to the same bytes, and checks against a trusted key without panicking.
pub fn signature_file(data: &[u8]) {
    if let Ok(entries) = parse_signature_file(data) {
        assert!(!entries.is_empty());
        assert_eq!(encode_signature_file(&entries).as_bytes(), data);
        let trusted = TrustedKeys::new(entries.iter().map(|e| e.key).collect(), 1).unwrap();
        let _ = signature::verify_manifest(b"format = 1\n", data, &trusted);
    }
}

/// Target `vcdiff`: a VCDIFF file's headers (`FileHeader`, then each `WindowHeader`)
/// and each plain window's instructions (`check_instructions`); returns the target
/// length the windows declare, if every header decodes. Windows never run past the
/// file, and the walk always advances.
pub fn vcdiff(data: &[u8]) -> Option<u64> {
    use deltaapply_format::vcdiff::{
        CodeTable, FileHeader, MAX_FILE_HEADER, MAX_WINDOW_HEADER, Place, WindowHeader,
        check_instructions,
    };
    let len = data.len() as u64;
    let header = FileHeader::decode(&data[..data.len().min(MAX_FILE_HEADER)], len).ok()?;
    assert!(header.len <= len);
    let table = CodeTable::default_table();
    let (mut at, mut total, mut index) = (header.len, 0u64, 0u64);
    while at < len {
        let rest = &data[at as usize..];
        let place = Place::Window { index, offset: at };
        let w = WindowHeader::decode(&rest[..rest.len().min(MAX_WINDOW_HEADER)], len - at, place)
            .ok()?;
        assert!(w.total_len() > 0 && w.total_len() <= len - at);
        let inst_at = (at + w.header_len + w.data_len) as usize;
        let inst = &data[inst_at..inst_at + w.inst_len as usize];
        if w.delta_indicator == 0 && w.check_compressor(&header, place).is_ok() {
            let _ = check_instructions(&w, inst, &table, place);
        }
        total = total.checked_add(w.target_len)?;
        at += w.total_len();
        index += 1;
    }
    Some(total)
}

/// Target `keys_document`: a key-rotation keys document (`format-spec/rotation.md`);
/// one that parses re-encodes to a document that parses to the same value, and, when
/// the input also splits into a document and a signature file at the first NUL, the
/// rotation step from that document to itself is checked without panicking.
pub fn keys_document(data: &[u8]) {
    use deltaapply_format::rotation::{self, KeysDocument};
    let (doc, sig) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(parsed) = KeysDocument::parse(doc) else {
        return;
    };
    let again = KeysDocument::parse(parsed.encode().as_bytes()).unwrap();
    assert_eq!(again, parsed);
    assert!((1..=parsed.keys.len()).contains(&parsed.threshold));
    let _ = parsed.trusted();
    if let Some(sig) = sig {
        let _ = rotation::verify_self_signed(doc, sig);
        let _ = rotation::verify_rotation(&parsed, doc, sig);
    }
}

/// Target `key_file`: a public key file's content, the one-line key form and the
/// key list of `DELTAAPPLY_KEY`.
pub fn key_file(data: &[u8]) {
    if let Ok(key) = PublicKey::from_file_content(data.to_vec()) {
        assert_eq!(PublicKey::parse(&key.to_string()).unwrap(), key);
        assert_eq!(PublicKey::from_bytes(key.to_bytes()).unwrap(), key);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = PublicKey::parse(text) {
            assert_eq!(key.to_string(), text.trim());
        }
        if let Ok(keys) = TrustedKeys::parse_list(text) {
            assert!(!keys.keys().is_empty());
            assert!(keys.keys().iter().all(|k| keys.contains(k)));
        }
    }
    if let Ok(bytes) = <[u8; 32]>::try_from(data) {
        let _ = PublicKey::from_bytes(bytes);
    }
}
