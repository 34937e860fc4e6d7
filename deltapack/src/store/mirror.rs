//! A local copy of the release a bucket serves, for `deltapack verify s3://...`: the
//! manifest, its signature, the key chain, and, once the manifest's signature checks
//! out against the trusted keys, every file it references (each read at most to the
//! size the manifest gives it). The copy is then checked like a publish directory.

use std::collections::BTreeSet;
use std::path::Path;

use deltaapply::TrustedKeys;
use deltaapply::manifest::{MANIFEST_FILE, Manifest, SIGNATURE_FILE};
use deltaapply::rotation::{KEYS_DIR, MAX_KEYS_DOCUMENT};
use deltaapply::signature::{MAX_SIGNATURE_FILE, verify_manifest};

use super::{FILES_DIR, FULL_DIR, PATCH_DIR, Store, StoreError, write_file};

/// What copying found that the copy itself cannot show.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Files that could not be copied, and why (relative path, problem).
    pub problems: Vec<(String, String)>,
    /// Content files in the bucket the manifest does not reference.
    pub unreferenced: Vec<String>,
    /// Bytes downloaded.
    pub downloaded: u64,
}

/// Copies the release `store` serves into the directory `dest`. Referenced files are
/// copied only if the manifest's signature checks out against `trusted`.
pub fn pull(store: &Store, dest: &Path, trusted: &TrustedKeys) -> Result<Pulled, StoreError> {
    let mut pulled = Pulled::default();
    let Some(signed) = store.read_manifest()? else {
        return Ok(pulled);
    };
    write_file(&dest.join(MANIFEST_FILE), &signed.manifest)?;
    write_file(&dest.join(SIGNATURE_FILE), &signed.signature)?;
    for name in store.list(KEYS_DIR)? {
        // Only `N.toml` and `N.toml.sig`: the listing's other names are not read.
        let stem = name.strip_suffix(".sig").unwrap_or(&name);
        let Some(number) = stem.strip_suffix(".toml") else {
            continue;
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let rel = format!("{KEYS_DIR}/{name}");
        let cap = if name.ends_with(".sig") {
            MAX_SIGNATURE_FILE
        } else {
            MAX_KEYS_DOCUMENT
        };
        match store.read(&rel, cap) {
            Ok(Some(bytes)) => write_file(&dest.join(&rel), &bytes)?,
            Ok(None) => {}
            Err(e) => pulled.problems.push((rel, e.to_string())),
        }
    }
    if verify_manifest(&signed.manifest, &signed.signature, trusted).is_err() {
        pulled.problems.push((
            MANIFEST_FILE.to_string(),
            "not signed by the trusted keys: none of the files it references were downloaded"
                .into(),
        ));
        pulled.downloaded = store.downloaded();
        return Ok(pulled);
    }
    let Ok(manifest) = Manifest::parse(&signed.manifest) else {
        pulled.downloaded = store.downloaded();
        return Ok(pulled);
    };
    let wanted = super::references(&manifest);
    for (rel, size) in &wanted {
        if let Err(e) = copy_one(store, rel, *size, dest) {
            pulled.problems.push((rel.clone(), e.to_string()));
        }
    }
    let referenced: BTreeSet<&String> = wanted.keys().collect();
    for kind in [PATCH_DIR, FULL_DIR, FILES_DIR] {
        let mut names: Vec<String> = store
            .list(kind)?
            .into_iter()
            .map(|n| format!("{kind}/{n}"))
            .filter(|n| !referenced.contains(n))
            .collect();
        names.sort();
        pulled.unreferenced.extend(names);
    }
    pulled.downloaded = store.downloaded();
    Ok(pulled)
}

/// Copies one object, at most `size` bytes, to `dest/rel` (through a temporary file
/// beside it). A missing object is left missing: the check of the copy reports it.
fn copy_one(store: &Store, rel: &str, size: u64, dest: &Path) -> Result<(), StoreError> {
    let Store::S3(s3) = store else {
        return Ok(());
    };
    let path = dest.join(rel);
    let parent = path.parent().unwrap_or(dest);
    std::fs::create_dir_all(parent).map_err(StoreError::new("cannot create", parent))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(parent)
        .map_err(StoreError::new("cannot write in", parent))?;
    if s3.get_into(rel, size, tmp.as_file_mut())?.is_none() {
        return Ok(());
    }
    tmp.persist(&path)
        .map_err(|e| StoreError::new("cannot write", &path)(e.error))?;
    Ok(())
}
