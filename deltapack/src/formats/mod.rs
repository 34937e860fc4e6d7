//! Patch formats other than our container that `deltapack diff --format` writes, for
//! devices whose only applier is another tool's: BSDIFF40 ([`bsdiff40`], applied by
//! bsdiff 4.x's `bspatch`, qbsdiff and `deltaapply`) and VCDIFF ([`vcdiff`], applied
//! by `xdelta3 -d`, open-vcdiff and `deltaapply`). Each is made from our own
//! matcher, so it is as small as the format allows.

pub mod bsdiff40;
pub mod vcdiff;

use std::str::FromStr;

/// The format of a file patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFormat {
    /// deltapack's container: signed, with the digests of both files
    /// (`format-spec/patch-v1.md`).
    Deltapack,
    /// bsdiff 4.x (`format-spec/foreign.md` §2): no digests, no signature.
    Bsdiff40,
    /// VCDIFF, RFC 3284 (`format-spec/vcdiff.md`): no digests, no signature.
    Vcdiff,
}

impl PatchFormat {
    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            PatchFormat::Deltapack => "deltapack",
            PatchFormat::Bsdiff40 => "bsdiff40",
            PatchFormat::Vcdiff => "vcdiff",
        }
    }
}

impl FromStr for PatchFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deltapack" => Ok(PatchFormat::Deltapack),
            "bsdiff40" => Ok(PatchFormat::Bsdiff40),
            "vcdiff" => Ok(PatchFormat::Vcdiff),
            _ => Err(format!(
                "unknown patch format {s:?} (deltapack, bsdiff40 or vcdiff)"
            )),
        }
    }
}
