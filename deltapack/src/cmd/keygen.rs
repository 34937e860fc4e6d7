//! `deltapack keygen --secret-key FILE --public-key FILE`: make a signing key pair.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use deltaapply_cli as cli;
use deltapack::keys::{self, SecretKey};

/// Make an ed25519 key pair for signing patches: the secret key as PKCS#8 PEM (mode
/// 0600; keep it off the machines that apply patches), the public key as a one-line
/// file to give to `deltaapply --key` or to build into installers.
#[derive(clap::Args)]
pub struct Args {
    /// Where to write the secret key (PKCS#8 PEM, readable only by you).
    #[arg(long, value_name = "FILE")]
    secret_key: PathBuf,
    /// Where to write the public key (one `ed25519:...` line after a comment).
    #[arg(long, value_name = "FILE")]
    public_key: PathBuf,
    /// Replace existing key files (the old secret key is lost).
    #[arg(long)]
    force: bool,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    match keygen(&args) {
        Ok(()) => deltaapply_cli::exit::OK,
        Err(e) => cli::report_error(&e, deltaapply_cli::exit::FAILURE, json),
    }
}

fn keygen(args: &Args) -> anyhow::Result<()> {
    if same_file(&args.secret_key, &args.public_key) {
        bail!(
            "--secret-key and --public-key are the same file ({}): give two paths",
            args.secret_key.display()
        );
    }
    // Both checked first, so that a refusal leaves no half-made pair behind.
    if !args.force {
        for path in [&args.secret_key, &args.public_key] {
            if path.symlink_metadata().is_ok() {
                return Err(keys::KeyError::Exists { path: path.clone() }.into());
            }
        }
    }
    let key = SecretKey::generate()?;
    key.save(&args.secret_key, args.force)?;
    let public = key.public_key();
    if let Err(e) = keys::write_public_key_file(&args.public_key, &public, args.force) {
        // Without its public half the new secret key is of no use: do not leave it.
        let _ = std::fs::remove_file(&args.secret_key);
        return Err(anyhow::Error::new(e).context(format!(
            "removed the new secret key {} again",
            args.secret_key.display()
        )));
    }
    print_key(
        &public,
        Some(&args.secret_key),
        Some(&args.public_key),
        args.json,
    )
    .context("the key files were written")
}

/// Prints a public key (never anything secret) and the files involved.
pub fn print_key(
    public: &deltaapply::PublicKey,
    secret_path: Option<&Path>,
    public_path: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return cli::print_json(&serde_json::json!({
            "ok": true,
            "public_key": public,
            "key_id": public.id(),
            "secret_key_file": secret_path,
            "public_key_file": public_path,
        }));
    }
    let mut out = format!("{public}\nkey id {}\n", public.id());
    if let Some(path) = secret_path {
        out.push_str(&format!("secret key: {}\n", path.display()));
    }
    if let Some(path) = public_path {
        out.push_str(&format!("public key: {}\n", path.display()));
    }
    cli::write_stdout(&out)
}

/// Whether two paths name the same file (or the same not-yet-existing path).
fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
