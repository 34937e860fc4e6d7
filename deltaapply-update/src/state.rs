//! The applier's state file: the highest manifest sequence number it has accepted for
//! each product and channel, so that an older (rolled-back) manifest is refused even
//! though its signature is valid.
//!
//! The file is small ASCII text, written atomically (temporary file, fsync, rename):
//!
//! ```text
//! deltaapply-state v1
//! accepted example-app stable 42 <sha256 of that manifest>
//! ```
//!
//! One `accepted PRODUCT CHANNEL SEQUENCE [SHA256]` line per product and channel,
//! sorted; the digest of the manifest accepted at that sequence lets a manifest with the
//! same sequence but other bytes be refused (files written before it was recorded have
//! no digest). A missing file means nothing was accepted yet; a file that does not parse
//! is an error, never a reason to forget what was accepted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use deltaapply_apply::stage::Staged;
use deltaapply_fetch::source::read_capped;
use deltaapply_format::Sha256Digest;
use deltaapply_format::manifest::check_label;

/// First line of a state file.
pub const STATE_MAGIC: &str = "deltaapply-state v1";

/// Largest state file read.
pub const MAX_STATE_FILE: u64 = 64 << 10;

/// What the applier has accepted, by (product, channel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    accepted: BTreeMap<(String, String), Entry>,
}

