//! Signed key rotation (`format-spec/rotation.md`): the keys document, which lists the
//! release keys of a product and how many of them must sign, and the rule by which
//! version N+1 of it is accepted from version N.
//!
//! A keys document is small TOML:
//!
//! ```toml
//! format = "deltapack-keys-v1"
//! product = "example-app"
//! version = 2
//! threshold = 1
//! keys = ["ed25519:…", "ed25519:…"]
//! expires = 2027-12-01T00:00:00Z   # optional
//! ```
//!
//! Version N+1 is published as `keys/<N+1>.toml` with a detached signature file
//! `keys/<N+1>.toml.sig` (the format of `signatures.md` §2, under its own context
//! string), signed by a threshold of version N's keys **and** a threshold of its own.
//! An applier pins one version, walks the chain one version at a time, and then
//! verifies manifests with the newest version's keys and threshold.

use serde::Deserialize;

use crate::key::{KeyId, PublicKey, TrustedKeys};
use crate::manifest::{Timestamp, check_label};
use crate::signature::{SignatureError, verify_signed};

/// The `format` value of a keys document.
pub const KEYS_FORMAT: &str = "deltapack-keys-v1";

/// Context string prefixed to a keys document's bytes when it is signed: a signature
/// over a keys document can never be replayed as a manifest's, nor the reverse.
pub const KEYS_CONTEXT: &[u8] = b"deltapack keys v1\0";

/// Largest keys document read.
pub const MAX_KEYS_DOCUMENT: u64 = 64 << 10;

/// Most keys one document lists.
pub const MAX_KEYS: usize = 16;

/// Most versions one walk of the chain accepts; a longer chain is refused
/// ([`RotationError::TooManySteps`]) rather than walked without end.
pub const MAX_ROTATION_STEPS: u64 = 256;

/// Directory of a publish directory that holds the chain.
pub const KEYS_DIR: &str = "keys";

/// Path of version `version`'s document in a publish directory.
pub fn document_path(version: u64) -> String {
    format!("{KEYS_DIR}/{version}.toml")
}

/// Path of version `version`'s signature file in a publish directory.
pub fn signature_path(version: u64) -> String {
    format!("{KEYS_DIR}/{version}.toml.sig")
}

/// One version of a product's release keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysDocument {
    /// The product whose manifests these keys sign.
    pub product: String,
    /// The version, from 1; each rotation adds one.
    pub version: u64,
    /// The keys, distinct, in the order the document lists them.
    pub keys: Vec<PublicKey>,
    /// How many distinct keys must sign a manifest, and the next version.
    pub threshold: usize,
    /// After this time the document is no longer a trust anchor (absent: never).
    pub expires: Option<Timestamp>,
}

/// Why a keys document or a rotation step was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RotationError {
    /// The document is larger than [`MAX_KEYS_DOCUMENT`].
    #[error("keys document is {size} bytes, more than the {MAX_KEYS_DOCUMENT} allowed")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// The document does not follow the format.
    #[error("malformed keys document: {0}")]
    Malformed(String),
    /// The signature file does not meet the previous version's threshold.
    #[error("keys version {version} is not signed by enough keys of version {previous}: {source}")]
    PreviousKeys {
        /// The version refused.
        version: u64,
        /// The version it rotates from.
        previous: u64,
        /// What the signature check found.
        #[source]
        source: SignatureError,
    },
    /// The signature file does not meet the document's own threshold.
    #[error("keys version {version} is not signed by enough of its own keys: {source}")]
    OwnKeys {
        /// The version refused.
        version: u64,
        /// What the signature check found.
        #[source]
        source: SignatureError,
    },
    /// The document at version N+1's place says another version: a gap or a replay.
    #[error("the keys document published as version {expected} says version {got}")]
    Version {
        /// The version it was published as (current + 1).
        expected: u64,
        /// The version it says.
        got: u64,
    },
    /// The document names another product than the keys it rotates from.
    #[error("keys version {version} is for product {got:?}, not {expected:?}")]
    Product {
        /// The version refused.
        version: u64,
        /// The product of the trusted keys.
        expected: String,
        /// The product the document names.
        got: String,
    },
    /// More versions than [`MAX_ROTATION_STEPS`] follow the trusted one.
    #[error(
        "more than {MAX_ROTATION_STEPS} key rotations follow the trusted keys version {from}: \
         refusing to walk further"
    )]
    TooManySteps {
        /// The version the walk started from.
        from: u64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    format: String,
    product: String,
    version: u64,
    threshold: u64,
    keys: Vec<String>,
    expires: Option<Timestamp>,
}

