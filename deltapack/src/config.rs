//! `deltapack.toml`: the build settings a product keeps in its repository, so that
//! CI runs `deltapack build --version X` and nothing else. Command-line flags override
//! the file. Relative paths in the file are relative to the file's directory.
//!
//! ```toml
//! product = "example-app"
//! channel = "stable"
//! out = "publish"
//! secret_key = "/run/secrets/release.key"
//! keep = 5
//! max_patch_share = 0.75
//! valid_days = 90
//! level = 19
//! max_apply_memory = "32MiB"
//!
//! [artifacts]
//! "app.bin" = "target/release/app"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file `deltapack build` reads from the current directory when `--config` is
/// not given.
pub const CONFIG_FILE: &str = "deltapack.toml";

/// Largest config file read.
const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// Settings from `deltapack.toml`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Product name.
    pub product: Option<String>,
    /// Channel name.
    pub channel: Option<String>,
    /// Version of the release (usually given on the command line instead).
    pub version: Option<String>,
    /// The publish directory.
    pub out: Option<PathBuf>,
    /// The secret key file.
    pub secret_key: Option<PathBuf>,
    /// Older releases to patch from.
    pub keep: Option<usize>,
    /// Largest patch published, as a share of the full image.
    pub max_patch_share: Option<f64>,
    /// Days the manifest is valid.
    pub valid_days: Option<u64>,
    /// zstd level.
    pub level: Option<i32>,
    /// Apply-memory budget, e.g. "32MiB".
    pub max_apply_memory: Option<String>,
    /// Patches made at once.
    pub jobs: Option<usize>,
    /// Artifact name to file.
    #[serde(default)]
    pub artifacts: BTreeMap<String, PathBuf>,
}

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid.
    #[error("{} is not a valid deltapack.toml: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl BuildConfig {
    /// Reads `path`, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<BuildConfig, ConfigError> {
        let invalid = |problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        let bytes = crate::store::read_capped(path, MAX_CONFIG_SIZE)
            .map_err(|e| ConfigError::Io {
                path: path.to_path_buf(),
                source: e.source,
            })?
            .ok_or_else(|| ConfigError::Io {
                path: path.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
        let mut config: BuildConfig =
            toml::from_str(&text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        // `s3://bucket/prefix` is a bucket, not a path relative to the file.
        if let Some(p) = config.out.as_mut()
            && !p.to_str().is_some_and(|s| s.starts_with("s3://"))
        {
            resolve(p);
        }
        if let Some(p) = config.secret_key.as_mut() {
            resolve(p);
        }
        config.artifacts.values_mut().for_each(resolve);
        Ok(config)
    }
}
