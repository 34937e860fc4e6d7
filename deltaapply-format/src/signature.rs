//! Signatures: the detached signature file of a manifest, and the origin check of a
//! signed patch header. Normative description: `format-spec/signatures.md`.
//!
//! A signature file is ASCII text: the line `deltapack-signatures v1`, then one line
//! per signature, `ed25519 <public key hex> <signature hex>`, each ending in LF. Every
//! signature signs [`MANIFEST_CONTEXT`] followed by the manifest's exact bytes. A
//! manifest is accepted when at least the trusted set's threshold of *distinct*
//! trusted keys have valid signatures on it; signatures by other keys are ignored
//! (they make room for key rotation), a bad signature by a trusted key is an error.

use std::fmt::Write as _;

use crate::container::{Header, HeaderBody, SignatureSlot};
use crate::key::{KeyId, PublicKey, TrustedKeys};

/// What every manifest signature signs before the manifest's bytes.
pub const MANIFEST_CONTEXT: &[u8] = b"deltapack manifest v1\0";

/// The first line of a signature file.
pub const SIGNATURE_FILE_MAGIC: &str = "deltapack-signatures v1";

/// Most signatures a signature file may hold.
pub const MAX_SIGNATURES: usize = 16;

/// Largest signature file accepted, in bytes (the magic line and [`MAX_SIGNATURES`]
/// signature lines fit well within it).
pub const MAX_SIGNATURE_FILE: u64 = 4096;

/// One signature line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureEntry {
    /// The signer's public key.
    pub key: PublicKey,
    /// The ed25519 signature.
    pub signature: [u8; 64],
}

/// Why a signature file or a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The signature file is larger than [`MAX_SIGNATURE_FILE`].
    #[error("signature file is {size} bytes, more than the {MAX_SIGNATURE_FILE} allowed")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// The signature file does not follow the format.
    #[error("malformed signature file, line {line}: {problem}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// A trusted key's signature does not verify: the signed bytes were changed.
    #[error(
        "the signature by trusted key {key_id} does not match the signed bytes (tampered or corrupt)"
    )]
    BadSignature {
        /// The trusted key.
        key_id: KeyId,
    },
    /// Too few distinct trusted keys signed.
    #[error(
        "signed by {} (valid and trusted: {valid}), but {threshold} trusted key(s) must sign; trusted keys: {}",
        list(signed_by),
        list(trusted)
    )]
    NotEnoughTrusted {
        /// Every key that signed.
        signed_by: Vec<KeyId>,
        /// How many of them are trusted and valid.
        valid: usize,
        /// How many are needed.
        threshold: usize,
        /// The trusted keys.
        trusted: Vec<KeyId>,
    },
    /// A key is required and the patch carries no signature.
    #[error("the patch is not signed, and a trusted key is configured: refusing it")]
    Unsigned,
    /// The patch's signature does not verify against the key it names.
    #[error(
        "the patch's signature by key {key_id} does not match its header (tampered or corrupt)"
    )]
    BadPatchSignature {
        /// The key the patch names.
        key_id: KeyId,
    },
    /// The patch carries a key that is not trusted or is not a valid key.
    #[error(
        "the patch is signed by key {key_id}, which is not trusted (trusted: {})",
        list(trusted)
    )]
    UntrustedPatchKey {
        /// The key the patch names.
        key_id: KeyId,
        /// The trusted keys.
        trusted: Vec<KeyId>,
    },
}

