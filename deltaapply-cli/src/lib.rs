//! The command-line edge of both tools: exit codes, the flags named in error hints, byte
//! sizes, progress bars, JSON and error printing, trusted keys from flags, `inspect`.
//! The library installers embed (`deltaapply`) has none of this. The `deltaapply`
//! binary's own command line is [`app`].

pub mod app;
mod bar;
mod cmd;
pub mod output;

pub use bar::Bar;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use deltaapply::key::KeyFile as _;

use deltaapply::container::{HeaderBody, SignatureSlot};
use deltaapply::foreign::ForeignError;
use deltaapply::key::{BUILTIN_KEYS, KEY_ENV, KeyId, PublicKey, TrustedKeys};
use deltaapply::signature::{Origin, SignatureError, check_patch_origin};
use deltaapply::tree::TreeApplyError;
use deltaapply::update::{PlanError, UpdateError};
use deltaapply::{Error, ErrorKind};

/// `--version` in full (`deltaapply -V` and `deltapack -V` print only the version): the
/// formats both tools read and write, by their `format-spec/` documents.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\npatches: patch-v1 (container version 1: methods bsdiff, zstd, full; tree-v1 tree patches)",
    "\nreleases: manifest-v1, ed25519 signatures (signatures.md), keys (keys.md), update-v1 state",
    "\nforeign patches (apply, inspect): BSDIFF40, zstd --patch-from frames (foreign.md)",
);

/// Runs `job` again while it fails only because another `deltaapply` holds the same
/// target (`is_busy`), for up to `wait_seconds` (`--wait`), polling four times a second.
/// Without `--wait` the first answer is final. Safe to repeat: a job refused at the
/// lock has touched nothing.
pub fn until_not_busy<T, E>(
    wait_seconds: Option<u64>,
    is_busy: impl Fn(&E) -> bool,
    mut job: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = wait_seconds.map(|s| std::time::Instant::now() + Duration::from_secs(s));
    loop {
        match job() {
            Err(e) if is_busy(&e) && deadline.is_some_and(|d| std::time::Instant::now() < d) => {
                output::step("another deltaapply holds the target; waiting");
                std::thread::sleep(Duration::from_millis(250));
            }
            result => return result,
        }
    }
}

/// Parses a byte size: a whole number with an optional unit `K`, `M`, `G`, `T`
/// (powers of 1024, with or without `iB`/`B`), e.g. `32MiB`, `512k`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 32MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Formats a byte count for people: `18.0 MiB`, `950 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Writes `text` to stdout. A closed pipe (the reader went away, as with `| head`) is
/// not an error; any other failure, such as a full disk, is.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to standard output"))
        }
        _ => Ok(()),
    }
}

/// Prints `value` as one line of JSON on stdout (see [`write_stdout`]).
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    write_stdout(&format!("{value}\n"))
}

/// Prints an error chain to stderr (`error: outer: inner: ...`, then the command-line
/// [`hint`] if there is one), or as JSON on stdout when `json` is set, and returns the
/// exit code.
pub fn report_error(err: &anyhow::Error, code: i32, json: bool) -> i32 {
    let text = match hint(err) {
        Some(hint) => format!("{err:#}; {hint}"),
        None => format!("{err:#}"),
    };
    if json {
        // Nothing more can be said if stdout itself fails; the exit code still tells.
        let _ = print_json(&serde_json::json!({ "ok": false, "error": text, "exit_code": code }));
    } else {
        eprintln!("error: {text}");
    }
    code
}

/// What to do about an error at the command line: the library's errors speak of its
/// limits, keys and policy; this names the flags that set them.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    hint_of(err.as_ref())
}

/// [`hint`] for an error that is not (yet) an `anyhow::Error`.
pub fn hint_of(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    std::iter::successors(Some(err), |e| e.source())
        .find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<Error>() {
                Some(apply_hint(e))
            } else if let Some(e) = cause.downcast_ref::<TreeApplyError>() {
                Some(match e {
                    TreeApplyError::DestExists { .. } => {
                        Some("--in-place updates the old tree itself".to_string())
                    }
                    TreeApplyError::Entry { source, .. } => apply_hint(source),
                    _ => None,
                })
            } else if let Some(e) = cause.downcast_ref::<ForeignError>() {
                Some(foreign_hint(e))
            } else if let Some(e) = cause.downcast_ref::<PlanError>() {
                Some(Some(plan_hint(e)))
            } else {
                cause.downcast_ref::<UpdateError>().map(update_hint)
            }
        })
        .flatten()
}

