//! Secret signing keys: generating, storing (PKCS#8 PEM, mode 0600), loading, and
//! signing patch headers and manifests. The key material never reaches `Debug`,
//! `Display`, an error message or a log line.

use std::io::Write;
use std::path::{Path, PathBuf};

use deltaapply::container::{AnyHeader, HEADER_LEN, Header, HeaderBody, SignatureSlot};
use deltaapply::signature::{SignatureEntry, manifest_message};
use deltaapply::{FormatError, KeyId, PublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signer, SigningKey};

/// Largest secret key file accepted (a PKCS#8 PEM ed25519 key is 119 bytes).
const MAX_SECRET_KEY_FILE: u64 = 4096;

/// An ed25519 signing key. Its bytes are wiped when it is dropped.
pub struct SecretKey {
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

/// Why a secret key could not be made, read or written. Messages never include key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system's random number generator failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
    /// The key file cannot be read or written.
    #[error("cannot access secret key file {}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{} already exists; refusing to overwrite a key (pass --force to replace it)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The public key file cannot be written.
    #[error("cannot write public key file {}", path.display())]
    PublicIo {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ed25519 PKCS#8 PEM secret key.
    #[error("{} is not an ed25519 secret key in PKCS#8 PEM form (\"BEGIN PRIVATE KEY\")", path.display())]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// The environment variable or file descriptor holds no usable key (its content is
    /// never part of the message).
    #[error(
        "{from} does not hold an ed25519 secret key in PKCS#8 PEM form (\"BEGIN PRIVATE KEY\")"
    )]
    NotAKey {
        /// Where it was read from ("environment variable X", "file descriptor 3").
        from: String,
    },
    /// The environment variable is not set.
    #[error("environment variable {var} is not set (expected the secret key's PEM text)")]
    EnvUnset {
        /// The variable.
        var: String,
    },
    /// The file descriptor cannot be read.
    #[error("cannot read the secret key from file descriptor {fd}")]
    Fd {
        /// The descriptor.
        fd: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where a secret key comes from: a file, an environment variable holding the PEM text
/// (a CI secret), or a file descriptor inherited from the parent process (a pipe, so
/// the key never touches a disk or the environment of other processes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PKCS#8 PEM file.
    File(PathBuf),
    /// The named environment variable holds the PEM text.
    Env(String),
    /// The descriptor, open for reading, holds the PEM text (read to its end).
    Fd(u32),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "secret key file {}", p.display()),
            KeySource::Env(var) => write!(f, "environment variable {var}"),
            KeySource::Fd(fd) => write!(f, "file descriptor {fd}"),
        }
    }
}

impl SecretKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey::from_seed(&seed))
    }

    /// The key whose 32-byte seed is `seed` (for tests and test vectors).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Reads a PKCS#8 PEM secret key file.
    pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
        use std::io::Read;
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = zeroize::Zeroizing::new(String::new());
        file.take(MAX_SECRET_KEY_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|_| KeyError::Format {
                path: path.to_path_buf(),
            })?;
        if text.len() as u64 > MAX_SECRET_KEY_FILE {
            return Err(KeyError::Format {
                path: path.to_path_buf(),
            });
        }
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|_| KeyError::Format {
            path: path.to_path_buf(),
        })?;
        Ok(SecretKey { key })
    }

    /// Reads the key from `source`. Whatever the source holds is never echoed: a bad
    /// key's error says only where it came from.
    pub fn load_from(source: &KeySource) -> Result<SecretKey, KeyError> {
        let not_a_key = || KeyError::NotAKey {
            from: source.to_string(),
        };
        let text = match source {
            KeySource::File(path) => return SecretKey::load(path),
            KeySource::Env(var) => match std::env::var_os(var) {
                None => return Err(KeyError::EnvUnset { var: var.clone() }),
                Some(value) => {
                    zeroize::Zeroizing::new(value.into_string().map_err(|_| not_a_key())?)
                }
            },
            KeySource::Fd(fd) => read_fd(*fd)?,
        };
        if text.len() as u64 > MAX_SECRET_KEY_FILE {
            return Err(not_a_key());
        }
        let key = SigningKey::from_pkcs8_pem(text.trim()).map_err(|_| not_a_key())?;
        Ok(SecretKey { key })
    }

    /// Writes the key as PKCS#8 PEM to `path`, created with mode 0600 (on Unix).
    /// Refuses to replace an existing file unless `overwrite`.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        // PKCS#8 v1 (RFC 8410 §7, no embedded public key): OpenSSL 3.0 cannot read the
        // v2 form (RFC 5958 `publicKey`) that `SigningKey::to_pkcs8_pem` writes.
        let v1 = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        let pem = v1
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an ed25519 key always encodes");
        if overwrite {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        write_key_file(&options, path, pem.as_bytes(), io)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_bytes(self.key.verifying_key().to_bytes())
            .expect("a key derived from a secret key is valid")
    }

    /// The public key's identifier.
    pub fn key_id(&self) -> KeyId {
        self.public_key().id()
    }

    /// Fills `header`'s signature block with this key's signature.
    pub fn sign_header<B: HeaderBody>(&self, header: &mut Header<B>) {
        // The signed bytes do not include the signature block, so it can be set last.
        header.signature = self.signature_over(&header.signed_message());
    }

    fn signature_over(&self, message: &[u8]) -> SignatureSlot {
        SignatureSlot::Ed25519 {
            public_key: self.public_key().to_bytes(),
            signature: self.key.sign(message).to_bytes(),
        }
    }

    /// Signs a whole patch file in memory: decodes and validates its header, fills the
    /// signature block, and writes the header back. The payload is covered through the
    /// header's `payload_sha256`, so it is not read.
    pub fn sign_patch(&self, patch: &mut [u8]) -> Result<(), FormatError> {
        let mut header = AnyHeader::decode(patch, patch.len() as u64)?;
        *header.signature_mut() = self.signature_over(&header.signed_message());
        patch[..HEADER_LEN].copy_from_slice(&header.encode());
        Ok(())
    }

    /// Signs a keys document's exact bytes (`format-spec/rotation.md`); the entry goes
    /// into its signature file.
    pub fn sign_keys(&self, document: &[u8]) -> SignatureEntry {
        SignatureEntry {
            key: self.public_key(),
            signature: self
                .key
                .sign(&deltaapply::rotation::keys_message(document))
                .to_bytes(),
        }
    }

    /// Signs a manifest's exact bytes; the entry goes into its signature file.
    pub fn sign_manifest(&self, manifest: &[u8]) -> SignatureEntry {
        SignatureEntry {
            key: self.public_key(),
            signature: self.key.sign(&manifest_message(manifest)).to_bytes(),
        }
    }
}