/// What was accepted for one product and channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    sequence: u64,
    /// The SHA-256 of the manifest accepted at `sequence`, when recorded.
    digest: Option<Sha256Digest>,
}

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("cannot {action} state file {}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state file this version understands.
    #[error(
        "state file {} is damaged ({problem}); it records which releases were accepted, so it \
         is not ignored: restore it, or delete it to accept any validly signed manifest again",
        path.display()
    )]
    Invalid {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl State {
    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let bytes = match read_capped(path, MAX_STATE_FILE) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(StateError::Invalid {
                    path: path.to_path_buf(),
                    problem: format!("larger than {MAX_STATE_FILE} bytes"),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StateError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        State::parse(&bytes).map_err(|problem| StateError::Invalid {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses a state file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<State, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(STATE_MAGIC) {
            return Err(format!("the first line is not {STATE_MAGIC:?}"));
        }
        let mut state = State::default();
        for (n, line) in lines.enumerate() {
            let at = || format!("line {}", n + 2);
            let fields: Vec<&str> = line.split(' ').collect();
            let (product, channel, sequence, digest) = match fields[..] {
                ["accepted", product, channel, sequence] => (product, channel, sequence, None),
                ["accepted", product, channel, sequence, digest] => {
                    let digest = Sha256Digest::from_hex(digest)
                        .ok_or_else(|| format!("{}: {digest:?} is not a SHA-256", at()))?;
                    (product, channel, sequence, Some(digest))
                }
                _ => {
                    return Err(format!(
                        "{}: expected `accepted PRODUCT CHANNEL SEQUENCE [SHA256]`",
                        at()
                    ));
                }
            };
            check_label("product", product).map_err(|e| format!("{}: {e}", at()))?;
            check_label("channel", channel).map_err(|e| format!("{}: {e}", at()))?;
            let sequence: u64 = sequence
                .parse()
                .ok()
                .filter(|_| sequence.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("{}: {sequence:?} is not a sequence number", at()))?;
            let key = (product.to_string(), channel.to_string());
            if state
                .accepted
                .insert(key, Entry { sequence, digest })
                .is_some()
            {
                return Err(format!("{}: {product} {channel} is listed twice", at()));
            }
        }
        Ok(state)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = format!("{STATE_MAGIC}\n");
        for ((product, channel), entry) in &self.accepted {
            out.push_str(&format!("accepted {product} {channel} {}", entry.sequence));
            if let Some(digest) = entry.digest {
                out.push_str(&format!(" {digest}"));
            }
            out.push('\n');
        }
        out
    }

    /// The highest sequence accepted for `product` and `channel`.
    pub fn accepted(&self, product: &str, channel: &str) -> Option<u64> {
        self.entry(product, channel).map(|e| e.sequence)
    }

    /// The SHA-256 of the manifest accepted at that sequence, when recorded.
    pub fn accepted_digest(&self, product: &str, channel: &str) -> Option<Sha256Digest> {
        self.entry(product, channel).and_then(|e| e.digest)
    }

    fn entry(&self, product: &str, channel: &str) -> Option<Entry> {
        self.accepted
            .get(&(product.to_string(), channel.to_string()))
            .copied()
    }

    /// The channels of `product` with an accepted sequence number, sorted.
    pub fn channels(&self, product: &str) -> Vec<&str> {
        self.accepted
            .keys()
            .filter(|(p, _)| p == product)
            .map(|(_, c)| c.as_str())
            .collect()
    }

    /// The products with an accepted sequence number.
    pub fn products(&self) -> Vec<&str> {
        let mut products: Vec<&str> = self.accepted.keys().map(|(p, _)| p.as_str()).collect();
        products.dedup();
        products
    }

    /// Records `sequence` (of the manifest whose SHA-256 is `digest`) as accepted;
    /// returns whether the state changed: a higher sequence, or the digest recorded
    /// for the first time at the stored sequence.
    pub fn accept(
        &mut self,
        product: &str,
        channel: &str,
        sequence: u64,
        digest: Sha256Digest,
    ) -> bool {
        let entry = self
            .accepted
            .entry((product.to_string(), channel.to_string()))
            .or_insert(Entry {
                sequence: 0,
                digest: None,
            });
        let changed =
            sequence > entry.sequence || (sequence == entry.sequence && entry.digest.is_none());
        if changed {
            *entry = Entry {
                sequence,
                digest: Some(digest),
            };
        }
        changed
    }

    /// Forgets every sequence accepted for `product`; returns whether there was one.
    pub fn forget_product(&mut self, product: &str) -> bool {
        let before = self.accepted.len();
        self.accepted.retain(|(p, _), _| p != product);
        self.accepted.len() != before
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let inner = |e: deltaapply_apply::Error| match e {
            deltaapply_apply::Error::OutputIo { source, .. } => io(source),
            other => io(std::io::Error::other(other.to_string())),
        };
        let staged = Staged::beside(path, None).map_err(inner)?;
        staged
            .file()
            .write_all(self.render().as_bytes())
            .map_err(io)?;
        staged.commit().map_err(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raise() {
        let d = |b: u8| Sha256Digest([b; 32]);
        let mut s = State::default();
        assert!(s.accept("app", "stable", 5, d(1)));
        assert!(!s.accept("app", "stable", 3, d(2)));
        assert!(
            !s.accept("app", "stable", 5, d(3)),
            "the first digest stays"
        );
        assert!(s.accept("app", "beta", 9, d(4)));
        assert_eq!(s.accepted("app", "stable"), Some(5));
        assert_eq!(s.accepted_digest("app", "stable"), Some(d(1)));
        let text = s.render();
        assert_eq!(
            text,
            format!(
                "deltaapply-state v1\naccepted app beta 9 {}\naccepted app stable 5 {}\n",
                d(4),
                d(1)
            )
        );
        assert_eq!(State::parse(text.as_bytes()).unwrap(), s);
        // A file written before digests were recorded still reads, and takes one.
        let mut old = State::parse(b"deltaapply-state v1\naccepted app stable 5\n").unwrap();
        assert_eq!(old.accepted_digest("app", "stable"), None);
        assert!(old.accept("app", "stable", 5, d(7)));
        assert_eq!(old.accepted_digest("app", "stable"), Some(d(7)));
    }

    #[test]
    fn refuses_damage() {
        for bad in [
            &b""[..],
            b"deltaapply-state v2\n",
            b"deltaapply-state v1\naccepted app stable\n",
            b"deltaapply-state v1\naccepted app stable -1\n",
            b"deltaapply-state v1\naccepted app stable +1\n",
            b"deltaapply-state v1\naccepted app stable 99999999999999999999999\n",
            b"deltaapply-state v1\naccepted a\tb stable 1\n",
            b"deltaapply-state v1\naccepted app stable 1\naccepted app stable 2\n",
            b"deltaapply-state v1\n\xff\n",
            b"deltaapply-state v1\nrejected app stable 1\n",
            b"deltaapply-state v1\naccepted app stable 1 abc\n",
            b"deltaapply-state v1\naccepted app stable 1 00 extra\n",
        ] {
            assert!(
                State::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn load_missing_and_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert_eq!(State::load(&path).unwrap(), State::default());
        let mut s = State::default();
        s.accept("app", "stable", 7, Sha256Digest([9; 32]));
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), s);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            State::load(&path),
            Err(StateError::Invalid { .. })
        ));
    }
}