fn apply_hint(e: &Error) -> Option<String> {
    match e {
        Error::MemoryLimit { .. } => Some(
            "--max-memory raises the limit; deltapack's --max-apply-memory makes patches for \
             a smaller one"
                .to_string(),
        ),
        Error::Untrusted {
            source: SignatureError::UntrustedPatchKey { .. },
            ..
        } => Some(format!("trusted keys are given with --key or {KEY_ENV}")),
        _ => None,
    }
}

fn foreign_hint(e: &ForeignError) -> Option<String> {
    Some(
        match e {
            ForeignError::MemoryLimit { .. } => "--max-memory raises the limit",
            ForeignError::UnknownSize { .. } => "--expect-size gives the size",
            ForeignError::SizeMismatch { .. } => "--expect-size is the size expected",
            ForeignError::Output(e) => return apply_hint(e),
            _ => return None,
        }
        .to_string(),
    )
}

fn plan_hint(e: &PlanError) -> String {
    match e {
        PlanError::FullForbidden { .. } => "--no-full forbids the full image",
        PlanError::TooLarge { .. } => "--max-download sets the download limit",
        PlanError::Memory { .. } => "--max-memory sets the memory limit",
    }
    .to_string()
}

fn update_hint(e: &UpdateError) -> Option<String> {
    let text = match e {
        UpdateError::Expired { .. } | UpdateError::ClockBehind { .. } => {
            "--allow-expired accepts an expired manifest on a device without a trustworthy clock"
        }
        UpdateError::FallbackTooLarge { .. } => "--max-download sets the download limit",
        UpdateError::Plan(e) => return Some(plan_hint(e)),
        UpdateError::WrongProduct { .. } => "--product names the product to switch to",
        UpdateError::WrongChannel { .. } => "--channel names the channel to switch to",
        UpdateError::Artifact(_) => "--artifact names the artifact the target is",
        UpdateError::Apply(e) => return apply_hint(e),
        UpdateError::TreeApply(TreeApplyError::Entry { source, .. }) => return apply_hint(source),
        UpdateError::NoManifest(problems) => {
            return problems.iter().find_map(|p| update_hint(&p.error));
        }
        UpdateError::FallbackFailed { full, .. } => return update_hint(full),
        _ => return None,
    };
    Some(text.to_string())
}

/// Ratio `a / b` as a percentage with two decimals, or `-` when `b` is 0.
pub fn percent(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2}%", a as f64 * 100.0 / b as f64)
    }
}

/// Where a command's trusted keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `--key` on the command line.
    Flag,
    /// The [`KEY_ENV`] environment variable.
    Env,
    /// Keys built into the binary ([`BUILTIN_KEYS`]).
    BuiltIn,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeySource::Flag => "--key",
            KeySource::Env => KEY_ENV,
            KeySource::BuiltIn => "the keys built into this binary",
        })
    }
}

/// The keys `deltaapply` trusts: the `--key` values if any were given (each a one-line
/// public key or a public key file), else the keys in [`KEY_ENV`] (unset or blank
/// counts as absent), else the keys built in at compile time ([`BUILTIN_KEYS`]), else
/// none. An invalid key is an error, never a reason to fall back to fewer keys.
pub fn trusted_keys(flags: &[String]) -> anyhow::Result<Option<(TrustedKeys, KeySource)>> {
    let env = match std::env::var(KEY_ENV) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{KEY_ENV} is not valid UTF-8: set it to one or more ed25519:... keys")
        }
    };
    resolve_keys(flags, env.as_deref(), BUILTIN_KEYS)
}

/// The keys given with `--key` alone, for tools that are not appliers (`deltapack
/// inspect`): the environment and built-in keys are not consulted.
pub fn flag_keys(flags: &[String]) -> anyhow::Result<Option<TrustedKeys>> {
    Ok(resolve_keys(flags, None, None)?.map(|(keys, _)| keys))
}