impl KeysDocument {
    /// Parses and validates a keys document. Weak (small-order) and non-canonical
    /// keys, a key listed twice, a threshold outside 1..=keys and unknown fields are
    /// refused.
    pub fn parse(bytes: &[u8]) -> Result<KeysDocument, RotationError> {
        if bytes.len() as u64 > MAX_KEYS_DOCUMENT {
            return Err(RotationError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let bad = |m: String| RotationError::Malformed(m);
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let raw: Raw =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_string()))?;
        if raw.format != KEYS_FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {KEYS_FORMAT:?}",
                raw.format
            )));
        }
        check_label("product", &raw.product).map_err(|e| bad(e.to_string()))?;
        if raw.version == 0 {
            return Err(bad("version must be at least 1".into()));
        }
        if raw.keys.is_empty() || raw.keys.len() > MAX_KEYS {
            return Err(bad(format!("must list 1 to {MAX_KEYS} keys")));
        }
        let mut keys: Vec<PublicKey> = Vec::with_capacity(raw.keys.len());
        for (i, text) in raw.keys.iter().enumerate() {
            let key = PublicKey::parse(text).map_err(|e| bad(format!("key {}: {e}", i + 1)))?;
            if keys.contains(&key) {
                return Err(bad(format!("key {} ({}) is listed twice", i + 1, key.id())));
            }
            keys.push(key);
        }
        let threshold = usize::try_from(raw.threshold)
            .ok()
            .filter(|t| (1..=keys.len()).contains(t))
            .ok_or_else(|| {
                bad(format!(
                    "threshold {} is not between 1 and the {} keys",
                    raw.threshold,
                    keys.len()
                ))
            })?;
        Ok(KeysDocument {
            product: raw.product,
            version: raw.version,
            keys,
            threshold,
            expires: raw.expires,
        })
    }

    /// The document's canonical text (what `deltapack keys rotate` writes).
    pub fn encode(&self) -> String {
        let keys: Vec<String> = self.keys.iter().map(|k| format!("  \"{k}\",\n")).collect();
        let expires = self
            .expires
            .map(|t| format!("expires = {t}\n"))
            .unwrap_or_default();
        format!(
            "format = \"{KEYS_FORMAT}\"\nproduct = \"{}\"\nversion = {}\nthreshold = {}\n{expires}keys = [\n{}]\n",
            self.product,
            self.version,
            self.threshold,
            keys.concat()
        )
    }

    /// The keys and threshold manifests are verified with.
    pub fn trusted(&self) -> TrustedKeys {
        // `parse` made the keys distinct and the threshold 1..=keys.
        TrustedKeys::from_checked(self.keys.clone(), self.threshold)
    }

    /// Whether the document has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| now > e)
    }

    /// The keys of `self` that `next` no longer lists: keys a rotation revoked.
    pub fn revoked_by(&self, next: &KeysDocument) -> Vec<KeyId> {
        self.keys
            .iter()
            .filter(|k| !next.keys.contains(k))
            .map(PublicKey::id)
            .collect()
    }
}

/// The exact bytes a keys-document signature signs.
pub fn keys_message(document: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(KEYS_CONTEXT.len() + document.len());
    message.extend_from_slice(KEYS_CONTEXT);
    message.extend_from_slice(document);
    message
}

/// Accepts `next` (the bytes published as version `current.version + 1`, and their
/// signature file) from the trusted `current`: signed by a threshold of `current`'s
/// keys over the bytes (checked before they are parsed), then parsed, then signed by
/// a threshold of its own keys, for the same product, with exactly the next version.
pub fn verify_rotation(
    current: &KeysDocument,
    next: &[u8],
    signature_file: &[u8],
) -> Result<KeysDocument, RotationError> {
    let version = current.version + 1;
    let message = keys_message(next);
    verify_signed(&message, signature_file, &current.trusted()).map_err(|source| {
        RotationError::PreviousKeys {
            version,
            previous: current.version,
            source,
        }
    })?;
    let document = KeysDocument::parse(next)?;
    if document.version != version {
        return Err(RotationError::Version {
            expected: version,
            got: document.version,
        });
    }
    if document.product != current.product {
        return Err(RotationError::Product {
            version,
            expected: current.product.clone(),
            got: document.product,
        });
    }
    verify_signed(&message, signature_file, &document.trusted())
        .map_err(|source| RotationError::OwnKeys { version, source })?;
    Ok(document)
}

