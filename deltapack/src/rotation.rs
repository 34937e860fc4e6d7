//! The producer's side of signed key rotation (`format-spec/rotation.md`): reading and
//! checking a publish directory's key chain, writing its next version
//! (`deltapack keys rotate`), and adding signatures to a keys document or a manifest
//! (`deltapack keys sign`).

use std::path::{Path, PathBuf};

use deltaapply::PublicKey;
use deltaapply::manifest::{MANIFEST_FILE, MAX_MANIFEST_SIZE, Timestamp};
use deltaapply::rotation::{
    self, KEYS_DIR, KeysDocument, MAX_KEYS_DOCUMENT, RotationError, verify_rotation,
    verify_self_signed,
};
use deltaapply::signature::{
    MAX_SIGNATURE_FILE, SignatureEntry, encode_signature_file, parse_signature_file,
};

use crate::keys::SecretKey;
use crate::store::{self, Store, StoreError};

/// Why a key chain could not be read, extended or signed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// A file could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A version of the chain in the directory does not verify.
    #[error("{}: {source}", path.display())]
    Chain {
        /// The document.
        path: PathBuf,
        /// Why.
        #[source]
        source: RotationError,
    },
    /// The chain has a hole: a later version exists but `keys/N.toml` does not.
    #[error(
        "{} exists but {} does not: the key chain has a gap",
        found.display(),
        missing.display()
    )]
    Gap {
        /// The missing document.
        missing: PathBuf,
        /// A later document that exists.
        found: PathBuf,
    },
    /// The new version would not be accepted by appliers (thresholds not met by the
    /// keys given); nothing was written.
    #[error("version {version} would be refused by appliers, nothing was written: {source}")]
    NotAccepted {
        /// The version that was to be written.
        version: u64,
        /// What the check found.
        #[source]
        source: RotationError,
    },
    /// The request itself is unusable.
    #[error("{0}")]
    Usage(String),
}

/// A publish directory's key chain, checked from version 1 to the newest.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The newest version.
    pub newest: KeysDocument,
    /// Every key any version lists, oldest version first.
    pub all_keys: Vec<PublicKey>,
}

/// Reads and checks `dir/keys/`: version 1 signed by its own keys, each later version
/// by its predecessor's and its own. `Ok(None)` when the directory has no chain.
pub fn read_chain(dir: &Path) -> Result<Option<Chain>, RotateError> {
    read_chain_in(&Store::Dir(dir.to_path_buf()))
}

/// [`read_chain`] for any publish location (a directory or a bucket).
pub fn read_chain_in(store: &Store) -> Result<Option<Chain>, RotateError> {
    let mut chain: Option<Chain> = None;
    for version in 1.. {
        let doc_rel = rotation::document_path(version);
        let path = store.shown_at(&doc_rel);
        let Some(bytes) = store.read(&doc_rel, MAX_KEYS_DOCUMENT)? else {
            break;
        };
        let sig_rel = rotation::signature_path(version);
        let signature =
            store
                .read(&sig_rel, MAX_SIGNATURE_FILE)?
                .ok_or_else(|| RotateError::Chain {
                    path: path.clone(),
                    source: RotationError::Malformed(format!(
                        "{} is missing",
                        store.shown_at(&sig_rel).display()
                    )),
                })?;
        let checked = match &chain {
            None => verify_self_signed(&bytes, &signature).and_then(|doc| {
                if doc.version == 1 {
                    Ok(doc)
                } else {
                    Err(RotationError::Version {
                        expected: 1,
                        got: doc.version,
                    })
                }
            }),
            Some(c) => verify_rotation(&c.newest, &bytes, &signature),
        };
        let doc = checked.map_err(|source| RotateError::Chain { path, source })?;
        let mut all_keys = chain.map(|c| c.all_keys).unwrap_or_default();
        all_keys.extend(doc.keys.iter().copied());
        chain = Some(Chain {
            all_keys,
            newest: doc,
        });
    }
    let newest = chain.as_ref().map_or(0, |c| c.newest.version);
    if let Some(stray) = later_versions(store)?.into_iter().find(|v| *v > newest + 1) {
        return Err(RotateError::Gap {
            missing: store.shown_at(&rotation::document_path(newest + 1)),
            found: store.shown_at(&rotation::document_path(stray)),
        });
    }
    Ok(chain)
}

/// The versions `keys/` holds documents for.
fn later_versions(store: &Store) -> Result<Vec<u64>, RotateError> {
    Ok(store
        .list(KEYS_DIR)?
        .iter()
        .filter_map(|n| n.strip_suffix(".toml").and_then(|n| n.parse::<u64>().ok()))
        .collect())
}

/// What the next version lists.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The product (required for version 1; must match the chain's otherwise).
    pub product: Option<String>,
    /// The keys of the new version.
    pub keys: Vec<PublicKey>,
    /// How many of them must sign.
    pub threshold: usize,
    /// When the new version expires, if ever.
    pub expires: Option<Timestamp>,
}

/// What [`rotate`] wrote.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The version written.
    pub document: KeysDocument,
    /// Keys the rotation revoked (listed by the previous version, not by this one).
    pub revoked: Vec<deltaapply::KeyId>,
    /// The document's path.
    pub path: PathBuf,
    /// Its signature file's path.
    pub signature_path: PathBuf,
}