/// [`trusted_keys`] with the environment and the built-in keys passed in.
fn resolve_keys(
    flags: &[String],
    env: Option<&str>,
    builtin: Option<&str>,
) -> anyhow::Result<Option<(TrustedKeys, KeySource)>> {
    if !flags.is_empty() {
        let keys = flags
            .iter()
            .map(|arg| PublicKey::from_arg(arg).with_context(|| format!("--key {arg}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let trusted = TrustedKeys::new(keys, 1).context("--key")?;
        return Ok(Some((trusted, KeySource::Flag)));
    }
    let list = |text: &str, source: KeySource| {
        TrustedKeys::parse_list(text)
            .map(|keys| Some((keys, source)))
            .with_context(|| {
                format!(
                    "{source}: expected one or more ed25519:... keys separated by commas or spaces"
                )
            })
    };
    match (env, builtin) {
        (Some(env), _) if !env.trim().is_empty() => list(env, KeySource::Env),
        (_, Some(builtin)) if !builtin.trim().is_empty() => list(builtin, KeySource::BuiltIn),
        _ => Ok(None),
    }
}

/// The warning `deltaapply` prints when it applied a patch whose origin no trusted key
/// vouched for.
pub fn unverified_warning(patch: &Path, signed_by: Option<KeyId>) -> String {
    let what = match signed_by {
        None => "it is unsigned".to_string(),
        Some(id) => format!(
            "it is signed by key {id}, which was checked only against the key the patch \
             itself carries (this detects corruption, not forgery)"
        ),
    };
    format!(
        "warning: the origin of {} was not verified: {what}. No trusted key is configured: \
         pass the publisher's public key with --key KEY (the ed25519:... line or its file) \
         or set {KEY_ENV}",
        patch.display()
    )
}

/// The `inspect` subcommand both tools share: validates the header (not the payload),
/// checks its signature (against `trusted` if given, else against the key the patch
/// carries) and prints both; returns the exit code. A signature that fails the check
/// is shown and then reported as an error ([`exit::UNTRUSTED`]), as `apply`
/// would refuse the patch.
pub fn inspect(patch: &Path, trusted: Option<&TrustedKeys>, json: bool) -> i32 {
    match deltaapply::AnyPatch::open(patch) {
        Ok(deltaapply::AnyPatch::File(p)) => inspect_opened(&p, trusted, json),
        Ok(deltaapply::AnyPatch::Tree(p)) => inspect_opened(&p, trusted, json),
        Err(e) => {
            let code = exit_code(e.kind());
            report_error(&e.into(), code, json)
        }
    }
}

fn inspect_opened<B: HeaderBody>(
    p: &deltaapply::Patch<B>,
    trusted: Option<&TrustedKeys>,
    json: bool,
) -> i32 {
    inspect_header(
        &HeaderView::of(p.header()),
        p.check_origin(trusted),
        trusted,
        json,
    )
}

/// [`inspect_opened`] once the kind no longer matters (one copy of the printing code).
fn inspect_header(
    view: &HeaderView,
    origin: Result<Origin, Error>,
    trusted: Option<&TrustedKeys>,
    json: bool,
) -> i32 {
    let printed = if json {
        let mut value = header_json(view);
        match &origin {
            Ok(o) => value["origin"] = serde_json::json!(o),
            Err(e) => {
                value = serde_json::json!({
                    "ok": false,
                    "error": deltaapply::update::error_chain(e),
                    "exit_code": exit_code(e.kind()),
                    "header": value,
                });
            }
        }
        print_json(&value)
    } else {
        let mut text = header_text(view);
        let line = match (&origin, trusted) {
            (Ok(Origin::Trusted { key_id }), _) => format!("trusted: signed by key {key_id}"),
            (Ok(Origin::Unverified { .. }), _) => {
                "not verified (no trusted key configured)".to_string()
            }
            (Err(_), Some(_)) => "REFUSED by the trusted keys (see the error)".to_string(),
            (Err(_), None) => "REFUSED: the signature does not verify".to_string(),
        };
        text.push_str(&format!("{:<14} {line}\n", "origin"));
        write_stdout(&text)
    };
    if let Err(e) = printed {
        return report_error(&e, exit::FAILURE, false);
    }
    match origin {
        Ok(_) => exit::OK,
        Err(e) if json => exit_code(e.kind()),
        Err(e) => {
            let code = exit_code(e.kind());
            report_error(&e.into(), code, false)
        }
    }
}

/// Parses the command line, or prints clap's message and returns the exit code to
/// end with (0 for `--help` and `--version`, [`exit::USAGE`] for errors).
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    T::try_parse().map_err(|e| {
        let _ = e.print();
        std::process::ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 })
    })
}

