//! The committed test vectors (`testdata/vectors`, format-spec §10): every case of
//! `vectors.json` applied through the library and through the `deltaapply` binary
//! (trusting the case's key, if any), the valid patches' headers checked against the
//! documented field values, and the published test keys against their seeds.
//!
//! Needs the `cli` feature (the binary, and `serde_json` to read the case list).

#[path = "../../deltaapply/tests/common/mod.rs"]
mod common;

use deltaapply::KeyFile as _;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use assert_cmd::Command;
use common::{Scratch, at, chain, error_kind, hex, read_vector, sha256, vector};
use deltaapply::container::DiffCoding;
use deltaapply::{Method, Patch, PublicKey, TrustedKeys};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    #[allow(dead_code)]
    format: String,
    regenerate: String,
    keys: Vec<KeyDoc>,
    cases: Vec<Case>,
}

/// A published test key.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct KeyDoc {
    file: String,
    public_key: String,
    key_id: String,
    seed: String,
    seed_from: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    patch: String,
    old: Option<String>,
    max_apply_memory: Option<u64>,
    /// The public key file of the key the applier trusts, if any.
    key: Option<String>,
    /// `"ok"` or an exit code.
    expect: serde_json::Value,
    new: Option<String>,
    error: Option<String>,
    message: Option<String>,
    rule: String,
    description: String,
    header: Option<HeaderDoc>,
    /// What the applier reports as the origin (`deltaapply::Origin` as JSON).
    origin: Option<serde_json::Value>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct HeaderDoc {
    method: String,
    window_log: u8,
    source: Option<FileDoc>,
    target: FileDoc,
    payload: FileDoc,
    streams: Option<StreamsDoc>,
    apply_memory: u64,
    signature: Option<SignatureDoc>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct SignatureDoc {
    algorithm: String,
    public_key: String,
    key_id: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    size: u64,
    sha256: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct StreamsDoc {
    control: u64,
    diff: u64,
    extra: u64,
    /// `"plain"` or `"zero-run"` (`method_flags` bit 0, format-spec §5.2.5).
    diff_coding: String,
    /// Length of the executable transform table (`method_flags` bit 2, §5.2.6);
    /// absent for none.
    #[serde(default)]
    transform: u64,
}

impl StreamsDoc {
    /// The `method_flags` byte this coding and transform imply.
    fn method_flags(&self) -> u8 {
        let coding = match self.diff_coding.as_str() {
            "plain" => 0,
            "zero-run" => 1,
            other => panic!("unknown diff_coding {other:?}"),
        };
        coding | if self.transform > 0 { 4 } else { 0 }
    }
}

enum Expect {
    Ok(String),
    Exit(i32),
}

impl Case {
    fn expect(&self) -> Expect {
        match &self.expect {
            serde_json::Value::String(s) if s == "ok" => Expect::Ok(
                self.new
                    .clone()
                    .unwrap_or_else(|| panic!("{}: \"ok\" without a new file", self.name)),
            ),
            serde_json::Value::Number(n) => {
                Expect::Exit(n.as_i64().expect("integer exit code") as i32)
            }
            other => panic!("{}: bad expect {other}", self.name),
        }
    }

    fn old_path(&self) -> Option<PathBuf> {
        self.old.as_deref().map(vector)
    }

    fn trusted(&self) -> Option<TrustedKeys> {
        let file = self.key.as_deref()?;
        let key = PublicKey::from_file(&vector(file))
            .unwrap_or_else(|e| panic!("{}: {file}: {e}", self.name));
        Some(TrustedKeys::single(key))
    }
}

fn index() -> Index {
    let text = String::from_utf8(read_vector("vectors.json")).expect("utf-8");
    serde_json::from_str(&text).expect("vectors.json parses")
}

#[test]
fn vector_set_is_complete_and_small() {
    let index = index();
    assert!(index.regenerate.contains("make_vectors"));
    let mut names = BTreeSet::new();
    let mut referenced = BTreeSet::new();
    for c in &index.cases {
        assert!(names.insert(c.name.clone()), "duplicate case {}", c.name);
        assert!(
            !c.description.is_empty() && !c.rule.is_empty(),
            "{}",
            c.name
        );
        for f in [
            Some(&c.patch),
            c.old.as_ref(),
            c.new.as_ref(),
            c.key.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(vector(f).is_file(), "{}: {f} missing", c.name);
            referenced.insert(f.clone());
        }
        match c.expect() {
            Expect::Ok(_) => assert!(
                c.header.is_some() && c.origin.is_some() && c.error.is_none(),
                "{}",
                c.name
            ),
            Expect::Exit(code) => {
                assert!([3, 4, 5, 6].contains(&code), "{}: exit {code}", c.name);
                assert!(
                    c.error.is_some() && c.header.is_none() && c.origin.is_none(),
                    "{}",
                    c.name
                );
            }
        }
    }
    // Every file is used by a case, and the set stays small enough to commit.
    // (Subdirectories hold other vector sets with their own index and test:
    // `tree/`, checked by tests/tree_vectors.rs.)
    let mut total = 0;
    for entry in std::fs::read_dir(common::vectors_dir()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        total += entry.metadata().unwrap().len();
        if name != "vectors.json" && name != "README.md" {
            assert!(referenced.contains(&name), "{name} is not used by any case");
        }
    }
    assert!(total < 200 << 10, "vectors take {total} bytes");
    // The brief's minimum: a valid patch of each method, and each kind of failure.
    for method in Method::ALL {
        assert!(
            index
                .cases
                .iter()
                .any(|c| c.header.as_ref().is_some_and(|h| h.method == method.name())),
            "no valid {method} vector"
        );
    }
    // A valid signed patch, accepted with its key and without one.
    for trusting in [true, false] {
        assert!(
            index.cases.iter().any(|c| c.key.is_some() == trusting
                && c.header.as_ref().is_some_and(|h| h.signature.is_some())),
            "no valid signed vector applied with key: {trusting}"
        );
    }
    // And a valid bsdiff patch of each diff coding.
    for coding in ["plain", "zero-run"] {
        assert!(
            index.cases.iter().any(|c| c
                .header
                .as_ref()
                .and_then(|h| h.streams.as_ref())
                .is_some_and(|s| s.diff_coding == coding)),
            "no valid bsdiff vector with a {coding} diff stream"
        );
    }
    for code in [3, 4, 5, 6] {
        assert!(
            index
                .cases
                .iter()
                .any(|c| matches!(c.expect(), Expect::Exit(e) if e == code)),
            "no vector exits {code}"
        );
    }
}

#[test]
fn every_vector_applies_as_documented() {
    let mut failures = Vec::new();
    for case in index().cases {
        if let Err(problem) = check_with_library(&case) {
            failures.push(format!("{} ({}): {problem}", case.name, case.description));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn check_with_library(case: &Case) -> Result<(), String> {
    let scratch = Scratch::new();
    let old = case.old_path();
    let started = Instant::now();
    let trusted = case.trusted();
    let result = common::apply(
        old.as_deref(),
        &vector(&case.patch),
        &scratch.dest,
        case.max_apply_memory,
        trusted.as_ref(),
    );
    if started.elapsed().as_secs() >= 5 {
        return Err(format!("took {:?}", started.elapsed()));
    }
    match (case.expect(), result) {
        (Expect::Ok(new), Ok(report)) => {
            let expected = read_vector(&new);
            scratch.assert_dest(&expected, &case.name);
            if report.target.size != expected.len() as u64
                || report.target.sha256.0 != sha256(&expected)
                || report.dest != scratch.dest
            {
                return Err(format!("report {report:?} does not describe {new}"));
            }
            let origin = serde_json::to_value(report.origin).unwrap();
            if case.origin.as_ref() != Some(&origin) {
                return Err(format!("origin {origin}, expected {:?}", case.origin));
            }
            Ok(())
        }
        (Expect::Ok(_), Err(e)) => Err(format!("expected success, got: {}", chain(&e))),
        (Expect::Exit(code), Ok(_)) => Err(format!("expected exit {code}, but it applied")),
        (Expect::Exit(code), Err(e)) => {
            scratch.assert_untouched(&case.name);
            let kind = error_kind(&e);
            let message = chain(&e);
            if deltaapply_cli::exit_code(e.kind()) != code {
                return Err(format!(
                    "exit code {} instead of {code}: {message}",
                    deltaapply_cli::exit_code(e.kind())
                ));
            }
            if case.error.as_deref() != Some(kind.as_str()) {
                return Err(format!("{kind} instead of {:?}: {message}", case.error));
            }
            if let Some(m) = &case.message
                && !message.contains(m.as_str())
            {
                return Err(format!("message does not contain {m:?}: {message}"));
            }
            Ok(())
        }
    }
}

#[test]
fn valid_headers_decode_to_the_documented_fields() {
    let mut checked = 0;
    for case in index().cases {
        let Some(doc) = &case.header else { continue };
        let name = &case.name;
        let bytes = read_vector(&case.patch);
        let patch = Patch::open(&vector(&case.patch)).expect(name);
        let h = patch.header();

        // The decoded header is what vectors.json documents.
        assert_eq!(h.method().name(), doc.method, "{name}: method");
        assert_eq!(h.window_log, doc.window_log, "{name}: window_log");
        assert_eq!(h.apply_memory, doc.apply_memory, "{name}: apply_memory");
        let same = |id: &deltaapply::FileId, d: &FileDoc| {
            id.size == d.size && id.sha256.to_string() == d.sha256
        };
        assert!(same(&h.target, &doc.target), "{name}: target");
        assert!(same(&h.payload, &doc.payload), "{name}: payload");
        match (&h.source(), &doc.source) {
            (Some(s), Some(d)) => assert!(same(s, d), "{name}: source"),
            (None, None) => {}
            other => panic!("{name}: source {other:?}"),
        }
        match (&h.streams(), &doc.streams) {
            (Some(s), Some(d)) => {
                assert_eq!(
                    (s.control, s.diff, s.extra),
                    (d.control, d.diff, d.extra),
                    "{name}: streams"
                );
                let coding = match s.diff_coding {
                    DiffCoding::Plain => "plain",
                    DiffCoding::ZeroRun => "zero-run",
                };
                assert_eq!(coding, d.diff_coding, "{name}: diff_coding");
                assert_eq!(s.transform, d.transform, "{name}: transform table length");
            }
            (None, None) => {}
            other => panic!("{name}: streams {other:?}"),
        }

        // And the documented values are those of the files, computed independently.
        let file = |d: &FileDoc, bytes: &[u8], what: &str| {
            assert_eq!(d.size, bytes.len() as u64, "{name}: {what} size");
            assert_eq!(d.sha256, hex(&sha256(bytes)), "{name}: {what} sha256");
        };
        file(
            &doc.target,
            &read_vector(case.new.as_ref().unwrap()),
            "target",
        );
        file(&doc.payload, &bytes[at::PAYLOAD..], "payload");
        match (h.method(), &doc.source, &case.old) {
            (Method::Full, None, _) => {}
            (_, Some(src), Some(old)) => file(src, &read_vector(old), "source"),
            other => panic!("{name}: source for {other:?}"),
        }
        if let Some(s) = &doc.streams {
            let streams = s.transform + s.control + s.diff + s.extra;
            assert_eq!(streams, doc.payload.size, "{name}");
        }
        let source_size = doc.source.as_ref().map_or(0, |s| s.size);
        assert_eq!(
            doc.apply_memory,
            common::spec_memory_bound(h.method(), doc.window_log, source_size, doc.target.size),
            "{name}: apply_memory is the §4 formula"
        );
        // The raw bytes agree with the layout of §3.2.
        assert_eq!(&bytes[..8], b"\x89DPATCH\n");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
        assert_eq!(u16::from_le_bytes([bytes[10], bytes[11]]), 296);
        assert_eq!(bytes[at::METHOD], h.method().code());
        assert_eq!(
            bytes[at::METHOD_FLAGS],
            doc.streams.as_ref().map_or(0, StreamsDoc::method_flags),
            "{name}: method_flags"
        );
        assert_eq!(bytes[at::RESERVED], 0, "{name}: reserved byte 15");
        assert_eq!(common::get_u64(&bytes, at::TARGET_SIZE), doc.target.size);
        assert_eq!(common::get_u64(&bytes, at::PAYLOAD_SIZE), doc.payload.size);
        assert_eq!(common::get_u64(&bytes, at::APPLY_MEMORY), doc.apply_memory);
        assert_eq!(
            hex(&bytes[at::TARGET_SHA..at::TARGET_SHA + 32]),
            doc.target.sha256
        );
        assert_eq!(
            hex(&bytes[at::PAYLOAD_SHA..at::PAYLOAD_SHA + 32]),
            doc.payload.sha256
        );
        assert_eq!(
            &bytes[at::CHECK..at::CHECK + 16],
            &sha256(&bytes[..at::CHECKED])[..16],
            "{name}: header_check"
        );
        let block = &bytes[at::SIG_ALGORITHM..at::PAYLOAD];
        match &doc.signature {
            None => assert!(block.iter().all(|&b| b == 0), "{name}: unsigned"),
            Some(sig) => check_signature(name, &bytes, sig),
        }
        checked += 1;
    }
    assert!(checked >= 3);
}

/// A signed valid patch's signature block, checked from format-spec §3.5 with
/// ed25519-dalek directly rather than through the applier's code.
fn check_signature(name: &str, bytes: &[u8], doc: &SignatureDoc) {
    assert_eq!(doc.algorithm, "ed25519", "{name}");
    assert_eq!(bytes[at::SIG_ALGORITHM], 1, "{name}: sig_algorithm");
    assert!(
        bytes[at::SIG_RESERVED..at::PUBLIC_KEY]
            .iter()
            .all(|&b| b == 0),
        "{name}: reserved bytes of the signature block"
    );
    let key: [u8; 32] = bytes[at::PUBLIC_KEY..at::SIGNATURE].try_into().unwrap();
    assert_eq!(doc.public_key, format!("ed25519:{}", hex(&key)), "{name}");
    assert_eq!(doc.key_id, hex(&sha256(&key)[..8]), "{name}: key id");
    let message = [b"deltapack patch v1\0".as_slice(), &bytes[..at::SIGNED]].concat();
    assert_eq!(message.len(), 211);
    let signature =
        ed25519_dalek::Signature::from_bytes(bytes[at::SIGNATURE..at::PAYLOAD].try_into().unwrap());
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify_strict(&message, &signature)
        .unwrap_or_else(|e| panic!("{name}: signature does not verify: {e}"));
}

/// The published test keys are what their seeds and files say.
#[test]
fn test_keys_match_their_seeds() {
    let index = index();
    assert_eq!(index.keys.len(), 2);
    for k in &index.keys {
        assert_eq!(k.seed, hex(&sha256(k.seed_from.as_bytes())), "{}", k.file);
        let seed: [u8; 32] = sha256(k.seed_from.as_bytes());
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        assert_eq!(
            k.public_key,
            format!("ed25519:{}", hex(&public)),
            "{}",
            k.file
        );
        assert_eq!(k.key_id, hex(&sha256(&public)[..8]), "{}", k.file);
        let file = PublicKey::from_file(&vector(&k.file)).unwrap();
        assert_eq!(file.to_string(), k.public_key);
        assert_eq!(file.id().to_string(), k.key_id);
    }
}

/// The `deltaapply` binary, with no trusted key from the environment.
fn deltaapply() -> Command {
    let mut cmd = Command::cargo_bin("deltaapply").expect("deltaapply binary");
    cmd.env_remove(deltaapply::key::KEY_ENV);
    cmd
}

/// `deltaapply apply [OLD] PATCH -o DEST --json [--max-memory N] [--key FILE]`.
fn cli_apply(case: &Case, scratch: &Scratch) -> Command {
    let mut cmd = deltaapply();
    cmd.arg("apply");
    if let Some(key) = &case.key {
        cmd.arg("--key").arg(vector(key));
    }
    if let Some(old) = case.old_path() {
        cmd.arg(old);
    }
    cmd.arg(vector(&case.patch)).arg("-o").arg(&scratch.dest);
    if let Some(limit) = case.max_apply_memory {
        cmd.arg("--max-memory").arg(limit.to_string());
    }
    cmd
}

#[test]
fn the_binary_agrees_on_every_vector() {
    let mut failures = Vec::new();
    for case in index().cases {
        if case.key.is_none() && deltaapply::key::BUILTIN_KEYS.is_some() {
            // A binary with built-in keys always has a trusted key.
            eprintln!(
                "NOTICE: {}: skipped, this build has built-in keys",
                case.name
            );
            continue;
        }
        let scratch = Scratch::new();
        let out = cli_apply(&case, &scratch).arg("--json").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json: serde_json::Value = match serde_json::from_str(stdout.trim()) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: stdout is not JSON ({e}): {stdout}", case.name));
                continue;
            }
        };
        let code = out.status.code();
        match case.expect() {
            Expect::Ok(new) => {
                if code != Some(0) || json["ok"] != true {
                    failures.push(format!("{}: exit {code:?}, {json}", case.name));
                    continue;
                }
                scratch.assert_dest(&read_vector(&new), &case.name);
                assert_eq!(
                    json["target"]["size"],
                    case.header.as_ref().unwrap().target.size
                );
                if case.origin.as_ref() != Some(&json["origin"]) {
                    failures.push(format!(
                        "{}: origin {}, expected {:?}",
                        case.name, json["origin"], case.origin
                    ));
                }
                // No trusted key: one warning on stderr; with one, none.
                let warned = String::from_utf8_lossy(&out.stderr).starts_with("warning: ");
                if warned != case.key.is_none() {
                    failures.push(format!(
                        "{}: stderr {:?}",
                        case.name,
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
            Expect::Exit(expected) => {
                scratch.assert_untouched(&case.name);
                if code != Some(expected)
                    || json["ok"] != false
                    || json["exit_code"] != expected
                    || !json["error"].is_string()
                {
                    failures.push(format!(
                        "{}: expected exit {expected}, got {code:?} and {json}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_binary_prints_errors_for_people() {
    let index = index();
    let case = |name: &str| index.cases.iter().find(|c| c.name == name).unwrap();

    // A corrupt patch: exit 3, the patch named on stderr, nothing on stdout.
    let scratch = Scratch::new();
    let bitflip = case("payload-bitflip");
    let out = cli_apply(bitflip, &scratch).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("payload-bitflip.dpatch"), "{stderr}");
    assert!(stderr.contains("payload sha256"), "{stderr}");
    assert!(out.stdout.is_empty());
    scratch.assert_untouched("payload-bitflip (text)");

    // A wrong old file: exit 4, and the message names the old file.
    let wrong = case("bsdiff-valid/wrong-old");
    assert_eq!(wrong.old.as_deref(), Some("exe-wrong.old"));
    let out = cli_apply(wrong, &scratch).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exe-wrong.old"), "{stderr}");
    scratch.assert_untouched("wrong old (text)");

    // Signed by a key that is not trusted: exit 6, both key ids named.
    let foreign = case("signed-other-key");
    let out = cli_apply(foreign, &scratch).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ids: Vec<&str> = index.keys.iter().map(|k| k.key_id.as_str()).collect();
    assert!(
        stderr.contains("signed-other-key.dpatch") && ids.iter().all(|id| stderr.contains(id)),
        "{stderr}"
    );
    scratch.assert_untouched("untrusted (text)");

    // The memory limit: exit 5.
    let limited = case("bsdiff-valid/limit-below");
    assert!(limited.max_apply_memory.is_some());
    let out = cli_apply(limited, &scratch).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-memory"));
    scratch.assert_untouched("memory limit (text)");
}

#[test]
fn the_binary_updates_in_place() {
    let scratch = Scratch::holding("app.bin", &read_vector("exe.old"));
    let bad = deltaapply()
        .arg("apply")
        .arg("--in-place")
        .arg(&scratch.dest)
        .arg(vector("payload-bitflip.dpatch"))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3));
    scratch.assert_untouched("in-place, corrupt patch");

    deltaapply()
        .arg("apply")
        .arg("--in-place")
        .arg(&scratch.dest)
        .arg(vector("bsdiff-valid.dpatch"))
        .assert()
        .success();
    scratch.assert_dest(&read_vector("exe.new"), "in-place, valid patch");
}

#[test]
fn the_binary_inspects_valid_vectors() {
    for case in index().cases {
        let Some(doc) = &case.header else { continue };
        let out = deltaapply()
            .arg("inspect")
            .arg("--json")
            .arg(vector(&case.patch))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", case.name);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["method"], doc.method.as_str(), "{}", case.name);
        assert_eq!(json["apply_memory"], doc.apply_memory, "{}", case.name);
        assert_eq!(json["target"]["sha256"], doc.target.sha256.as_str());
        assert_eq!(json["payload"]["sha256"], doc.payload.sha256.as_str());
        match &doc.signature {
            Some(sig) => {
                assert_eq!(json["signature"]["key_id"], sig.key_id.as_str());
                assert_eq!(json["signature"]["public_key"], sig.public_key.as_str());
                assert_eq!(json["signature"]["verifies"], true, "{}", case.name);
            }
            None => assert!(json["signature"].is_null(), "{}", case.name),
        }
        match &doc.streams {
            Some(s) => assert_eq!(
                json["streams"]["diff_coding"],
                s.diff_coding.as_str(),
                "{}",
                case.name
            ),
            None => assert!(json["streams"].is_null(), "{}", case.name),
        }
    }
    let out = deltaapply()
        .args(["inspect", "--json"])
        .arg(vector("unknown-version.dpatch"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["exit_code"], 3);
    assert!(
        json["error"].as_str().unwrap().contains("version 2"),
        "{json}"
    );
}

/// The huge-size vectors, applied by the binary with its address space capped at
/// 256 MiB: any allocation sized from a forged header field would abort the process
/// instead of ending with the documented exit code.
#[cfg(target_os = "linux")]
#[test]
fn huge_declared_sizes_need_no_large_allocation() {
    let index = index();
    let huge: Vec<&Case> = index
        .cases
        .iter()
        .filter(|c| c.patch.contains("huge"))
        .collect();
    assert!(huge.len() >= 4);
    let bin = assert_cmd::cargo::cargo_bin("deltaapply");
    for case in huge {
        let Expect::Exit(expected) = case.expect() else {
            panic!("{}: huge vectors must fail", case.name)
        };
        let scratch = Scratch::new();
        let mut cmd = Command::new("sh");
        cmd.env_remove(deltaapply::key::KEY_ENV);
        cmd.arg("-c")
            .arg("ulimit -v 262144 && exec \"$@\"")
            .arg("sh")
            .arg(&bin)
            .arg("apply");
        if let Some(old) = case.old_path() {
            cmd.arg(old);
        }
        cmd.arg(vector(&case.patch)).arg("-o").arg(&scratch.dest);
        if let Some(limit) = case.max_apply_memory {
            cmd.arg("--max-memory").arg(limit.to_string());
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        scratch.assert_untouched(&case.name);
    }
}

/// The zero-run examples of format-spec §5.2.5, through the library's reader: control
/// records that take the 7 diff bytes `00 00 00 07 05 00 00`, then the end check (Z4).
#[test]
fn zero_run_examples_of_the_spec() {
    use deltaapply::control::ZeroRunReader;
    use std::io::Read;

    let diff = [0u8, 0, 0, 7, 5, 0, 0];
    let apply = |coded: &[u8]| -> Result<(), String> {
        let mut r = ZeroRunReader::new(coded);
        let mut got = [0u8; 7];
        r.read_exact(&mut got).map_err(|e| e.to_string())?;
        assert_eq!(got, diff, "{coded:02x?} expands to other bytes");
        match r.at_end() {
            Ok(true) => Ok(()),
            Ok(false) => Err("bytes left over".into()),
            Err(e) => Err(e.to_string()),
        }
    };
    let valid: [&[u8]; 3] = [
        &[0x03, 0x02, 0x07, 0x05, 0x02, 0x00],
        &[0x03, 0x04, 0x07, 0x05, 0x00, 0x00],
        &[0x01, 0x00, 0x02, 0x02, 0x07, 0x05, 0x02, 0x00],
    ];
    for coded in valid {
        assert_eq!(apply(coded), Ok(()), "{coded:02x?}");
    }
    let rejected: [(&[u8], &str); 4] = [
        (
            &[0x03, 0x02, 0x07, 0x05, 0x00, 0x00, 0x02, 0x00],
            "expands to nothing",
        ),
        (&[0x03, 0x02, 0x07, 0x05, 0x82, 0x00], "malformed varint"),
        (&[0x03, 0x02, 0x07], "cut short"),
        (&[0x03, 0x02, 0x07, 0x05, 0x03, 0x00], "left over"),
    ];
    for (coded, why) in rejected {
        match apply(coded) {
            Ok(()) => panic!("{coded:02x?} accepted"),
            Err(e) => assert!(e.contains(why), "{coded:02x?}: {e}"),
        }
    }
}