/// Writes the next version of `dir`'s key chain, signed by `signers`. The result is
/// checked as an applier checks it (a threshold of the previous version's keys and of
/// its own) before anything is written; the signature file is written before the
/// document, so an applier never finds the document without its signatures.
pub fn rotate(dir: &Path, next: &Rotation, signers: &[SecretKey]) -> Result<Rotated, RotateError> {
    let chain = read_chain(dir)?;
    let current = chain.as_ref().map(|c| &c.newest);
    let product = match (current, &next.product) {
        (Some(c), Some(p)) if *p != c.product => {
            return Err(RotateError::Usage(format!(
                "the key chain is for product {:?}, not {p:?}",
                c.product
            )));
        }
        (Some(c), _) => c.product.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => {
            return Err(RotateError::Usage(
                "the first keys version needs a product name (--product)".into(),
            ));
        }
    };
    let version = current.map_or(1, |c| c.version + 1);
    let text = KeysDocument {
        product,
        version,
        keys: next.keys.clone(),
        threshold: next.threshold,
        expires: next.expires,
    }
    .encode();
    let bytes = text.into_bytes();
    let signature = sign_entries(&bytes, signers, None, SignedKind::Keys)?;
    let not_accepted = |source| RotateError::NotAccepted { version, source };
    let document = match current {
        Some(c) => verify_rotation(c, &bytes, signature.as_bytes()),
        None => verify_self_signed(&bytes, signature.as_bytes()),
    }
    .map_err(not_accepted)?;
    let path = dir.join(rotation::document_path(version));
    let signature_path = dir.join(rotation::signature_path(version));
    store::write_file(&signature_path, signature.as_bytes())?;
    store::write_file(&path, &bytes)?;
    Ok(Rotated {
        revoked: current.map(|c| c.revoked_by(&document)).unwrap_or_default(),
        document,
        path,
        signature_path,
    })
}

/// Which kind of document a signature is for (each has its own context string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedKind {
    /// A keys document (`keys/N.toml`).
    Keys,
    /// A release manifest (`manifest.toml`).
    Manifest,
}

impl SignedKind {
    /// The kind of `path`, by its name: `manifest.toml` or `keys/<N>.toml`.
    pub fn of(path: &Path) -> Option<SignedKind> {
        let name = path.file_name()?.to_str()?;
        if name == MANIFEST_FILE {
            return Some(SignedKind::Manifest);
        }
        let in_keys = path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == KEYS_DIR);
        let numbered = name
            .strip_suffix(".toml")
            .is_some_and(|n| n.parse::<u64>().is_ok());
        (in_keys && numbered).then_some(SignedKind::Keys)
    }
}

/// `existing`'s signature lines (if any) with one by each of `signers` added (a key
/// that already signed is signed again, replacing its line), as signature-file text.
fn sign_entries(
    bytes: &[u8],
    signers: &[SecretKey],
    existing: Option<&[u8]>,
    kind: SignedKind,
) -> Result<String, RotateError> {
    let mut entries: Vec<SignatureEntry> = match existing {
        Some(sig) => parse_signature_file(sig).map_err(|e| {
            RotateError::Usage(format!("the existing signature file is unusable: {e}"))
        })?,
        None => Vec::new(),
    };
    for signer in signers {
        let entry = match kind {
            SignedKind::Manifest => signer.sign_manifest(bytes),
            SignedKind::Keys => signer.sign_keys(bytes),
        };
        entries.retain(|e| e.key != entry.key);
        entries.push(entry);
    }
    if entries.len() > deltaapply::signature::MAX_SIGNATURES {
        return Err(RotateError::Usage(format!(
            "more than {} signatures",
            deltaapply::signature::MAX_SIGNATURES
        )));
    }
    Ok(encode_signature_file(&entries))
}

/// Adds a signature by each of `signers` to `file`'s signature file (`FILE.sig`),
/// for documents whose keys are held by different people: each runs this in turn.
/// Returns the signature file's path and how many signatures it now holds.
pub fn sign(file: &Path, signers: &[SecretKey]) -> Result<(PathBuf, usize), RotateError> {
    let kind = SignedKind::of(file).ok_or_else(|| {
        RotateError::Usage(format!(
            "{} is neither a manifest.toml nor a keys/<N>.toml",
            file.display()
        ))
    })?;
    let cap = match kind {
        SignedKind::Manifest => MAX_MANIFEST_SIZE,
        SignedKind::Keys => MAX_KEYS_DOCUMENT,
    };
    let bytes = store::read_capped(file, cap)?.ok_or_else(|| {
        RotateError::Store(StoreError::new("cannot read", file)(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        )))
    })?;
    if kind == SignedKind::Keys {
        KeysDocument::parse(&bytes).map_err(|source| RotateError::Chain {
            path: file.to_path_buf(),
            source,
        })?;
    }
    let mut sig_name = file.as_os_str().to_owned();
    sig_name.push(".sig");
    let sig_path = PathBuf::from(sig_name);
    let existing = store::read_capped(&sig_path, MAX_SIGNATURE_FILE)?;
    let text = sign_entries(&bytes, signers, existing.as_deref(), kind)?;
    let count = text.lines().count() - 1;
    store::write_file(&sig_path, text.as_bytes())?;
    Ok((sig_path, count))
}