/// The fields of a patch header of either kind, for printing: the kind is read once,
/// so the printing code exists once in the binary, not once per kind.
#[derive(Debug, Clone, Copy)]
pub struct HeaderView {
    kind: deltaapply::PatchKind,
    source: Option<deltaapply::FileId>,
    streams: Option<deltaapply::container::StreamSizes>,
    window_log: u8,
    target: deltaapply::FileId,
    payload: deltaapply::FileId,
    apply_memory: u64,
    signature: SignatureSlot,
    /// Whether the signature (if any) verifies against the key it carries.
    self_verifies: bool,
}

impl HeaderView {
    /// The view of `h`.
    pub fn of<B: HeaderBody>(h: &deltaapply::Header<B>) -> HeaderView {
        HeaderView {
            kind: h.kind(),
            source: h.source(),
            streams: h.streams(),
            window_log: h.window_log,
            target: h.target,
            payload: h.payload,
            apply_memory: h.apply_memory,
            signature: h.signature,
            self_verifies: check_patch_origin(h, None).is_ok(),
        }
    }
}

/// A patch header as JSON (the fields `inspect --json` prints).
pub fn header_json(h: &HeaderView) -> serde_json::Value {
    let signature = match h.signature {
        SignatureSlot::Unsigned => serde_json::Value::Null,
        SignatureSlot::Ed25519 { public_key, .. } => serde_json::json!({
            "algorithm": "ed25519",
            "public_key": one_line_key(&public_key),
            "key_id": PublicKey::id_of_bytes(&public_key),
            "verifies": h.self_verifies,
        }),
    };
    serde_json::json!({
        "format": deltaapply::foreign::Format::Deltapack,
        "format_version": deltaapply::container::VERSION,
        "method": h.kind,
        "window_log": h.window_log,
        "source": h.source,
        "target": h.target,
        "payload": h.payload,
        "streams": h.streams,
        "apply_memory": h.apply_memory,
        "signature": signature,
    })
}

/// A patch header for people, one field a line.
pub fn header_text(h: &HeaderView) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14} {v}\n"));
    line(
        "format",
        format!("deltapack patch v{}", deltaapply::container::VERSION),
    );
    line("method", h.kind.to_string());
    match h.source {
        Some(src) => line(
            "source",
            format!("{} bytes, sha256 {}", src.size, src.sha256),
        ),
        None => line("source", "none (full image)".into()),
    }
    line(
        "target",
        format!("{} bytes, sha256 {}", h.target.size, h.target.sha256),
    );
    line(
        "payload",
        format!("{} bytes, sha256 {}", h.payload.size, h.payload.sha256),
    );
    if let Some(st) = h.streams {
        let coding = match st.diff_coding {
            deltaapply::container::DiffCoding::Plain => "plain",
            deltaapply::container::DiffCoding::ZeroRun => "zero-run coded",
        };
        line(
            "streams",
            format!(
                "control {} + diff {} ({coding}) + extra {} bytes",
                st.control, st.diff, st.extra
            ),
        );
    }
    line(
        "window",
        format!("2^{} ({})", h.window_log, human_bytes(1 << h.window_log)),
    );
    line(
        "apply memory",
        format!("{} ({} bytes)", human_bytes(h.apply_memory), h.apply_memory),
    );
    match h.signature {
        SignatureSlot::Unsigned => line("signature", "none (unsigned)".into()),
        SignatureSlot::Ed25519 { public_key, .. } => {
            let verifies = if h.self_verifies {
                "verifies against the key it carries"
            } else {
                "does NOT verify against the key it carries"
            };
            line(
                "signature",
                format!(
                    "ed25519 by key {}, {verifies}",
                    PublicKey::id_of_bytes(&public_key)
                ),
            );
            line("signed by", one_line_key(&public_key));
        }
    }
    s
}

