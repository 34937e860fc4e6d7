//! `deltapack keys rotate` and `deltapack keys sign`: the publish directory's signed key
//! chain (`format-spec/rotation.md`).

use std::path::PathBuf;

use anyhow::Context;
use deltaapply::KeyFile;
use deltaapply::manifest::Timestamp;
use deltaapply::{KeyId, PublicKey};
use deltaapply_cli as cli;
use deltapack::rotation::{self, RotateError, Rotation};
use serde_json::json;

/// Rotate the release keys appliers trust, with a signed chain of keys documents.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand)]
enum KeysCommand {
    /// Write the next version of DIR's key chain (`keys/N.toml` and its signatures):
    /// the keys that sign manifests from now on and how many must sign. It must be
    /// signed by enough keys of the current version and of the new one (give every
    /// --secret-key needed); it is checked as appliers check it before anything is
    /// written. The first version (in a directory without `keys/`) needs --product and
    /// is signed by its own keys: ship it with the applier (`deltaapply update
    /// --keys-root`). A key the new version leaves out is revoked.
    Rotate(RotateArgs),
    /// Add signatures to a keys document (`DIR/keys/N.toml`) or a manifest
    /// (`DIR/manifest.toml`), in `FILE.sig`: for keys held by different people, or
    /// thresholds above one.
    Sign(SignArgs),
}

#[derive(clap::Args)]
struct RotateArgs {
    /// The publish directory.
    dir: PathBuf,
    /// A key of the new version: an `ed25519:...` line or a public key file (repeat).
    #[arg(long = "key", value_name = "KEY", required = true)]
    keys: Vec<String>,
    /// How many distinct keys of the new version must sign a manifest and the next
    /// version.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threshold: usize,
    /// The product (the first version only; later ones keep the chain's).
    #[arg(long, value_name = "NAME")]
    product: Option<String>,
    /// When the new version stops being trusted, e.g. 2028-01-01T00:00:00Z [default: never].
    #[arg(long, value_name = "TIME", value_parser = super::build::parse_time)]
    expires: Option<Timestamp>,
    /// The keys to sign with (repeat): keys of the current version and of the new.
    #[command(flatten)]
    signers: super::keysrc::ManyKeys,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SignArgs {
    /// The document: `DIR/keys/N.toml` or `DIR/manifest.toml`.
    file: PathBuf,
    /// The keys to sign with (repeat).
    #[command(flatten)]
    signers: super::keysrc::ManyKeys,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let (result, json) = match args.command {
        KeysCommand::Rotate(a) => (rotate(&a), a.json),
        KeysCommand::Sign(a) => (sign(&a), a.json),
    };
    match result {
        Ok(()) => deltaapply_cli::exit::OK,
        Err(e) => {
            let code = match e.downcast_ref::<RotateError>() {
                Some(RotateError::Usage(_) | RotateError::NotAccepted { .. }) => {
                    deltaapply_cli::exit::USAGE
                }
                Some(RotateError::Chain { .. } | RotateError::Gap { .. }) => {
                    deltaapply_cli::exit::UNTRUSTED
                }
                _ => deltaapply_cli::exit::FAILURE,
            };
            cli::report_error(&e, code, json)
        }
    }
}

fn ids(keys: &[KeyId]) -> Vec<String> {
    keys.iter().map(ToString::to_string).collect()
}

fn rotate(args: &RotateArgs) -> anyhow::Result<()> {
    let keys = args
        .keys
        .iter()
        .map(|k| PublicKey::from_arg(k).with_context(|| format!("--key {k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let next = Rotation {
        product: args.product.clone(),
        keys,
        threshold: args.threshold,
        expires: args.expires,
    };
    let rotated = rotation::rotate(&args.dir, &next, &args.signers.load(args.json)?)?;
    let doc = &rotated.document;
    let key_ids: Vec<KeyId> = doc.keys.iter().map(PublicKey::id).collect();
    if args.json {
        return cli::print_json(&json!({
            "ok": true,
            "command": "keys rotate",
            "product": doc.product,
            "version": doc.version,
            "threshold": doc.threshold,
            "keys": ids(&key_ids),
            "revoked": ids(&rotated.revoked),
            "document": rotated.path,
            "signatures": rotated.signature_path,
        }));
    }
    let revoked = if rotated.revoked.is_empty() {
        String::new()
    } else {
        format!("; revoked {}", ids(&rotated.revoked).join(", "))
    };
    cli::write_stdout(&format!(
        "wrote {} (keys version {} of {}: {} of {} must sign{revoked})\n",
        rotated.path.display(),
        doc.version,
        doc.product,
        doc.threshold,
        ids(&key_ids).join(", "),
    ))
}

fn sign(args: &SignArgs) -> anyhow::Result<()> {
    let (sig_path, count) = rotation::sign(&args.file, &args.signers.load(args.json)?)?;
    if args.json {
        return cli::print_json(&json!({
            "ok": true,
            "command": "keys sign",
            "signatures": sig_path,
            "count": count,
        }));
    }
    cli::write_stdout(&format!(
        "{} now holds {count} signature(s)\n",
        sig_path.display()
    ))
}
