//! Where an S3 bucket is and who we are there, resolved the way the AWS CLI resolves
//! them: environment variables first, then the profile (`AWS_PROFILE`, else
//! `default`) of the shared credentials file (`~/.aws/credentials`, or
//! `AWS_SHARED_CREDENTIALS_FILE`) and the config file (`~/.aws/config`, or
//! `AWS_CONFIG_FILE`).
//!
//! - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`
//!   (none of them when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), else AWS's own
//!   `https://s3.<region>.amazonaws.com`;
//! - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`;
//! - credentials: `AWS_ACCESS_KEY_ID` with `AWS_SECRET_ACCESS_KEY` (and
//!   `AWS_SESSION_TOKEN`), else the profile's `aws_access_key_id`,
//!   `aws_secret_access_key` and `aws_session_token` (credentials file first, then
//!   config file), else none (anonymous requests).
//!
//! Profiles that get their credentials from elsewhere (`role_arn`, `sso_*`,
//! `credential_process`, `web_identity_token_file`) are refused with a message saying
//! how to export plain credentials instead. Secrets never reach an error message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Resolved settings for one bucket's client.
#[derive(Clone)]
pub struct AwsConfig {
    /// The endpoint URL; `None` means AWS's own for the region.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// The credentials, if any.
    pub credentials: Option<Credentials>,
    /// Where the credentials came from, for messages ("the environment",
    /// "profile ci of /home/u/.aws/credentials").
    pub credentials_from: String,
}

impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials_from", &self.credentials_from)
            .finish_non_exhaustive()
    }
}

/// An access key, its secret and an optional session token.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (not secret: it is shown in messages).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: zeroize::Zeroizing<String>,
    /// The session token of temporary credentials.
    pub session_token: Option<zeroize::Zeroizing<String>>,
}

/// Why the configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    /// A file that was named or exists cannot be read.
    #[error("cannot read AWS {what} file {}", path.display())]
    Io {
        /// "credentials" or "config".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The settings are incomplete or unsupported.
    #[error("{0}")]
    Unsupported(String),
}

/// Sections of an INI-style AWS file: section name, then key → value (nested keys of a
/// section as `parent.key`).
type Ini = BTreeMap<String, BTreeMap<String, String>>;

/// Parses the AWS CLI's INI dialect: `[section]`, `key = value`, `#` and `;` comments,
/// indented `key = value` lines under a key with no value (nested settings).
fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    let mut parent: Option<String> = None;
    for line in text.lines() {
        let indented = line.starts_with([' ', '\t']);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            ini.entry(name.clone()).or_default();
            section = Some(name);
            parent = None;
            continue;
        }
        let (Some(section), Some((key, value))) = (&section, trimmed.split_once('=')) else {
            continue;
        };
        let (key, value) = (key.trim().to_string(), value.trim().to_string());
        let entries = ini.entry(section.clone()).or_default();
        match (&parent, indented) {
            (Some(p), true) => {
                entries.insert(format!("{p}.{key}"), value);
            }
            _ => {
                parent = value.is_empty().then(|| key.clone());
                entries.insert(key, value);
            }
        }
    }
    ini
}