fn list(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a signature file. Every byte is checked: the magic line, 1 to
/// [`MAX_SIGNATURES`] signature lines, lowercase hex, single spaces, LF endings, no
/// duplicate keys, nothing else.
pub fn parse_signature_file(bytes: &[u8]) -> Result<Vec<SignatureEntry>, SignatureError> {
    if bytes.len() as u64 > MAX_SIGNATURE_FILE {
        return Err(SignatureError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    let malformed = |line, problem| SignatureError::Malformed { line, problem };
    let Some(body) = bytes.strip_suffix(b"\n") else {
        return Err(malformed(1, "must end with a newline"));
    };
    let mut lines = body.split(|&b| b == b'\n');
    if lines.next() != Some(SIGNATURE_FILE_MAGIC.as_bytes()) {
        return Err(malformed(
            1,
            "first line must be \"deltapack-signatures v1\"",
        ));
    }
    let mut entries: Vec<SignatureEntry> = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if entries.len() == MAX_SIGNATURES {
            return Err(malformed(n, "more than 16 signatures"));
        }
        let Some(rest) = line.strip_prefix(b"ed25519 ") else {
            return Err(malformed(n, "expected \"ed25519 <key> <signature>\""));
        };
        if rest.len() != 64 + 1 + 128 || rest[64] != b' ' {
            return Err(malformed(
                n,
                "expected 64 hex digits, a space, 128 hex digits",
            ));
        }
        let key_bytes: [u8; 32] = hex_bytes(&rest[..64]).ok_or(malformed(n, "bad hex in key"))?;
        let signature: [u8; 64] =
            hex_bytes(&rest[65..]).ok_or(malformed(n, "bad hex in signature"))?;
        let key =
            PublicKey::from_bytes(key_bytes).map_err(|_| malformed(n, "not a valid public key"))?;
        if entries.iter().any(|e| e.key == key) {
            return Err(malformed(n, "the same key signs twice"));
        }
        entries.push(SignatureEntry { key, signature });
    }
    if entries.is_empty() {
        return Err(malformed(2, "no signature"));
    }
    Ok(entries)
}

/// Writes a signature file holding `entries` (in the order given).
pub fn encode_signature_file(entries: &[SignatureEntry]) -> String {
    let mut out = format!("{SIGNATURE_FILE_MAGIC}\n");
    for e in entries {
        out.push_str("ed25519 ");
        for b in e.key.to_bytes() {
            write!(out, "{b:02x}").expect("writing to a String");
        }
        out.push(' ');
        for b in e.signature {
            write!(out, "{b:02x}").expect("writing to a String");
        }
        out.push('\n');
    }
    out
}

/// The exact bytes a manifest signature signs.
pub fn manifest_message(manifest: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(MANIFEST_CONTEXT.len() + manifest.len());
    message.extend_from_slice(MANIFEST_CONTEXT);
    message.extend_from_slice(manifest);
    message
}

/// Checks `signature_file` over `manifest` against `trusted`; returns the trusted keys
/// whose valid signatures were counted. Called before the manifest is parsed.
pub fn verify_manifest(
    manifest: &[u8],
    signature_file: &[u8],
    trusted: &TrustedKeys,
) -> Result<Vec<KeyId>, SignatureError> {
    verify_signed(&manifest_message(manifest), signature_file, trusted)
}

/// Checks `signature_file` over `message` (context string and signed bytes) against
/// `trusted` (§3): every trusted key's signature must verify, untrusted ones are
/// ignored, and at least the threshold of distinct trusted keys must have signed.
pub fn verify_signed(
    message: &[u8],
    signature_file: &[u8],
    trusted: &TrustedKeys,
) -> Result<Vec<KeyId>, SignatureError> {
    let entries = parse_signature_file(signature_file)?;
    let mut valid = Vec::new();
    for e in &entries {
        if !trusted.contains(&e.key) {
            continue;
        }
        if !e.key.verify(message, &e.signature) {
            return Err(SignatureError::BadSignature { key_id: e.key.id() });
        }
        valid.push(e.key.id());
    }
    if valid.len() < trusted.threshold() {
        return Err(SignatureError::NotEnoughTrusted {
            signed_by: entries.iter().map(|e| e.key.id()).collect(),
            valid: valid.len(),
            threshold: trusted.threshold(),
            trusted: trusted.keys().iter().map(PublicKey::id).collect(),
        });
    }
    Ok(valid)
}

/// Where a patch comes from, as far as the applier could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// Signed by this trusted key.
    Trusted {
        /// The key.
        key_id: KeyId,
    },
    /// No key was configured, so the origin is unknown. If the patch is signed, its
    /// signature was checked against the key it carries (which catches corruption,
    /// not forgery).
    Unverified {
        /// The key the patch carries, if signed.
        signed_by: Option<KeyId>,
    },
}

/// Checks a patch header's signature block. With `trusted` set, the patch must be
/// signed by one of those keys; without, a signature present is still checked against
/// the key it carries.
pub fn check_patch_origin<B: HeaderBody>(
    header: &Header<B>,
    trusted: Option<&TrustedKeys>,
) -> Result<Origin, SignatureError> {
    check_origin(header.signature, &|| header.signed_message(), trusted)
}

/// [`check_patch_origin`] of a header's signature block and the message it signs.
fn check_origin(
    slot: SignatureSlot,
    message: &dyn Fn() -> Vec<u8>,
    trusted: Option<&TrustedKeys>,
) -> Result<Origin, SignatureError> {
    let (key_bytes, signature) = match (slot, trusted) {
        (SignatureSlot::Unsigned, None) => return Ok(Origin::Unverified { signed_by: None }),
        (SignatureSlot::Unsigned, Some(_)) => return Err(SignatureError::Unsigned),
        (
            SignatureSlot::Ed25519 {
                public_key,
                signature,
            },
            _,
        ) => (public_key, signature),
    };
    let key = PublicKey::from_bytes(key_bytes);
    let key_id = match &key {
        Ok(k) => k.id(),
        Err(_) => PublicKey::id_of_bytes(&key_bytes),
    };
    if let Some(trusted) = trusted {
        match &key {
            Ok(k) if trusted.contains(k) => {}
            _ => {
                return Err(SignatureError::UntrustedPatchKey {
                    key_id,
                    trusted: trusted.keys().iter().map(PublicKey::id).collect(),
                });
            }
        }
    }
    let valid = key.is_ok_and(|k| k.verify(&message(), &signature));
    if !valid {
        return Err(SignatureError::BadPatchSignature { key_id });
    }
    Ok(match trusted {
        Some(_) => Origin::Trusted { key_id },
        None => Origin::Unverified {
            signed_by: Some(key_id),
        },
    })
}

fn hex_bytes<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "5866666666666666666666666666666666666666666666666666666666666666";

    fn file_with(lines: &[String]) -> Vec<u8> {
        let mut s = format!("{SIGNATURE_FILE_MAGIC}\n");
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s.into_bytes()
    }

    #[test]
    fn parses_and_encodes() {
        let line = format!("ed25519 {BASE} {}", "ab".repeat(64));
        let bytes = file_with(std::slice::from_ref(&line));
        let entries = parse_signature_file(&bytes).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(encode_signature_file(&entries).into_bytes(), bytes);
    }

    #[test]
    fn malformed_files_are_refused() {
        let good = format!("ed25519 {BASE} {}", "ab".repeat(64));
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"deltapack-signatures v1\n".to_vec(),
            file_with(std::slice::from_ref(&good))[..100].to_vec(),
            file_with(&[good.clone(), good.clone()]),
            file_with(&[good.to_uppercase().replace("ED25519", "ed25519")]),
            file_with(&[good.replace(' ', "  ")]),
            file_with(&[format!("{good} ")]),
            file_with(&[good.clone(), String::new()]),
            file_with(&[good.replace("ed25519", "ed448")]),
            file_with(&vec![good.clone(); 17]),
            format!("{SIGNATURE_FILE_MAGIC}\r\n{good}\r\n").into_bytes(),
            vec![b'x'; 5000],
        ];
        for (i, bytes) in cases.iter().enumerate() {
            assert!(parse_signature_file(bytes).is_err(), "case {i}");
        }
    }
}
