//! Public keys and the set of keys an applier trusts.
//!
//! A public key is written as one line, `ed25519:` followed by the key's 32 bytes in
//! lowercase hex (see `format-spec/keys.md`), so that an installer can embed it as a
//! string and a person can compare it by eye. Its [`KeyId`] is the first 8 bytes of
//! the SHA-256 of those 32 bytes.

use std::fmt;
use std::path::PathBuf;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::digest::Sha256Digest;

/// The prefix of a public key's one-line form.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// Largest public key file accepted (a key line plus comments).
pub const MAX_KEY_FILE: u64 = 4096;

/// An ed25519 public key that is a valid, non-weak curve point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

/// A short identifier of a public key: the first 8 bytes of SHA-256(key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

/// Why a key could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not `ed25519:` followed by 64 hex digits.
    #[error("not a public key: expected \"ed25519:\" followed by 64 hex digits")]
    Syntax,
    /// The bytes are not a usable ed25519 public key.
    #[error("not a valid ed25519 public key (not a curve point, or a weak key)")]
    Invalid,
}

/// Why a key file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("cannot read public key file {}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold exactly one public key.
    #[error("public key file {}: {problem}", path.display())]
    Content {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl PublicKey {
    /// Accepts 32 bytes if they are the canonical encoding of an ed25519 public key
    /// that is not of small order (format-spec `patch-v1.md` §3.5).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Invalid)?;
        if key.is_weak() {
            return Err(KeyError::Invalid);
        }
        // RFC 8032 §5.1.3 decoding fails for y ≥ p and for x = 0 with the sign bit
        // set; the curve library reduces such encodings instead, so a second spelling
        // of a valid key would pass. Only the canonical one does.
        if key.to_edwards().compress().to_bytes() != bytes {
            return Err(KeyError::Invalid);
        }
        Ok(PublicKey(bytes))
    }

    /// Parses the one-line form `ed25519:<64 hex digits>` (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let hex = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(KeyError::Syntax)?;
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(KeyError::Syntax);
        }
        let bytes = Sha256Digest::from_hex(hex).ok_or(KeyError::Syntax)?.0;
        PublicKey::from_bytes(bytes)
    }

    /// Parses the content of a public key file: one key line; blank lines and lines
    /// starting with `#` are ignored. The error is the problem, for the caller to name
    /// the file with ([`KeyFileError::Content`]).
    pub fn from_file_content(bytes: Vec<u8>) -> Result<PublicKey, String> {
        let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        if text.contains("PRIVATE KEY") {
            return Err(
                "this is a secret key; give the public key file made by `deltapack keygen`".into(),
            );
        }
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let (Some(line), None) = (lines.next(), lines.next()) else {
            return Err("expected exactly one key line".into());
        };
        PublicKey::parse(line).map_err(|e| e.to_string())
    }

    /// The key's 32 bytes.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The key's short identifier.
    pub fn id(&self) -> KeyId {
        PublicKey::id_of_bytes(&self.0)
    }

    /// The identifier of 32 bytes that may not be a valid key (for error messages).
    pub fn id_of_bytes(bytes: &[u8; 32]) -> KeyId {
        let digest = Sha256Digest::of(bytes);
        KeyId(digest.0[..8].try_into().expect("8 of 32 bytes"))
    }

    /// Checks an ed25519 signature over `message` with the strict rules (no
    /// malleable signatures, no small-order components).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    /// The one-line form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PUBLIC_KEY_PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The keys an applier trusts, and how many distinct ones must sign a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
    threshold: usize,
}

/// Why a set of trusted keys is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    /// No key was given.
    #[error("no trusted key given")]
    Empty,
    /// The threshold is zero or above the number of distinct keys.
    #[error("threshold {threshold} is not between 1 and the {keys} distinct trusted keys")]
    Threshold {
        /// The threshold asked for.
        threshold: usize,
        /// Distinct keys given.
        keys: usize,
    },
}

impl TrustedKeys {
    /// Trusts `keys` (duplicates count once) and requires `threshold` distinct valid
    /// signatures on a manifest.
    pub fn new(mut keys: Vec<PublicKey>, threshold: usize) -> Result<TrustedKeys, TrustError> {
        keys.sort_by_key(|k| k.0);
        keys.dedup();
        if keys.is_empty() {
            return Err(TrustError::Empty);
        }
        if threshold == 0 || threshold > keys.len() {
            return Err(TrustError::Threshold {
                threshold,
                keys: keys.len(),
            });
        }
        Ok(TrustedKeys { keys, threshold })
    }

    /// A set whose keys are known to be distinct and non-empty and whose threshold is
    /// within 1..=keys (a parsed keys document's).
    pub(crate) fn from_checked(mut keys: Vec<PublicKey>, threshold: usize) -> TrustedKeys {
        keys.sort_by_key(|k| k.0);
        TrustedKeys { keys, threshold }
    }