/// The one-line form of 32 public key bytes, valid key or not.
fn one_line_key(bytes: &[u8; 32]) -> String {
    format!(
        "{}{}",
        deltaapply::key::PUBLIC_KEY_PREFIX,
        deltaapply::Sha256Digest(*bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("7"), Ok(7));
        assert_eq!(parse_size(" 8 GiB "), Ok(8 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    // Two valid keys: the ed25519 base point and RFC 8032's first test key.
    const A: &str = "ed25519:5866666666666666666666666666666666666666666666666666666666666666";
    const B: &str = "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn keys(
        flags: &[&str],
        env: Option<&str>,
        builtin: Option<&str>,
    ) -> Option<(Vec<String>, KeySource)> {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        resolve_keys(&flags, env, builtin)
            .unwrap()
            .map(|(t, src)| (t.keys().iter().map(ToString::to_string).collect(), src))
    }

    #[test]
    fn keys_come_from_flags_then_env_then_builtin() {
        let (a, b) = (A.to_string(), B.to_string());
        assert_eq!(
            keys(&[A], Some(B), Some(B)),
            Some((vec![a.clone()], KeySource::Flag))
        );
        assert_eq!(
            keys(&[], Some(B), Some(A)),
            Some((vec![b.clone()], KeySource::Env))
        );
        assert_eq!(
            keys(&[], Some("  \n"), Some(A)),
            Some((vec![a.clone()], KeySource::BuiltIn))
        );
        assert_eq!(
            keys(&[], None, Some(A)),
            Some((vec![a.clone()], KeySource::BuiltIn))
        );
        assert_eq!(keys(&[], None, Some("")), None);
        assert_eq!(keys(&[], None, None), None);
        let mut both = keys(&[], Some(&format!("{A},{B}")), None).unwrap().0;
        both.sort();
        assert_eq!(both, [a.clone(), b.clone()]);
        assert_eq!(keys(&[A, A], None, None).unwrap().0, [a]);
    }

    #[test]
    fn a_bad_key_is_an_error_not_a_fallback() {
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(resolve_keys(&flags(&["ed25519:00"]), None, Some(A)).is_err());
        assert!(
            resolve_keys(
                &flags(&[A, "nonsense-file-that-does-not-exist"]),
                None,
                None
            )
            .is_err()
        );
        let err = resolve_keys(&[], Some("ed25519:zz"), Some(A)).unwrap_err();
        assert!(format!("{err:#}").contains(KEY_ENV), "{err:#}");
        assert!(resolve_keys(&[], None, Some("x")).is_err());
    }
}

/// Exit codes of the `deltaapply` and `deltapack` binaries (README.md, *Exit codes*).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// An I/O error, or anything not listed below.
    pub const FAILURE: i32 = 1;
    /// Bad command-line usage.
    pub const USAGE: i32 = 2;
    /// The patch is invalid or corrupt, or does not produce its target (for `update`:
    /// also a signed manifest that is invalid, or a file that disagrees with it).
    pub const BAD_PATCH: i32 = 3;
    /// The old file is not the one the patch was made for.
    pub const WRONG_SOURCE: i32 = 4;
    /// Applying would exceed a resource limit.
    pub const LIMIT: i32 = 5;
    /// The patch's origin check failed: unsigned or signed by an untrusted key while a
    /// trusted key is configured, or its signature does not verify.
    pub const UNTRUSTED: i32 = 6;
    /// `update`/`check`: the manifest was refused although its signature is valid: it is
    /// older than one accepted before (a rollback), expired, or for another product or channel.
    pub const REFUSED: i32 = 7;
    /// `update`/`check`: no route is allowed: only the full image would do and it is
    /// forbidden (`--no-full`).
    pub const NO_ROUTE: i32 = 8;
    /// `update`/`check`: a file could not be downloaded from any mirror (after retries).
    pub const NETWORK: i32 = 9;
    /// Another applier is updating the same target now (it holds the target's lock).
    pub const BUSY: i32 = 10;
}

/// The exit code for a kind of failure.
pub fn exit_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Usage => exit::USAGE,
        ErrorKind::BadInput => exit::BAD_PATCH,
        ErrorKind::WrongSource => exit::WRONG_SOURCE,
        ErrorKind::Limit => exit::LIMIT,
        ErrorKind::Untrusted => exit::UNTRUSTED,
        ErrorKind::Refused => exit::REFUSED,
        ErrorKind::NoRoute => exit::NO_ROUTE,
        ErrorKind::Network => exit::NETWORK,
        ErrorKind::Busy => exit::BUSY,
        _ => exit::FAILURE,
    }
}
