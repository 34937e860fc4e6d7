//! The signing key's flags, shared by every command that signs: `--secret-key FILE`,
//! `--key-env VAR` (the PEM text in an environment variable, as CI secrets are handed
//! over) and `--key-fd N` (read from an inherited file descriptor, e.g. a pipe).

use std::path::PathBuf;

use anyhow::Context;
use deltapack::keys::{KeySource, SecretKey, readable_by_others};

/// One signing key, from exactly one place.
#[derive(clap::Args, Debug, Default)]
pub struct OneKey {
    /// The secret key file (PKCS#8 PEM, from `deltapack keygen`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_env", "key_fd"])]
    pub secret_key: Option<PathBuf>,
    /// Read the secret key's PEM text from this environment variable instead (never
    /// printed).
    #[arg(long, value_name = "VAR", conflicts_with = "key_fd")]
    pub key_env: Option<String>,
    /// Read the secret key's PEM text from this inherited file descriptor instead (to
    /// its end; Unix).
    #[arg(long, value_name = "N")]
    pub key_fd: Option<u32>,
}

impl OneKey {
    /// Where the key is, if a flag said.
    pub fn source(&self) -> Option<KeySource> {
        if let Some(p) = &self.secret_key {
            return Some(KeySource::File(p.clone()));
        }
        if let Some(v) = &self.key_env {
            return Some(KeySource::Env(v.clone()));
        }
        self.key_fd.map(KeySource::Fd)
    }
}

/// Signing keys, from any mix of the three places (each flag repeatable).
#[derive(clap::Args, Debug)]
pub struct ManyKeys {
    /// A secret key file to sign with (repeat).
    #[arg(long = "secret-key", value_name = "FILE")]
    pub secret_keys: Vec<PathBuf>,
    /// An environment variable holding a secret key's PEM text (repeat).
    #[arg(long = "key-env", value_name = "VAR")]
    pub key_envs: Vec<String>,
    /// An inherited file descriptor holding a secret key's PEM text (repeat; Unix).
    #[arg(long = "key-fd", value_name = "N")]
    pub key_fds: Vec<u32>,
}

impl ManyKeys {
    /// Every source given, files first.
    pub fn sources(&self) -> Vec<KeySource> {
        let files = self.secret_keys.iter().cloned().map(KeySource::File);
        let envs = self.key_envs.iter().cloned().map(KeySource::Env);
        let fds = self.key_fds.iter().copied().map(KeySource::Fd);
        files.chain(envs).chain(fds).collect()
    }

    /// Loads every key; at least one must be given.
    pub fn load(&self, quiet: bool) -> anyhow::Result<Vec<SecretKey>> {
        let sources = self.sources();
        if sources.is_empty() {
            return Err(deltapack::rotation::RotateError::Usage(
                "give a signing key: --secret-key FILE, --key-env VAR or --key-fd N".into(),
            )
            .into());
        }
        sources.iter().map(|s| load(s, quiet)).collect()
    }
}

/// Loads one key, warning (unless `quiet`) when others can read its file.
pub fn load(source: &KeySource, quiet: bool) -> anyhow::Result<SecretKey> {
    let key = SecretKey::load_from(source)
        .with_context(|| format!("cannot load the signing key from {source}"))?;
    if let KeySource::File(path) = source
        && readable_by_others(path)
        && !quiet
    {
        eprintln!(
            "warning: secret key {} can be read by other users; chmod 600 it",
            path.display()
        );
    }
    Ok(key)
}
