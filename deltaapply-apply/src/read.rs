//! Bounded reads of small local files (keys, state files, manifests): never more than a
//! cap into memory, whatever the file's size.

use std::io::Read;
use std::path::Path;

/// Reads the whole of `path` if it holds at most `cap` bytes; `Ok(None)` if it is
/// larger. Reads at most `cap + 1` bytes whatever the file's size.
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}
