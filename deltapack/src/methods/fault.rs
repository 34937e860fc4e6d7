//! A faulty encoder for tests (feature `crash-hook`, which only test builds turn on):
//! with `DELTAPACK_FAULT=encoder` in the environment, the encoders flip a bit of what
//! they encode, so a patch's header names the new file while its payload makes another,
//! as an encoder bug would. `deltapack/tests/publish.rs` shows that the build's own
//! check refuses to publish such a patch (adversarial plan case 28). Builds without the
//! feature, every build that ships, never read the variable.

use std::borrow::Cow;

/// Whether the encoders are to be faulty.
#[cfg(feature = "crash-hook")]
fn active() -> bool {
    std::env::var_os("DELTAPACK_FAULT").is_some_and(|v| v == "encoder")
}

#[cfg(not(feature = "crash-hook"))]
fn active() -> bool {
    false
}

/// Flips the low bit of the first byte of `bytes` when the fault is active.
pub(crate) fn corrupt(bytes: &mut [u8]) {
    if active()
        && let Some(b) = bytes.first_mut()
    {
        *b ^= 1;
    }
}

/// `data`, with [`corrupt`] applied to a copy when the fault is active.
pub(crate) fn corrupted(data: &[u8]) -> Cow<'_, [u8]> {
    if active() && !data.is_empty() {
        let mut copy = data.to_vec();
        corrupt(&mut copy);
        Cow::Owned(copy)
    } else {
        Cow::Borrowed(data)
    }
}