    /// Trusts one key.
    pub fn single(key: PublicKey) -> TrustedKeys {
        TrustedKeys {
            keys: vec![key],
            threshold: 1,
        }
    }

    /// Parses a list of one-line keys separated by commas or whitespace (the syntax of
    /// `DELTAAPPLY_KEY` and the keys built into `deltaapply`), with a threshold of 1.
    pub fn parse_list(text: &str) -> Result<TrustedKeys, KeyError> {
        let keys = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(PublicKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        TrustedKeys::new(keys, 1).map_err(|_| KeyError::Syntax)
    }

    /// The distinct trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Distinct valid signatures a manifest needs.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Whether `key` is one of the trusted keys.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The ed25519 base point: a valid public key.
    const BASE: &str = "ed25519:5866666666666666666666666666666666666666666666666666666666666666";

    #[test]
    fn one_line_form_round_trips() {
        let key = PublicKey::parse(BASE).unwrap();
        assert_eq!(key.to_string(), BASE);
        assert_eq!(PublicKey::parse(&format!("  {BASE}\n")).unwrap(), key);
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(PublicKey::parse(&BASE[8..]), Err(KeyError::Syntax));
        assert_eq!(
            PublicKey::parse(&BASE.to_uppercase()),
            Err(KeyError::Syntax)
        );
        let mut upper_hex = BASE.to_string();
        upper_hex.replace_range(70.., "AA");
        assert_eq!(PublicKey::parse(&upper_hex), Err(KeyError::Syntax));
        assert_eq!(PublicKey::parse(&BASE[..70]), Err(KeyError::Syntax));
        // The identity point has small order: a weak key.
        let identity = format!("ed25519:01{}", "00".repeat(31));
        assert_eq!(PublicKey::parse(&identity), Err(KeyError::Invalid));
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        // y = p + k for small k: the same point as y = k, spelled with y ≥ p.
        let mut found = 0;
        for k in 2u8..=18 {
            let mut canonical = [0u8; 32];
            canonical[0] = k;
            let mut non_canonical = [0xffu8; 32];
            non_canonical[0] = 0xed + k;
            non_canonical[31] = 0x7f;
            let point = VerifyingKey::from_bytes(&canonical);
            if point.as_ref().is_ok_and(|p| !p.is_weak()) {
                assert!(PublicKey::from_bytes(canonical).is_ok(), "y = {k}");
                // The curve library alone would take it.
                assert!(
                    VerifyingKey::from_bytes(&non_canonical).is_ok(),
                    "y = p + {k}"
                );
                assert_eq!(
                    PublicKey::from_bytes(non_canonical),
                    Err(KeyError::Invalid),
                    "y = p + {k}"
                );
                found += 1;
            }
        }
        assert!(found > 0, "no small y is a curve point of large order");
    }

    /// Adversarial plan case 4: a signature whose S is not reduced (S + L, which names
    /// the same group element, so only the range check tells them apart) and ones whose
    /// R is a point of small order are refused; the signature they came from verifies.
    #[test]
    fn malleable_signatures_are_refused() {
        use ed25519_dalek::{Signer, SigningKey};
        // The group order L, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let signing = SigningKey::from_bytes(&[7; 32]);
        let key = PublicKey::from_bytes(signing.verifying_key().to_bytes()).unwrap();
        let message = b"deltapack release manifest";
        let good = signing.sign(message).to_bytes();
        assert!(key.verify(message, &good));

        let mut high = good;
        let mut carry = 0u16;
        for (s, l) in high[32..].iter_mut().zip(L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "S + L fits in 256 bits");
        assert_ne!(high, good);
        assert!(!key.verify(message, &high), "S + L");

        // The identity (order 1) and the point of order 2 as R.
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for r in [identity, order_two] {
            let mut small = good;
            small[..32].copy_from_slice(&r);
            assert!(!key.verify(message, &small), "R = {r:02x?}");
        }
    }

    #[test]
    fn trusted_keys_dedupe_and_check_threshold() {
        let key = PublicKey::parse(BASE).unwrap();
        let trusted = TrustedKeys::new(vec![key, key], 1).unwrap();
        assert_eq!(trusted.keys().len(), 1);
        assert_eq!(
            TrustedKeys::new(vec![key, key], 2),
            Err(TrustError::Threshold {
                threshold: 2,
                keys: 1
            })
        );
        assert_eq!(TrustedKeys::new(vec![], 1), Err(TrustError::Empty));
        assert_eq!(
            TrustedKeys::parse_list(&format!("{BASE}, {BASE}\n")).unwrap(),
            trusted
        );
    }
}
