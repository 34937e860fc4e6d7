//! The `.part` file of a download in progress: `<dir>/<sha256>.part`, locked while a
//! process writes it, hashed as it grows, with the server's validator (for `If-Range`)
//! in `<dir>/<sha256>.part.meta` so that a later run can resume it safely.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::FetchError;
use deltaapply_format::container::FileId;
use deltaapply_format::digest::{Hasher, IO_CHUNK, Sha256Digest};

/// First line of a `.part.meta` file.
const META_MAGIC: &str = "deltaapply-part v1";

/// Largest `.part.meta` file read, and longest validator kept.
const MAX_META: u64 = 1024;

/// A download in progress.
pub(super) struct Part {
    path: PathBuf,
    meta: PathBuf,
    file: File,
    hasher: Hasher,
    validator: Option<String>,
    /// The bytes came from more than one answer (or from an earlier run).
    pieced: bool,
}

impl Part {
    /// Opens (creating it if needed) the `.part` file for `expected` in `dir`, locks it
    /// and hashes what an earlier run left in it. A `.part` longer than the file can be
    /// is emptied.
    pub(super) fn open(dir: &Path, expected: FileId) -> Result<Part, FetchError> {
        fs::create_dir_all(dir).map_err(|source| FetchError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(format!("{}.part", expected.sha256));
        let meta = dir.join(format!("{}.part.meta", expected.sha256));
        let write_err = |source| FetchError::Write {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(FetchError::Busy { path }),
            // Some file systems (old NFS) cannot lock; downloading unlocked beats not
            // downloading, and the hash check still catches a mixed-up file.
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => return Err(write_err(e)),
        }
        let len = file.metadata().map_err(write_err)?.len();
        let mut part = Part {
            validator: read_meta(&meta),
            path,
            meta,
            file,
            hasher: Hasher::new(),
            pieced: false,
        };
        if len > expected.size {
            part.restart(None)?;
        } else if len > 0 {
            part.hash_existing(len)?;
            part.pieced = true;
        }
        Ok(part)
    }

    fn hash_existing(&mut self, len: u64) -> Result<(), FetchError> {
        let mut buf = vec![0u8; IO_CHUNK];
        let mut reader = (&self.file).take(len);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.write_err(e)),
            };
            self.hasher.update(&buf[..n]);
        }
        if self.hasher.len() != len {
            // It shrank under us: start over rather than guess.
            return self.restart(None);
        }
        Ok(())
    }

    /// Bytes in the file.
    pub(super) fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// The SHA-256 of the bytes in the file.
    pub(super) fn digest(&self) -> Sha256Digest {
        self.hasher.clone().finish()
    }

    /// The validator (`ETag` or `Last-Modified`) of the answer the bytes came from.
    pub(super) fn validator(&self) -> Option<&str> {
        self.validator.as_deref()
    }

    /// Whether the bytes were joined from more than one answer or an earlier run.
    pub(super) fn is_pieced(&self) -> bool {
        self.pieced
    }

    /// Notes that the bytes appended next continue an earlier answer's.
    pub(super) fn mark_resumed(&mut self) {
        if self.len() > 0 {
            self.pieced = true;
        }
    }

    /// Appends bytes.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        (&self.file)
            .write_all(bytes)
            .map_err(|e| self.write_err(e))?;
        self.hasher.update(bytes);
        Ok(())
    }

    /// Empties the file to start again, recording the new answer's validator.
    pub(super) fn restart(&mut self, validator: Option<String>) -> Result<(), FetchError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| self.write_err(e))?;
        self.hasher = Hasher::new();
        self.pieced = false;
        self.set_validator(validator)
    }

    /// Records the validator of the answer the bytes come from (written before any
    /// of its bytes, so that file and validator always belong together).
    pub(super) fn set_validator(&mut self, validator: Option<String>) -> Result<(), FetchError> {
        let written = match &validator {
            Some(v) => fs::write(&self.meta, format!("{META_MAGIC}\n{v}\n")),
            None => match fs::remove_file(&self.meta) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        written.map_err(|source| FetchError::Write {
            path: self.meta.clone(),
            source,
        })?;
        self.validator = validator;
        Ok(())
    }

    /// Makes the complete, verified file durable as `done`.
    pub(super) fn finish(self, done: &Path) -> Result<(), FetchError> {
        let Part {
            path, meta, file, ..
        } = self;
        let write_err = |source| FetchError::Write {
            path: path.clone(),
            source,
        };
        file.sync_all().map_err(write_err)?;
        // Closing releases the lock; on Windows an open file cannot be renamed.
        drop(file);
        fs::rename(&path, done).map_err(write_err)?;
        remove_if_present(&meta)?;
        deltaapply_apply::stage::sync_parent(done).map_err(|source| FetchError::Write {
            path: done.to_path_buf(),
            source,
        })
    }

    /// Leaves a non-empty `.part` (and its validator) for a later run to resume, and
    /// removes an empty one.
    pub(super) fn close(self) -> Result<(), FetchError> {
        if self.len() == 0 {
            return self.discard();
        }
        Ok(())
    }

    /// Removes the `.part` file and its validator.
    pub(super) fn discard(self) -> Result<(), FetchError> {
        let Part {
            path, meta, file, ..
        } = self;
        drop(file);
        remove_if_present(&path)?;
        remove_if_present(&meta)
    }

    fn write_err(&self, source: io::Error) -> FetchError {
        FetchError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

fn remove_if_present(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FetchError::Write {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The validator an earlier run recorded, if the file is there and well formed.
fn read_meta(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(MAX_META)
        .read_to_string(&mut text)
        .ok()?;
    let mut lines = text.lines();
    if lines.next()? != META_MAGIC {
        return None;
    }
    let validator = lines.next()?;
    (lines.next().is_none() && is_header_value(validator)).then(|| validator.to_string())
}

/// Whether `v` can be sent back as an `If-Range` value: 1 to [`MAX_META`] / 2 visible
/// ASCII characters or spaces.
pub(super) fn is_header_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() as u64 <= MAX_META / 2
        && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(bytes: &[u8]) -> FileId {
        FileId {
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes),
        }
    }

    #[test]
    fn resumes_what_an_earlier_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let expected = id(b"0123456789");
        let mut part = Part::open(dir.path(), expected).unwrap();
        part.set_validator(Some("\"v1\"".into())).unwrap();
        part.append(b"01234").unwrap();
        part.close().unwrap();

        let mut part = Part::open(dir.path(), expected).unwrap();
        assert_eq!(part.len(), 5);
        assert_eq!(part.validator(), Some("\"v1\""));
        assert!(part.is_pieced());
        part.append(b"56789").unwrap();
        assert_eq!(part.digest(), expected.sha256);
        let done = dir.path().join("done");
        part.finish(&done).unwrap();
        assert_eq!(fs::read(&done).unwrap(), b"0123456789");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let expected = id(b"abc");
        let _first = Part::open(dir.path(), expected).unwrap();
        assert!(matches!(
            Part::open(dir.path(), expected),
            Err(FetchError::Busy { .. })
        ));
    }

    #[test]
    fn restart_and_oversized_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let expected = id(b"abc");
        fs::write(
            dir.path().join(format!("{}.part", expected.sha256)),
            b"abcdef",
        )
        .unwrap();
        let mut part = Part::open(dir.path(), expected).unwrap();
        assert_eq!(part.len(), 0);
        part.append(b"xy").unwrap();
        part.restart(Some("Tue, 01 Dec 2026 10:00:00 GMT".into()))
            .unwrap();
        part.append(b"abc").unwrap();
        assert_eq!(part.digest(), expected.sha256);
        assert!(!part.is_pieced());
        part.discard().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn meta_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join("m");
        for (text, want) in [
            ("deltaapply-part v1\n\"abc\"\n", Some("\"abc\"")),
            ("deltaapply-part v1\n\"abc\"\nmore\n", None),
            ("deltaapply-part v2\n\"abc\"\n", None),
            ("deltaapply-part v1\n\"a\u{7f}c\"\n", None),
            ("deltaapply-part v1\n", None),
        ] {
            fs::write(&meta, text).unwrap();
            assert_eq!(read_meta(&meta).as_deref(), want, "{text:?}");
        }
        fs::write(&meta, format!("{META_MAGIC}\n{}\n", "x".repeat(2000))).unwrap();
        assert_eq!(read_meta(&meta), None);
    }
}