/// Reads an AWS file: `Ok(None)` if it does not exist and was not named explicitly.
fn read_ini(what: &'static str, path: &Path, named: bool) -> Result<Option<Ini>, AwsConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(parse_ini(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(None),
        Err(source) => Err(AwsConfigError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The value of `VAR` if it is set and not empty.
fn env_var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

impl AwsConfig {
    /// Resolves the settings from the process environment and the user's AWS files.
    pub fn from_env() -> Result<AwsConfig, AwsConfigError> {
        Self::resolve(&|name| std::env::var(name).ok())
    }

    /// Resolves the settings from the variables `env` gives (and the files they and
    /// `HOME` name).
    pub fn resolve(env: &dyn Fn(&str) -> Option<String>) -> Result<AwsConfig, AwsConfigError> {
        let home = env_var(env, "HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| -> Option<(PathBuf, bool)> {
            match env_var(env, var) {
                Some(p) => Some((PathBuf::from(p), true)),
                None => home.as_ref().map(|h| (h.join(".aws").join(default), false)),
            }
        };
        let profile_name = env_var(env, "AWS_PROFILE")
            .or_else(|| env_var(env, "AWS_DEFAULT_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let profile_named =
            env_var(env, "AWS_PROFILE").is_some() || env_var(env, "AWS_DEFAULT_PROFILE").is_some();
        let credentials_file = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let config_file = file("AWS_CONFIG_FILE", "config");
        let mut credentials_ini = None;
        if let Some((path, named)) = &credentials_file {
            credentials_ini = read_ini("credentials", path, *named)?;
        }
        let mut config_ini = None;
        if let Some((path, named)) = &config_file {
            config_ini = read_ini("config", path, *named)?;
        }
        let in_credentials = credentials_ini
            .as_ref()
            .and_then(|ini| ini.get(&profile_name))
            .cloned()
            .unwrap_or_default();
        // The config file names profiles `[profile NAME]`, except `[default]`.
        let config_section = if profile_name == "default" {
            "default".to_string()
        } else {
            format!("profile {profile_name}")
        };
        let in_config = config_ini
            .as_ref()
            .and_then(|ini| ini.get(&config_section).or_else(|| ini.get(&profile_name)))
            .cloned()
            .unwrap_or_default();
        let profile_found = credentials_ini
            .as_ref()
            .is_some_and(|i| i.contains_key(&profile_name))
            || config_ini
                .as_ref()
                .is_some_and(|i| i.contains_key(&config_section) || i.contains_key(&profile_name));
        let setting = |key: &str| {
            in_credentials
                .get(key)
                .or_else(|| in_config.get(key))
                .filter(|v| !v.is_empty())
                .cloned()
        };

        let ignore_endpoints = env_var(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = if ignore_endpoints {
            None
        } else {
            env_var(env, "AWS_ENDPOINT_URL_S3")
                .or_else(|| env_var(env, "AWS_ENDPOINT_URL"))
                .or_else(|| in_config.get("s3.endpoint_url").cloned())
                .or_else(|| setting("endpoint_url"))
        };
        let region = env_var(env, "AWS_REGION")
            .or_else(|| env_var(env, "AWS_DEFAULT_REGION"))
            .or_else(|| setting("region"))
            .unwrap_or_else(|| "us-east-1".into());

        let from_env = (
            env_var(env, "AWS_ACCESS_KEY_ID"),
            env_var(env, "AWS_SECRET_ACCESS_KEY"),
        );
        let (credentials, credentials_from) = match from_env {
            (Some(id), Some(secret)) => (
                Some(Credentials {
                    access_key_id: id,
                    secret_access_key: zeroize::Zeroizing::new(secret),
                    session_token: env_var(env, "AWS_SESSION_TOKEN").map(zeroize::Zeroizing::new),
                }),
                "the environment (AWS_ACCESS_KEY_ID)".to_string(),
            ),
            (Some(_), None) | (None, Some(_)) => {
                return Err(AwsConfigError::Unsupported(
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into(),
                ));
            }
            (None, None) => {
                let from = |what: &str| {
                    let file = if in_credentials.contains_key("aws_access_key_id") {
                        credentials_file.as_ref()
                    } else {
                        config_file.as_ref()
                    };
                    format!(
                        "{what} {profile_name} of {}",
                        file.map_or("(no file)".into(), |(p, _)| p.display().to_string())
                    )
                };
                for unsupported in [
                    "role_arn",
                    "credential_process",
                    "sso_session",
                    "sso_start_url",
                    "web_identity_token_file",
                ] {
                    if setting(unsupported).is_some() && setting("aws_access_key_id").is_none() {
                        return Err(AwsConfigError::Unsupported(format!(
                            "{} gets its credentials through {unsupported}, which deltapack \
                             does not support: export plain credentials first (for example \
                             `eval \"$(aws configure export-credentials --format env)\"`)",
                            from("profile")
                        )));
                    }
                }
                match (
                    setting("aws_access_key_id"),
                    setting("aws_secret_access_key"),
                ) {
                    (Some(id), Some(secret)) => (
                        Some(Credentials {
                            access_key_id: id,
                            secret_access_key: zeroize::Zeroizing::new(secret),
                            session_token: setting("aws_session_token")
                                .map(zeroize::Zeroizing::new),
                        }),
                        from("profile"),
                    ),
                    (None, None) if profile_named && !profile_found => {
                        return Err(AwsConfigError::Unsupported(format!(
                            "AWS profile {profile_name:?} is in neither {} nor {}",
                            credentials_file
                                .as_ref()
                                .map_or("(no credentials file)".into(), |(p, _)| p
                                    .display()
                                    .to_string()),
                            config_file
                                .as_ref()
                                .map_or("(no config file)".into(), |(p, _)| p
                                    .display()
                                    .to_string()),
                        )));
                    }
                    (None, None) => (None, "nowhere (anonymous requests)".to_string()),
                    _ => {
                        return Err(AwsConfigError::Unsupported(format!(
                            "{} has only one of aws_access_key_id and aws_secret_access_key",
                            from("profile")
                        )));
                    }
                }
            }
        };
        Ok(AwsConfig {
            endpoint,
            region,
            credentials,
            credentials_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<AwsConfig, AwsConfigError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AwsConfig::resolve(&|name| vars.get(name).cloned())
    }

    #[test]
    fn the_environment_wins_over_the_profile() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = s\n",
        )
        .unwrap();
        let h = home.path().to_str().unwrap();
        let c = resolve(&[
            ("HOME", h),
            ("AWS_ACCESS_KEY_ID", "FROMENV"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_SESSION_TOKEN", "tok"),
        ])
        .unwrap();
        let creds = c.credentials.unwrap();
        assert_eq!(creds.access_key_id, "FROMENV");
        assert_eq!(
            creds.session_token.as_deref().map(String::as_str),
            Some("tok")
        );
        let c = resolve(&[("HOME", h)]).unwrap();
        assert_eq!(c.credentials.unwrap().access_key_id, "FROMFILE");
        assert!(c.credentials_from.contains("profile default"));
    }

    #[test]
    fn a_named_profile_reads_both_files_as_the_cli_does() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "# comment\n[ci]\naws_access_key_id = AKCI\naws_secret_access_key = sec\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n\n[profile ci]\nregion = eu-central-1\n\
             s3 =\n  endpoint_url = http://127.0.0.1:9\n",
        )
        .unwrap();
        let h = home.path().to_str().unwrap();
        let c = resolve(&[("HOME", h), ("AWS_PROFILE", "ci")]).unwrap();
        assert_eq!(c.region, "eu-central-1");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.credentials.unwrap().access_key_id, "AKCI");
        let c = resolve(&[
            ("HOME", h),
            ("AWS_PROFILE", "ci"),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:10"),
        ])
        .unwrap();
        assert_eq!(c.region, "ap-south-1");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:10"));
        let c = resolve(&[("HOME", h)]).unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert!(c.credentials.is_none());
        let e = resolve(&[("HOME", h), ("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
    }

    #[test]
    fn profiles_that_assume_roles_are_refused_without_secrets_in_the_message() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[profile r]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n",
        )
        .unwrap();
        let h = home.path().to_str().unwrap();
        let e = resolve(&[("HOME", h), ("AWS_PROFILE", "r")]).unwrap_err();
        assert!(e.to_string().contains("role_arn"), "{e}");
        let e = resolve(&[("HOME", h), ("AWS_ACCESS_KEY_ID", "only")]).unwrap_err();
        assert!(e.to_string().contains("together"), "{e}");
    }

    #[test]
    fn an_explicitly_named_file_must_exist() {
        let e = resolve(&[("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/creds")]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/creds"), "{e}");
    }
}