/// The text of a public key file (`format-spec/keys.md`): a comment line naming the
/// key id, then the key's one-line form.
pub fn public_key_file(key: &PublicKey) -> String {
    format!("# deltapack public key, key id {}\n{key}\n", key.id())
}

/// Writes [`public_key_file`] to `path`. Refuses to replace an existing file unless
/// `overwrite`.
pub fn write_public_key_file(
    path: &Path,
    key: &PublicKey,
    overwrite: bool,
) -> Result<(), KeyError> {
    let io = |source| KeyError::PublicIo {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    write_key_file(&options, path, public_key_file(key).as_bytes(), io)
}

/// Opens `path` with `options`, writes `bytes` and syncs them. A file that exists
/// where `options` asks for a new one is [`KeyError::Exists`]; other I/O errors go
/// through `io`.
fn write_key_file(
    options: &std::fs::OpenOptions,
    path: &Path,
    bytes: &[u8],
    io: impl Fn(std::io::Error) -> KeyError,
) -> Result<(), KeyError> {
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(e)
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)
}

/// Whether a secret key file can be read by users other than its owner.
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// Whether a secret key file can be read by users other than its owner.
#[cfg(not(unix))]
pub fn readable_by_others(_path: &Path) -> bool {
    false
}

/// Reads an inherited file descriptor to its end (at most one byte more than a key file
/// may hold), through `/dev/fd/N` so that no unsafe code is needed.
fn read_fd(fd: u32) -> Result<zeroize::Zeroizing<String>, KeyError> {
    use std::io::Read;
    let io = |source| KeyError::Fd { fd, source };
    if !cfg!(unix) {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "--key-fd needs a Unix system (/dev/fd)",
        )));
    }
    let file = std::fs::File::open(format!("/dev/fd/{fd}")).map_err(io)?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_SECRET_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::NotAKey {
        from: KeySource::Fd(fd).to_string(),
    })?;
    Ok(zeroize::Zeroizing::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaapply::KeyFile as _;
    use deltaapply::signature::{parse_signature_file, verify_manifest};

    #[test]
    fn save_load_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let key = SecretKey::generate().unwrap();
        key.save(&path, false).unwrap();
        assert!(matches!(
            key.save(&path, false),
            Err(KeyError::Exists { .. })
        ));
        #[cfg(unix)]
        assert!(!readable_by_others(&path));
        let loaded = SecretKey::load(&path).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());

        let manifest = b"product = \"x\"\n";
        let file = deltaapply::signature::encode_signature_file(&[loaded.sign_manifest(manifest)]);
        let trusted = deltaapply::TrustedKeys::single(key.public_key());
        assert_eq!(parse_signature_file(file.as_bytes()).unwrap().len(), 1);
        assert!(verify_manifest(manifest, file.as_bytes(), &trusted).is_ok());
        assert!(verify_manifest(b"product = \"y\"\n", file.as_bytes(), &trusted).is_err());
        let other = deltaapply::TrustedKeys::single(SecretKey::from_seed(&[9; 32]).public_key());
        assert!(verify_manifest(manifest, file.as_bytes(), &other).is_err());
    }

    #[test]
    fn signed_patches_verify_and_public_key_files_parse() {
        let key = SecretKey::from_seed(&[3; 32]);
        let mut patch = crate::make_one(
            deltaapply::Method::Full,
            b"",
            b"signed bytes",
            &crate::Settings::default(),
        )
        .unwrap();
        let unsigned = patch.clone();
        key.sign_patch(&mut patch).unwrap();
        assert_eq!(patch[HEADER_LEN..], unsigned[HEADER_LEN..]);
        let header = Header::decode(&patch, patch.len() as u64).unwrap();
        let trusted = deltaapply::TrustedKeys::single(key.public_key());
        assert_eq!(
            deltaapply::signature::check_patch_origin(&header, Some(&trusted)),
            Ok(deltaapply::Origin::Trusted {
                key_id: key.key_id()
            })
        );
        // Not a patch: refused, nothing changed.
        let mut garbage = vec![7u8; 400];
        assert!(key.sign_patch(&mut garbage).is_err());
        assert_eq!(garbage, vec![7u8; 400]);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.pub");
        write_public_key_file(&path, &key.public_key(), false).unwrap();
        assert!(matches!(
            write_public_key_file(&path, &key.public_key(), false),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(PublicKey::from_file(&path).unwrap(), key.public_key());
        let other = SecretKey::from_seed(&[4; 32]).public_key();
        write_public_key_file(&path, &other, true).unwrap();
        assert_eq!(PublicKey::from_file(&path).unwrap(), other);
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = SecretKey::from_seed(&[7; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("ed25519:"));
        assert!(!shown.contains("0707070707"));
    }
}