/// Checks that a document is signed by a threshold of its own keys (how a first
/// version, which rotates from nothing, is checked by its producer).
pub fn verify_self_signed(
    document: &[u8],
    signature_file: &[u8],
) -> Result<KeysDocument, RotationError> {
    let parsed = KeysDocument::parse(document)?;
    verify_signed(&keys_message(document), signature_file, &parsed.trusted()).map_err(
        |source| RotationError::OwnKeys {
            version: parsed.version,
            source,
        },
    )?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::MANIFEST_CONTEXT;

    const A: &str = "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const B: &str = "ed25519:3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

    fn doc(body: &str) -> Result<KeysDocument, RotationError> {
        KeysDocument::parse(body.as_bytes())
    }

    #[test]
    fn parses_and_encodes() {
        let text = format!(
            "format = \"deltapack-keys-v1\"\nproduct = \"app\"\nversion = 3\nthreshold = 2\n\
             expires = 2030-01-01T00:00:00Z\nkeys = [\"{A}\", \"{B}\"]\n"
        );
        let d = doc(&text).unwrap();
        assert_eq!((d.version, d.threshold, d.keys.len()), (3, 2, 2));
        assert_eq!(d.trusted().threshold(), 2);
        assert_eq!(KeysDocument::parse(d.encode().as_bytes()).unwrap(), d);
        assert!(d.is_expired(Timestamp::parse("2030-01-01T00:00:01Z").unwrap()));
        assert!(!d.is_expired(Timestamp::parse("2029-12-31T23:59:59Z").unwrap()));
    }

    #[test]
    fn bad_documents_are_refused() {
        // A small-order point (the identity) and a non-canonical encoding (ADVERSARIAL
        // case 5: weak keys in a rotation document).
        let weak = "ed25519:0100000000000000000000000000000000000000000000000000000000000000";
        let noncanonical =
            "ed25519:edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
        let head = "format = \"deltapack-keys-v1\"\nproduct = \"app\"\n";
        for (body, says) in [
            (
                format!("{head}version = 1\nthreshold = 1\nkeys = [\"{weak}\"]\n"),
                "key 1",
            ),
            (
                format!("{head}version = 1\nthreshold = 1\nkeys = [\"{noncanonical}\"]\n"),
                "key 1",
            ),
            (
                format!("{head}version = 1\nthreshold = 1\nkeys = [\"{A}\", \"{A}\"]\n"),
                "twice",
            ),
            (
                format!("{head}version = 1\nthreshold = 0\nkeys = [\"{A}\"]\n"),
                "threshold",
            ),
            (
                format!("{head}version = 1\nthreshold = 2\nkeys = [\"{A}\"]\n"),
                "threshold",
            ),
            (
                format!("{head}version = 0\nthreshold = 1\nkeys = [\"{A}\"]\n"),
                "version",
            ),
            (
                format!("{head}version = 1\nthreshold = 1\nkeys = []\n"),
                "1 to 16",
            ),
            (
                format!("{head}version = 1\nthreshold = 1\nkeys = [\"{A}\"]\nextra = 1\n"),
                "unknown",
            ),
            (
                format!(
                    "format = \"deltapack-keys-v2\"\nproduct = \"app\"\nversion = 1\nthreshold = 1\nkeys = [\"{A}\"]\n"
                ),
                "format",
            ),
            (
                format!(
                    "format = \"deltapack-keys-v1\"\nproduct = \"a b\"\nversion = 1\nthreshold = 1\nkeys = [\"{A}\"]\n"
                ),
                "product",
            ),
        ] {
            let err = doc(&body).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
        let huge = vec![b'#'; MAX_KEYS_DOCUMENT as usize + 1];
        assert!(matches!(
            KeysDocument::parse(&huge),
            Err(RotationError::TooLarge { .. })
        ));
        assert!(doc("\u{0}\u{ff}").is_err());
    }

    #[test]
    fn keys_and_manifest_signatures_are_domain_separated() {
        // ADVERSARIAL case 7: a signature over a keys document is not one over the same
        // bytes as a manifest, and the reverse.
        assert_ne!(KEYS_CONTEXT, MANIFEST_CONTEXT);
        let bytes = b"same bytes";
        assert_ne!(
            keys_message(bytes),
            crate::signature::manifest_message(bytes)
        );
        assert!(keys_message(bytes).starts_with(KEYS_CONTEXT));
    }
}
