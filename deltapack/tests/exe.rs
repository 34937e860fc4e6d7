//! The executable transform (format-spec/patch-v1.md §5.2.6) end to end: real x86-64
//! executables of this machine (two builds of one program stand-in: `true` and
//! `false`, `ls` against a cut of itself), synthetic code, and the choice by size.

mod common;

use deltaapply::Method;
use deltaapply::container::Header;
use deltapack::exe::{TransformChoice, code_ranges};
use deltapack::{MethodChoice, Settings, make_one, make_patch};

use common::{assert_applies, settings};

const TRANSFORM_FLAG: u8 = 4;

fn with(transform: TransformChoice) -> Settings {
    Settings {
        transform,
        ..settings(2, 1 << 30)
    }
}

fn flags(patch: &[u8]) -> u8 {
    patch[14]
}

/// Pairs of x86-64 ELF files found on this machine (none elsewhere: the test then
/// only checks the synthetic pair).
fn system_pairs() -> Vec<(Vec<u8>, Vec<u8>)> {
    let read = |p: &str| std::fs::read(p).ok();
    let mut pairs = Vec::new();
    if let (Some(t), Some(f)) = (read("/usr/bin/true"), read("/usr/bin/false")) {
        pairs.push((t, f));
    }
    if let Some(ls) = read("/usr/bin/ls") {
        // The same program with 1000 bytes of its code removed: everything after moves.
        let mut cut = ls.clone();
        let at = code_ranges(&ls, deltaapply::exe::Filter::X86)
            .first()
            .map_or(0, |r| (r.start + r.len / 2) as usize);
        if at > 0 {
            cut.drain(at..at + 1000);
            pairs.push((ls, cut));
        }
    }
    let pairs: Vec<_> = pairs
        .into_iter()
        .filter(|(old, _)| !code_ranges(old, deltaapply::exe::Filter::X86).is_empty())
        .collect();
    if cfg!(all(target_os = "linux", target_arch = "x86_64"))
        && std::path::Path::new("/usr/bin/ls").exists()
    {
        assert!(pairs.len() >= 2, "this machine's ELF files are recognised");
    }
    pairs
}

#[test]
fn transformed_patches_of_real_executables_apply() {
    for (k, (old, new)) in system_pairs().iter().enumerate() {
        for choice in [TransformChoice::X86, TransformChoice::X86Branches] {
            let patch = make_one(Method::Bsdiff, old, new, &with(choice)).expect("diff");
            assert_eq!(flags(&patch) & TRANSFORM_FLAG, TRANSFORM_FLAG, "pair {k}");
            let h = Header::decode(&patch, patch.len() as u64).expect("valid header");
            assert_eq!(h.target.sha256, deltaapply::Sha256Digest::of(new));
            assert_applies(old, new, &patch, &format!("pair {k} {choice:?}"));
        }
    }
}

#[test]
fn auto_never_loses_to_no_transform() {
    for (k, (old, new)) in system_pairs().iter().enumerate() {
        let none = make_one(Method::Bsdiff, old, new, &with(TransformChoice::None)).expect("diff");
        assert_eq!(flags(&none) & TRANSFORM_FLAG, 0);
        let auto = make_one(Method::Bsdiff, old, new, &with(TransformChoice::Auto)).expect("diff");
        assert!(
            auto.len() <= none.len(),
            "pair {k}: {} > {}",
            auto.len(),
            none.len()
        );
        assert_applies(old, new, &auto, &format!("pair {k} auto"));
        let made =
            make_patch(old, new, MethodChoice::Auto, &with(TransformChoice::Auto)).expect("auto");
        assert!(made.bytes.len() <= auto.len());
        assert_applies(old, new, &made.bytes, &format!("pair {k} auto method"));
    }
}

#[test]
fn non_executables_are_not_transformed() {
    let old = common::fill(common::Kind::Text, 50_000, 1);
    let mut new = old.clone();
    new[1000] ^= 1;
    let patch = make_one(Method::Bsdiff, &old, &new, &with(TransformChoice::X86)).expect("diff");
    assert_eq!(flags(&patch) & TRANSFORM_FLAG, 0);
    assert_applies(&old, &new, &patch, "text");
}

#[test]
fn the_transform_is_deterministic() {
    if let Some((old, new)) = system_pairs().into_iter().next() {
        let s = with(TransformChoice::X86);
        let a = make_one(Method::Bsdiff, &old, &new, &s).expect("diff");
        let b = make_one(Method::Bsdiff, &old, &new, &Settings { threads: 1, ..s }).expect("diff");
        assert_eq!(a, b);
    }
}
