//! End-to-end tests of the real binaries: `deltapack diff`, `inspect`, `keygen` and
//! `key show`, then `deltaapply apply` and `inspect` on what it made, signed and
//! unsigned, including every documented failure's exit code, message, JSON form, and
//! that a failure leaves no file behind.
//!
//! `deltaapply` is another package's binary, which `cargo test -p deltapack` does not
//! build: `cargo test --workspace` does (deltaapply has integration tests of its own),
//! or `cargo build -p deltaapply-cli` first. `DELTAAPPLY_BIN` overrides the path, e.g. to
//! test the size-optimised `applier` profile build.

mod common;

use deltaapply::KeyFile as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{Dir, assert_same, deltaapply_bin, release_pair};
use deltaapply::container::HEADER_LEN;
use serde_json::Value;

/// Exit codes from README.md ("Exit codes (both tools)").
mod code {
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const BAD_PATCH: i32 = 3;
    pub const WRONG_SOURCE: i32 = 4;
    pub const LIMIT: i32 = 5;
    pub const UNTRUSTED: i32 = 6;
}

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

/// `deltaapply` with no trusted key from the environment (tests that want one pass
/// `--key` or set `DELTAAPPLY_KEY` themselves).
fn deltaapply() -> Command {
    let mut cmd = Command::new(deltaapply_bin());
    cmd.env_remove("DELTAAPPLY_KEY");
    cmd
}

/// A directory holding a realistic release pair as `old.bin` and `new.bin`.
struct Fixture {
    dir: Dir,
    old: Vec<u8>,
    new: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let (old, new) = release_pair(96 << 10, 42);
        let dir = Dir::new();
        dir.write("old.bin", &old);
        dir.write("new.bin", &new);
        Fixture { dir, old, new }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `deltapack diff old.bin new.bin -o PATCH` plus `args`.
    fn diff(&self, patch: &str, args: &[&str]) -> Command {
        let mut cmd = deltapack();
        cmd.arg("diff")
            .arg(self.path("old.bin"))
            .arg(self.path("new.bin"))
            .arg("-o")
            .arg(self.path(patch))
            .args(args);
        cmd
    }

    /// Makes `patch` with `args`, checking that it succeeds quietly.
    fn make(&self, patch: &str, args: &[&str]) {
        self.diff(patch, args).assert().success().stderr("");
    }

    /// `deltapack keygen` writing `NAME.key` and `NAME.pub`; returns the public key
    /// it printed, checked against the file.
    fn keygen(&self, name: &str) -> deltaapply::PublicKey {
        let out = deltapack()
            .arg("keygen")
            .arg("--secret-key")
            .arg(self.path(&format!("{name}.key")))
            .arg("--public-key")
            .arg(self.path(&format!("{name}.pub")))
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let printed = deltaapply::PublicKey::parse(stdout.lines().next().unwrap_or(""))
            .unwrap_or_else(|e| panic!("keygen's first line is not a key ({e}): {stdout}"));
        let file = deltaapply::PublicKey::from_file(&self.path(&format!("{name}.pub")))
            .expect("the public key file parses");
        assert_eq!(printed, file);
        printed
    }

    /// `deltaapply apply old.bin PATCH -o OUT` plus `args`.
    fn apply(&self, old: &str, patch: &str, out: &str, args: &[&str]) -> Command {
        let mut cmd = deltaapply();
        cmd.arg("apply")
            .arg(self.path(old))
            .arg(self.path(patch))
            .arg("-o")
            .arg(self.path(out))
            .args(args);
        cmd
    }
}

fn stdout_json(output: &std::process::Output) -> Value {
    let text = String::from_utf8(output.stdout.clone()).expect("utf-8 stdout");
    assert_eq!(text.lines().count(), 1, "one JSON line expected: {text:?}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

/// Asserts the directory holds exactly `names` (so no output and no temporary file).
fn assert_files(dir: &Dir, names: &[&str]) {
    assert_eq!(dir.names(), names, "files in {}", dir.path().display());
}

/// Asserts a failure: exit `code`, nothing on stdout, one `error:` line on stderr
/// naming `file`. Returns the message.
fn assert_fails(cmd: &mut Command, code: i32, file: &Path) -> String {
    let out = cmd.output().expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let name = file.display().to_string();
    assert!(
        stderr.contains(&name),
        "message does not name {name}: {stderr}"
    );
    stderr
}

#[test]
fn every_method_round_trips_through_the_binaries() {
    let f = Fixture::new();
    let public = f.keygen("release");
    let secret = f.path("release.key").display().to_string();
    let pubfile = f.path("release.pub").display().to_string();
    for method in ["auto", "bsdiff", "zstd", "full"] {
        let patch = format!("{method}.dpatch");
        let out = f
            .diff(&patch, &["--method", method, "--secret-key", &secret])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "diff writes nothing to stderr");
        let stdout = text(&out.stdout);
        let size = f.dir.read(&patch).len();
        let header = inspect_json(&f.path(&patch));
        let shown = header["method"].as_str().expect("method name");
        if method != "auto" {
            assert_eq!(shown, method);
        }
        let first = stdout.lines().next().expect("a summary line");
        assert!(
            first.contains(&f.path(&patch).display().to_string()),
            "{first}"
        );
        assert!(
            first.contains(&format!("{shown} patch, {size} bytes")),
            "{first}"
        );
        assert!(first.contains("of the new file"), "{first}");
        assert!(first.contains("applies in"), "{first}");
        assert!(
            first.ends_with(&format!("signed by key {}", public.id())),
            "{first}"
        );

        let new = format!("{method}.out");
        let out = f
            .apply("old.bin", &patch, &new, &["--key", &pubfile])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_same(&f.dir.read(&new), &f.new, method);
        assert!(out.stdout.is_empty());
        // Not a terminal: no progress bar, just the one summary line.
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(
            !stderr.contains('\r') && !stderr.contains('\x1b'),
            "{stderr:?}"
        );
        assert!(stderr.starts_with("wrote "), "{stderr}");
        assert!(
            stderr.contains(&format!("{} bytes", f.new.len())),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("the {shown} method")), "{stderr}");
        assert!(
            stderr.contains(&format!("signed by trusted key {}", public.id())),
            "{stderr}"
        );
    }
    let mut expected = vec![
        "new.bin".to_string(),
        "old.bin".to_string(),
        "release.key".to_string(),
        "release.pub".to_string(),
    ];
    for m in ["auto", "bsdiff", "full", "zstd"] {
        expected.extend([format!("{m}.dpatch"), format!("{m}.out")]);
    }
    expected.sort_unstable();
    assert_eq!(f.dir.names(), expected);
}

#[test]
fn auto_lists_every_candidate_and_marks_its_choice() {
    let f = Fixture::new();
    let out = f.diff("p", &[]).output().expect("run");
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "summary and three candidates: {stdout}");
    let marked: Vec<&&str> = lines[1..]
        .iter()
        .filter(|l| l.trim_start().starts_with('*'))
        .collect();
    assert_eq!(marked.len(), 1, "{stdout}");
    let chosen = inspect_json(&f.path("p"))["method"].clone();
    let chosen = chosen.as_str().expect("method name");
    assert!(
        lines[0].contains(&format!(": {chosen} patch, ")),
        "{stdout}"
    );
    assert!(marked[0].contains(chosen), "{stdout}");
    for (line, method) in lines[1..].iter().zip(["bsdiff", "zstd", "full"]) {
        assert!(line.contains(method), "{stdout}");
        assert!(
            line.contains(" bytes, applies in ") || line.contains("skipped: "),
            "{line}"
        );
    }
    // The full image's share is shown when it was made.
    assert!(
        lines[0].contains("of the full image") || lines[3].contains("skipped"),
        "{stdout}"
    );
}

#[test]
fn diff_json_reports_the_patch() {
    let f = Fixture::new();
    let out = f.diff("auto.dpatch", &["--json"]).output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let json = stdout_json(&out);
    let patch_len = f.dir.read("auto.dpatch").len() as u64;
    let header = inspect_json(&f.path("auto.dpatch"));
    assert_eq!(json["ok"], true);
    assert_eq!(json["method"], header["method"]);
    assert_eq!(json["patch_size"], patch_len);
    assert_eq!(json["new_size"], f.new.len() as u64);
    assert_eq!(json["old_size"], f.old.len() as u64);
    assert_eq!(json["patch"], f.path("auto.dpatch").display().to_string());
    assert!(json["seconds"].is_number());
    assert_eq!(json["apply_memory"], header["apply_memory"]);

    let candidates = json["candidates"].as_array().expect("candidates array");
    let methods: Vec<&str> = candidates
        .iter()
        .map(|c| c["method"].as_str().expect("name"))
        .collect();
    assert_eq!(methods, ["bsdiff", "zstd", "full"]);
    for c in candidates {
        match c["size"].as_u64() {
            Some(size) => {
                assert!(size >= patch_len, "auto kept a larger patch than {c}");
                assert!(c["apply_memory"].is_u64() && c["skipped"].is_null(), "{c}");
            }
            None => assert!(
                c["skipped"].is_string() && c["apply_memory"].is_null(),
                "{c}"
            ),
        }
    }
    let chosen = candidates
        .iter()
        .find(|c| c["method"] == json["method"])
        .expect("the chosen method is a candidate");
    assert_eq!(chosen["size"], patch_len);
    assert_eq!(chosen["apply_memory"], json["apply_memory"]);
    assert_eq!(json["full_size"], candidates[2]["size"]);

    // One method: one candidate.
    let out = f
        .diff("zstd.dpatch", &["--json", "--method", "zstd"])
        .output()
        .expect("run");
    let json = stdout_json(&out);
    assert_eq!(json["method"], "zstd");
    assert_eq!(json["candidates"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["full_size"], Value::Null);
}

fn inspect_json(patch: &Path) -> Value {
    let out = deltapack()
        .arg("inspect")
        .arg("--json")
        .arg(patch)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    stdout_json(&out)
}

#[test]
fn both_tools_inspect_a_patch_alike() {
    let f = Fixture::new();
    f.make("bsdiff.dpatch", &["--method", "bsdiff"]);
    f.make("full.dpatch", &["--method", "full"]);
    for (patch, method) in [("bsdiff.dpatch", "bsdiff"), ("full.dpatch", "full")] {
        let path = f.path(patch);
        let patch_len = f.dir.read(patch).len() as u64;
        let mut outputs = Vec::new();
        for tool in [deltapack as fn() -> Command, deltaapply] {
            for json in [false, true] {
                let mut cmd = tool();
                cmd.arg("inspect").arg(&path);
                if json {
                    cmd.arg("--json");
                }
                let out = cmd.output().expect("run");
                assert!(out.status.success(), "{}", text(&out.stderr));
                assert_eq!(text(&out.stderr), "");
                outputs.push(text(&out.stdout));
            }
        }
        assert_eq!(outputs[0], outputs[2], "the tools' text differs");
        assert_eq!(outputs[1], outputs[3], "the tools' JSON differs");

        let human = &outputs[0];
        assert!(human.contains("deltapack patch v1"), "{human}");
        assert!(
            human
                .lines()
                .any(|l| l.starts_with("method") && l.ends_with(method)),
            "{human}"
        );
        assert!(human.contains(&format!("{} bytes", f.new.len())), "{human}");
        assert!(human.contains("apply memory"), "{human}");
        if method == "full" {
            assert!(human.contains("none (full image)"), "{human}");
        } else {
            assert!(human.contains(&format!("{} bytes", f.old.len())), "{human}");
            assert!(human.contains("control "), "{human}");
        }

        let json: Value = serde_json::from_str(&outputs[1]).expect("JSON");
        assert_eq!(json["format_version"], 1);
        assert_eq!(json["method"], method);
        assert_eq!(json["target"]["size"], f.new.len() as u64);
        assert_eq!(json["payload"]["size"], patch_len - HEADER_LEN as u64);
        assert!(json["apply_memory"].as_u64().is_some_and(|m| m > 0));
        assert_eq!(json["signature"], Value::Null);
        if method == "full" {
            assert_eq!(json["source"], Value::Null);
            assert_eq!(json["streams"], Value::Null);
        } else {
            assert_eq!(json["source"]["size"], f.old.len() as u64);
            let s = &json["streams"];
            let sum: u64 = ["control", "diff", "extra"]
                .iter()
                .map(|k| s[k].as_u64().expect("size"))
                .sum();
            assert_eq!(sum, patch_len - HEADER_LEN as u64);
        }
    }
}

#[test]
fn a_full_image_applies_without_the_old_file() {
    let f = Fixture::new();
    f.make("full.dpatch", &["--method", "full"]);
    deltaapply()
        .arg("apply")
        .arg(f.path("full.dpatch"))
        .arg("-o")
        .arg(f.path("out"))
        .assert()
        .success();
    assert_same(&f.dir.read("out"), &f.new, "out");
}

#[test]
fn a_delta_without_its_old_file_is_refused() {
    let f = Fixture::new();
    f.make("p", &["--method", "bsdiff"]);
    let mut cmd = deltaapply();
    cmd.arg("apply")
        .arg(f.path("p"))
        .arg("-o")
        .arg(f.path("out"));
    let msg = assert_fails(&mut cmd, code::WRONG_SOURCE, &f.path("p"));
    assert!(msg.contains("needs the old file"), "{msg}");
    assert_files(&f.dir, &["new.bin", "old.bin", "p"]);
}

#[cfg(unix)]
#[test]
fn in_place_keeps_permission_bits() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.make("p", &[]);
    let installed = f.dir.write("app", &f.old);
    std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = deltaapply();
    cmd.arg("apply")
        .arg("--in-place")
        .arg(&installed)
        .arg(f.path("p"));
    cmd.assert().success();
    assert_same(&f.dir.read("app"), &f.new, "app");
    let mode = std::fs::metadata(&installed)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_files(&f.dir, &["app", "new.bin", "old.bin", "p"]);
}

#[cfg(unix)]
#[test]
fn a_new_output_takes_the_old_file_permission_bits() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.make("p", &[]);
    let old = f.path("old.bin");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    f.apply("old.bin", "p", "out", &[]).assert().success();
    let mode = std::fs::metadata(f.path("out"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700);
}

#[cfg(unix)]
#[test]
fn in_place_through_a_symlink_updates_the_target() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.make("p", &[]);
    // The link and its target in different directories: the temporary file must be
    // made beside the target, and the link must stay a link. A relative link, as
    // `app -> ../releases/app-1.0` installs have.
    let real_dir = Dir::new();
    let real = real_dir.write("app-1.0", &f.old);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let link = f.path("app");
    assert_eq!(real_dir.path().parent(), f.dir.path().parent());
    let relative = Path::new("..")
        .join(real_dir.path().file_name().expect("dir name"))
        .join("app-1.0");
    std::os::unix::fs::symlink(&relative, &link).expect("symlink");

    let mut cmd = deltaapply();
    cmd.arg("apply")
        .arg("--in-place")
        .arg(&link)
        .arg(f.path("p"));
    cmd.assert().success();
    let meta = std::fs::symlink_metadata(&link).expect("lstat");
    assert!(
        meta.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    assert_eq!(std::fs::read_link(&link).expect("readlink"), relative);
    assert_same(&real_dir.read("app-1.0"), &f.new, "link target");
    let mode = std::fs::metadata(&real).expect("stat").permissions().mode();
    assert_eq!(mode & 0o7777, 0o750);
    assert_files(&real_dir, &["app-1.0"]);
    assert_files(&f.dir, &["app", "new.bin", "old.bin", "p"]);
}

#[test]
fn a_failed_in_place_update_leaves_the_file() {
    let f = Fixture::new();
    f.make("p", &[]);
    let mut other = f.old.clone();
    other[1000] ^= 0xff;
    let installed = f.dir.write("app", &other);
    let mut cmd = deltaapply();
    cmd.arg("apply")
        .arg("--in-place")
        .arg(&installed)
        .arg(f.path("p"));
    let canonical = std::fs::canonicalize(&installed).expect("canonicalize");
    assert_fails(&mut cmd, code::WRONG_SOURCE, &canonical);
    assert_same(&f.dir.read("app"), &other, "app after the failure");
    assert_files(&f.dir, &["app", "new.bin", "old.bin", "p"]);
}

#[test]
fn a_wrong_old_file_exits_4_and_keeps_the_destination() {
    let f = Fixture::new();
    f.make("p", &[]);
    let mut wrong = f.old.clone();
    wrong[77] ^= 1;
    f.dir.write("wrong.bin", &wrong);
    // An existing destination must survive the failure untouched.
    f.dir.write("out", b"previous contents");
    let msg = assert_fails(
        &mut f.apply("wrong.bin", "p", "out", &[]),
        code::WRONG_SOURCE,
        &f.path("wrong.bin"),
    );
    assert!(
        msg.contains("is not the file this patch was made for"),
        "{msg}"
    );
    assert_eq!(f.dir.read("out"), b"previous contents");
    assert_files(&f.dir, &["new.bin", "old.bin", "out", "p", "wrong.bin"]);

    // A different size is caught before hashing, with the same code.
    f.dir.write("short.bin", &f.old[..1000]);
    assert_fails(
        &mut f.apply("short.bin", "p", "out2", &[]),
        code::WRONG_SOURCE,
        &f.path("short.bin"),
    );
    assert!(!f.path("out2").exists());
}

#[test]
fn a_corrupt_patch_exits_3() {
    let f = Fixture::new();
    f.make("p", &["--method", "bsdiff"]);
    let good = f.dir.read("p");
    let cases: [(&str, Vec<u8>); 4] = [
        ("payload-byte-flipped", {
            let mut b = good.clone();
            let i = good.len() - 10;
            b[i] ^= 0x40;
            b
        }),
        ("header-byte-flipped", {
            let mut b = good.clone();
            b[60] ^= 1;
            b
        }),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("not-a-patch", b"hello, I am not a patch".to_vec()),
    ];
    for (name, bytes) in cases {
        let patch = f.dir.write(name, &bytes);
        assert_fails(
            &mut f.apply("old.bin", name, "out", &[]),
            code::BAD_PATCH,
            &patch,
        );
        assert!(!f.path("out").exists(), "{name}: output written");
        for tool in [deltapack(), deltaapply()] {
            let mut cmd = tool;
            cmd.arg("inspect").arg(&patch);
            if name == "payload-byte-flipped" {
                // inspect checks the header only.
                cmd.assert().success();
            } else {
                assert_fails(&mut cmd, code::BAD_PATCH, &patch);
            }
        }
    }
    assert_files(
        &f.dir,
        &[
            "header-byte-flipped",
            "new.bin",
            "not-a-patch",
            "old.bin",
            "p",
            "payload-byte-flipped",
            "truncated",
        ],
    );
}

/// Recomputes a patch's payload SHA-256 and header checksum after its payload was
/// edited (format-spec/patch-v1.md §3.2, §3.4), so the applier gets past its hash
/// checks and fails only while decoding, after the output file was staged.
fn rehash(patch: &mut [u8]) {
    let payload = deltaapply::Sha256Digest::of(&patch[HEADER_LEN..]);
    patch[104..136].copy_from_slice(&payload.0);
    let check = deltaapply::Sha256Digest::of(&patch[..176]);
    patch[176..192].copy_from_slice(&check.0[..16]);
}

#[test]
fn a_payload_that_fails_while_decoding_leaves_nothing() {
    let f = Fixture::new();
    f.dir.write("out", b"previous contents");
    let mut expected = vec!["bad", "new.bin", "old.bin", "out"];
    for method in ["bsdiff", "zstd", "full"] {
        f.make(method, &["--method", method]);
        expected.push(method);
        expected.sort_unstable();
        let good = f.dir.read(method);
        let payload = good.len() - HEADER_LEN;
        for at in [
            HEADER_LEN + payload / 3,
            HEADER_LEN + payload / 2,
            good.len() - 4,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x5a;
            rehash(&mut bad);
            let patch = f.dir.write("bad", &bad);
            deltapack().arg("inspect").arg(&patch).assert().success();
            let msg = assert_fails(
                &mut f.apply("old.bin", "bad", "out", &[]),
                code::BAD_PATCH,
                &patch,
            );
            assert!(
                msg.contains("corrupt") || msg.contains("produced"),
                "{method} @{at}: {msg}"
            );
            assert_eq!(f.dir.read("out"), b"previous contents", "{method} @{at}");
            assert_files(&f.dir, &expected);
        }
    }
}

#[test]
fn a_patch_over_the_memory_limit_exits_5() {
    let f = Fixture::new();
    f.make("p", &[]);
    let msg = assert_fails(
        &mut f.apply("old.bin", "p", "out", &["--max-memory", "1MiB"]),
        code::LIMIT,
        &f.path("p"),
    );
    assert!(msg.contains("--max-memory"), "{msg}");
    assert_files(&f.dir, &["new.bin", "old.bin", "p"]);
    // Exactly the declared figure is enough.
    let need = inspect_json(&f.path("p"))["apply_memory"]
        .as_u64()
        .expect("apply_memory");
    f.apply("old.bin", "p", "out", &["--max-memory", &need.to_string()])
        .assert()
        .success();
    let below = (need - 1).to_string();
    assert_fails(
        &mut f.apply("old.bin", "p", "out2", &["--max-memory", &below]),
        code::LIMIT,
        &f.path("p"),
    );
}

#[test]
fn a_method_over_the_apply_memory_budget_exits_5() {
    let f = Fixture::new();
    let mut cmd = f.diff("p", &["--method", "zstd", "--max-apply-memory", "1MiB"]);
    let out = cmd.output().expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code::LIMIT), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("--max-apply-memory"),
        "{stderr}"
    );
    assert!(stderr.contains("zstd"), "{stderr}");
    assert_files(&f.dir, &["new.bin", "old.bin"]);
    // auto with a budget nothing fits fails the same way.
    let out = f
        .diff("p", &["--max-apply-memory", "1MiB"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(code::LIMIT),
        "{}",
        text(&out.stderr)
    );
    assert_files(&f.dir, &["new.bin", "old.bin"]);
}

/// The over-budget message says neither which input made the method too big nor what
/// to do (see the report: STYLE.md asks for "what failed, where, and what to do").
#[test]
fn the_over_budget_message_names_the_old_file() {
    let f = Fixture::new();
    let mut cmd = f.diff("p", &["--method", "zstd", "--max-apply-memory", "1MiB"]);
    assert_fails(&mut cmd, code::LIMIT, &f.path("old.bin"));
}

/// With nothing fitting, `auto` reports only the first method's need; the user has to
/// guess that the other methods were tried and what each would need.
#[test]
fn auto_over_budget_names_every_method() {
    let f = Fixture::new();
    let out = f
        .diff("p", &["--max-apply-memory", "1MiB"])
        .output()
        .expect("run");
    let stderr = text(&out.stderr);
    for method in ["bsdiff", "zstd", "full"] {
        assert!(stderr.contains(method), "{stderr}");
    }
}

#[test]
fn missing_files_exit_1() {
    let f = Fixture::new();
    f.make("p", &[]);
    let missing = f.path("missing.bin");
    // deltaapply: a missing patch, a missing old file.
    assert_fails(
        &mut f.apply("old.bin", "missing.bin", "out", &[]),
        code::FAILURE,
        &missing,
    );
    assert_fails(
        &mut f.apply("missing.bin", "p", "out", &[]),
        code::FAILURE,
        &missing,
    );
    let mut cmd = deltaapply();
    cmd.arg("inspect").arg(&missing);
    assert_fails(&mut cmd, code::FAILURE, &missing);
    // deltapack: a missing old file, a missing new file, an output directory that
    // does not exist.
    let mut cmd = deltapack();
    cmd.arg("diff")
        .arg(&missing)
        .arg(f.path("new.bin"))
        .arg("-o")
        .arg(f.path("q"));
    assert_fails(&mut cmd, code::FAILURE, &missing);
    let mut cmd = deltapack();
    cmd.arg("diff")
        .arg(f.path("old.bin"))
        .arg(&missing)
        .arg("-o")
        .arg(f.path("q"));
    assert_fails(&mut cmd, code::FAILURE, &missing);
    let nowhere = f.path("no-such-dir").join("q");
    let mut cmd = f.diff("no-such-dir/q", &[]);
    assert_fails(&mut cmd, code::FAILURE, nowhere.parent().expect("parent"));
    let mut cmd = deltapack();
    cmd.arg("inspect").arg(&missing);
    assert_fails(&mut cmd, code::FAILURE, &missing);
    assert_files(&f.dir, &["new.bin", "old.bin", "p"]);
}

/// A missing file is an I/O failure (1), not bad usage (2), also with `--in-place`.
#[test]
fn in_place_on_a_missing_file_exits_1() {
    let f = Fixture::new();
    f.make("p", &[]);
    let missing = f.path("missing.bin");
    let mut cmd = deltaapply();
    cmd.arg("apply")
        .arg("--in-place")
        .arg(&missing)
        .arg(f.path("p"));
    assert_fails(&mut cmd, code::FAILURE, &missing);
    assert_files(&f.dir, &["new.bin", "old.bin", "p"]);
}

#[test]
fn bad_usage_exits_2() {
    let f = Fixture::new();
    f.make("p", &[]);
    let usage = |cmd: &mut Command| {
        let out = cmd.output().expect("run");
        assert_eq!(
            out.status.code(),
            Some(code::USAGE),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        text(&out.stderr)
    };
    // apply with nowhere to write.
    let mut cmd = deltaapply();
    cmd.arg("apply").arg(f.path("old.bin")).arg(f.path("p"));
    let msg = usage(&mut cmd);
    assert!(
        msg.contains("-o NEW") && msg.contains("--in-place"),
        "{msg}"
    );
    // --in-place with both files.
    let mut cmd = deltaapply();
    cmd.args(["apply", "--in-place"])
        .arg(f.path("old.bin"))
        .arg(f.path("old.bin"))
        .arg(f.path("p"));
    usage(&mut cmd);
    // -o and --in-place together.
    let mut cmd = deltaapply();
    cmd.args(["apply", "--in-place"])
        .arg(f.path("old.bin"))
        .arg(f.path("p"))
        .arg("-o")
        .arg(f.path("x"));
    usage(&mut cmd);
    // Unknown method, level out of range, bad size, no subcommand.
    let msg = usage(&mut f.diff("q", &["--method", "xdelta"]));
    assert!(msg.contains("xdelta") && msg.contains("bsdiff"), "{msg}");
    usage(&mut f.diff("q", &["--level", "23"]));
    usage(&mut f.diff("q", &["--max-apply-memory", "lots"]));
    usage(&mut f.apply("old.bin", "p", "q", &["--max-memory", "3 parsecs"]));
    usage(&mut deltapack());
    usage(&mut deltaapply());
    assert_files(&f.dir, &["new.bin", "old.bin", "p"]);
}

#[test]
fn json_errors_go_to_stdout_with_the_exit_code() {
    let f = Fixture::new();
    f.make("p", &[]);
    let mut wrong = f.old.clone();
    wrong[5] ^= 1;
    f.dir.write("wrong.bin", &wrong);
    f.dir.write("garbage", b"garbage");

    let mut cases: Vec<(Command, i32, PathBuf)> = vec![
        (
            f.apply("wrong.bin", "p", "out", &["--json"]),
            code::WRONG_SOURCE,
            f.path("wrong.bin"),
        ),
        (
            f.apply("old.bin", "garbage", "out", &["--json"]),
            code::BAD_PATCH,
            f.path("garbage"),
        ),
        (
            f.apply("old.bin", "p", "out", &["--json", "--max-memory", "1MiB"]),
            code::LIMIT,
            f.path("p"),
        ),
        (
            f.apply("old.bin", "nope", "out", &["--json"]),
            code::FAILURE,
            f.path("nope"),
        ),
        (
            f.diff(
                "q",
                &["--json", "--method", "zstd", "--max-apply-memory", "1MiB"],
            ),
            code::LIMIT,
            PathBuf::new(),
        ),
    ];
    let mut inspect = deltapack();
    inspect.args(["inspect", "--json"]).arg(f.path("garbage"));
    cases.push((inspect, code::BAD_PATCH, f.path("garbage")));
    let mut inspect = deltaapply();
    inspect.args(["inspect", "--json"]).arg(f.path("garbage"));
    cases.push((inspect, code::BAD_PATCH, f.path("garbage")));
    let mut no_output = deltaapply();
    no_output
        .args(["apply", "--json"])
        .arg(f.path("old.bin"))
        .arg(f.path("p"));
    cases.push((no_output, code::USAGE, PathBuf::new()));

    for (mut cmd, code, file) in cases {
        let out = cmd.output().expect("run");
        assert_eq!(out.status.code(), Some(code), "{cmd:?}");
        assert_eq!(text(&out.stderr), "", "{cmd:?}");
        let json = stdout_json(&out);
        assert_eq!(json["ok"], false, "{json}");
        assert_eq!(json["exit_code"], code, "{json}");
        let error = json["error"].as_str().expect("error string");
        assert!(!error.is_empty());
        if !file.as_os_str().is_empty() {
            assert!(error.contains(&file.display().to_string()), "{json}");
        }
        let expected_keys = ["error", "exit_code", "ok"];
        let mut keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, expected_keys);
    }

    // Errors clap finds while parsing come before `--json` is known: they are plain
    // text on stderr, not JSON (README.md says JSON "also on failure"; see the report).
    let mut extra_arg = f.diff("q", &["--json"]);
    extra_arg.arg(f.path("extra-arg"));
    let out = extra_arg.output().expect("run");
    assert_eq!(out.status.code(), Some(code::USAGE));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).starts_with("error: "));
    assert_files(&f.dir, &["garbage", "new.bin", "old.bin", "p", "wrong.bin"]);
}

#[test]
fn apply_json_reports_what_was_written() {
    let f = Fixture::new();
    f.make("p", &[]);
    let out = f
        .apply("old.bin", "p", "out", &["--json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // No key is configured: one warning that the origin was not verified.
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("warning: "), "{stderr}");
    let json = stdout_json(&out);
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["origin"],
        serde_json::json!({"kind": "unverified", "signed_by": null})
    );
    assert_eq!(json["method"], inspect_json(&f.path("p"))["method"]);
    assert_eq!(json["target"]["size"], f.new.len() as u64);
    assert_eq!(json["source"]["size"], f.old.len() as u64);
    assert_eq!(json["output"], f.path("out").display().to_string());
    let header = inspect_json(&f.path("p"));
    assert_eq!(json["target"]["sha256"], header["target"]["sha256"]);
    assert_same(&f.dir.read("out"), &f.new, "out");
}

/// `inspect | head` must not be an error (STYLE.md: "a broken pipe is not an
/// error"). The read end is closed before the child can start writing.
#[test]
fn inspect_into_a_closed_pipe_is_not_an_error() {
    let f = Fixture::new();
    f.make("p", &[]);
    for bin in [Path::new(env!("CARGO_BIN_EXE_deltapack")), deltaapply_bin()] {
        let mut child = std::process::Command::new(bin)
            .arg("inspect")
            .arg(f.path("p"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", bin.display());
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A stdout that cannot be written (a full disk) is an I/O failure: exit 1 with a
/// message, not a panic.
#[cfg(target_os = "linux")]
#[test]
fn inspect_into_a_full_disk_exits_1() {
    let f = Fixture::new();
    f.make("p", &[]);
    for bin in [Path::new(env!("CARGO_BIN_EXE_deltapack")), deltaapply_bin()] {
        let full = std::fs::File::create("/dev/full").expect("open /dev/full");
        let out = std::process::Command::new(bin)
            .arg("inspect")
            .arg(f.path("p"))
            .stdout(full)
            .output()
            .expect("run");
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code::FAILURE),
            "{}: {stderr}",
            bin.display()
        );
        assert!(
            stderr.starts_with("error: ") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[test]
fn diff_output_does_not_depend_on_runs_or_threads() {
    let f = Fixture::new();
    f.make("a", &[]);
    f.make("b", &[]);
    f.make("one", &["--threads", "1"]);
    f.make("two", &["--threads", "2"]);
    let a = f.dir.read("a");
    assert_same(&f.dir.read("b"), &a, "two runs");
    assert_same(&f.dir.read("one"), &a, "--threads 1 against the default");
    assert_same(&f.dir.read("two"), &a, "--threads 2 against the default");
    // Writing over an existing patch is fine and gives the same bytes.
    f.make("a", &[]);
    assert_same(&f.dir.read("a"), &a, "a patch written over");

    // Small windows make a larger file span many zstd jobs, where a thread-dependent
    // encoder would show (see roundtrip.rs).
    let (old, new) = release_pair(2 << 20, 12);
    f.dir.write("old.bin", &old);
    f.dir.write("new.bin", &new);
    let budget = (deltaapply::container::BASE_APPLY_MEMORY + (3 << 17)).to_string();
    let args = ["--method", "bsdiff", "--max-apply-memory", &budget];
    f.make("big1", &[&args[..], &["--threads", "1"]].concat());
    f.make("big2", &[&args[..], &["--threads", "2"]].concat());
    assert_same(
        &f.dir.read("big2"),
        &f.dir.read("big1"),
        "large file, 2 threads against 1",
    );
}

/// Decodes standard base64 (the body of a PEM file).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:#04x}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The base64 body of a PEM secret key file, and the 32-byte seed inside it (RFC 8410:
/// the DER ends with the seed as an OCTET STRING inside the privateKey OCTET STRING).
fn secret_key_material(path: &Path) -> (String, [u8; 32]) {
    let pem = std::fs::read_to_string(path).expect("read secret key");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let der = base64_decode(&body);
    // PKCS#8 v1 for ed25519 is exactly 48 bytes; the seed is the last 32.
    assert_eq!(der.len(), 48, "PKCS#8 v1 (RFC 8410 §7)");
    assert_eq!(
        &der[..16],
        &[
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20
        ]
    );
    (body, der[16..].try_into().unwrap())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_writes_a_private_secret_key_and_a_public_key_file() {
    let f = Fixture::new();
    let (secret, public) = (f.path("k.key"), f.path("k.pub"));
    let keygen = |args: &[&str]| {
        let mut cmd = deltapack();
        cmd.arg("keygen")
            .arg("--secret-key")
            .arg(&secret)
            .arg("--public-key")
            .arg(&public)
            .args(args);
        cmd.output().expect("run")
    };
    let out = keygen(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let key = deltaapply::PublicKey::from_file(&public).expect("public key file parses");
    let file = std::fs::read_to_string(&public).unwrap();
    assert_eq!(
        file,
        format!("# deltapack public key, key id {}\n{key}\n", key.id()),
        "one comment line, one key line"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], key.to_string());
    assert_eq!(lines[1], format!("key id {}", key.id()));
    #[cfg(unix)]
    {
        assert_eq!(mode(&secret), 0o600, "secret key mode");
        assert_eq!(mode(&public) & 0o600, 0o600);
    }
    // The secret never reaches the terminal, in any form.
    let (body, seed) = secret_key_material(&secret);
    let json = keygen(&["--force", "--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let (body2, seed2) = secret_key_material(&secret);
    assert_ne!(seed, seed2, "--force makes a new key");
    for (out, body, seed) in [(&out, &body, seed), (&json, &body2, seed2)] {
        for stream in [text(&out.stdout), text(&out.stderr)] {
            for secret in [
                body.as_str(),
                &body[..20],
                &hex(&seed),
                &hex(&seed)[..16],
                "PRIVATE KEY",
            ] {
                assert!(
                    !stream.contains(secret),
                    "secret material printed: {stream}"
                );
            }
        }
    }
    let value = stdout_json(&json);
    let key2 = deltaapply::PublicKey::from_file(&public).unwrap();
    assert_eq!(value["ok"], true);
    assert_eq!(value["public_key"], key2.to_string());
    assert_eq!(value["key_id"], key2.id().to_string());
    assert_ne!(key, key2);

    // Without --force, existing files are kept, whichever of the two exists.
    let before = (f.dir.read("k.key"), f.dir.read("k.pub"));
    let out = keygen(&[]);
    assert_eq!(out.status.code(), Some(code::FAILURE));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!((f.dir.read("k.key"), f.dir.read("k.pub")), before);
    std::fs::remove_file(&secret).unwrap();
    let out = keygen(&[]);
    assert_eq!(out.status.code(), Some(code::FAILURE));
    assert!(
        !secret.exists(),
        "a secret key was written beside a kept public key"
    );
    assert_eq!(f.dir.read("k.pub"), before.1);

    // One path for both is refused.
    let out = deltapack()
        .args(["keygen", "--secret-key"])
        .arg(f.path("same"))
        .arg("--public-key")
        .arg(f.path("same"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code::FAILURE));
    assert!(!f.path("same").exists());
}

#[test]
fn key_show_prints_the_public_half() {
    let f = Fixture::new();
    let key = f.keygen("k");
    let out = deltapack()
        .args(["key", "show", "--secret-key"])
        .arg(f.path("k.key"))
        .arg("--public-key")
        .arg(f.path("again.pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().next(),
        Some(key.to_string().as_str())
    );
    assert_eq!(f.dir.read("again.pub"), f.dir.read("k.pub"));
    let (body, seed) = secret_key_material(&f.path("k.key"));
    assert!(!text(&out.stdout).contains(&body) && !text(&out.stdout).contains(&hex(&seed)));
    // A public key file is not a secret key.
    let out = deltapack()
        .args(["key", "show", "--secret-key"])
        .arg(f.path("k.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code::FAILURE));
    assert!(
        text(&out.stderr).contains("PKCS#8"),
        "{}",
        text(&out.stderr)
    );
}

/// A patch signed with `deltapack diff --secret-key` applies with its public key given
/// as a file, as the literal line, and through `DELTAAPPLY_KEY`; inspect shows it.
#[test]
fn a_signed_patch_applies_with_its_key() {
    let f = Fixture::new();
    let key = f.keygen("release");
    let secret = f.path("release.key");
    let out = f
        .diff("p", &["--json", "--secret-key", secret.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(stdout_json(&out)["signed_by"], key.id().to_string());

    let header = inspect_json(&f.path("p"));
    assert_eq!(header["signature"]["algorithm"], "ed25519");
    assert_eq!(header["signature"]["public_key"], key.to_string());
    assert_eq!(header["signature"]["key_id"], key.id().to_string());
    assert_eq!(header["signature"]["verifies"], true);
    let shown = deltaapply()
        .arg("inspect")
        .arg(f.path("p"))
        .arg("--key")
        .arg(f.path("release.pub"))
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(
        shown.contains(&format!("ed25519 by key {}, verifies", key.id())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("trusted: signed by key {}", key.id())),
        "{shown}"
    );

    let pubfile = f.path("release.pub").display().to_string();
    let line = key.to_string();
    let trusted = serde_json::json!({"kind": "trusted", "key_id": key.id().to_string()});
    for (how, args, env) in [
        ("--key FILE", vec!["--key", pubfile.as_str()], None),
        ("--key LINE", vec!["--key", line.as_str()], None),
        ("DELTAAPPLY_KEY", vec![], Some(line.as_str())),
    ] {
        let out_name = format!("out {how}");
        let mut cmd = f.apply("old.bin", "p", &out_name, &args);
        cmd.arg("--json");
        if let Some(env) = env {
            cmd.env("DELTAAPPLY_KEY", env);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{how}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{how}: no warning with a key");
        assert_eq!(stdout_json(&out)["origin"], trusted, "{how}");
        assert_same(&f.dir.read(&out_name), &f.new, how);
    }
    // --key wins over the environment.
    let other = f.keygen("other");
    let out = f
        .apply("old.bin", "p", "out env", &["--key", &pubfile])
        .env("DELTAAPPLY_KEY", other.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Signed by a key that is not the configured one: exit 6, the installed file kept
/// byte for byte, no temporary file; the message names both keys.
#[test]
fn a_patch_signed_by_another_key_exits_6_and_keeps_the_file() {
    let f = Fixture::new();
    let trusted = f.keygen("trusted");
    let other = f.keygen("other");
    let other_secret = f.path("other.key").display().to_string();
    f.make("p", &["--secret-key", &other_secret]);
    f.make("unsigned", &[]);
    f.dir.write("installed.bin", &f.old);
    let names = f.dir.names();
    for (patch, env) in [
        ("p", false),
        ("p", true),
        ("unsigned", false),
        ("unsigned", true),
    ] {
        let mut cmd = deltaapply();
        cmd.arg("apply")
            .arg("--in-place")
            .arg(f.path("installed.bin"))
            .arg(f.path(patch));
        if env {
            cmd.env("DELTAAPPLY_KEY", trusted.to_string());
        } else {
            cmd.arg("--key").arg(f.path("trusted.pub"));
        }
        let context = format!("{patch}, key from env: {env}");
        let message = assert_fails(&mut cmd, code::UNTRUSTED, &f.path(patch));
        if patch == "p" {
            assert!(
                message.contains(&other.id().to_string())
                    && message.contains(&trusted.id().to_string()),
                "{context}: {message}"
            );
        } else {
            assert!(message.contains("not signed"), "{context}: {message}");
        }
        assert_same(&f.dir.read("installed.bin"), &f.old, &context);
        assert_eq!(f.dir.names(), names, "{context}: files changed");
        // JSON too.
        cmd.arg("--json");
        let out = cmd.output().unwrap();
        let json = stdout_json(&out);
        assert_eq!(json["ok"], false);
        assert_eq!(json["exit_code"], code::UNTRUSTED);
    }
    // inspect agrees with apply.
    let out = deltaapply()
        .arg("inspect")
        .arg(f.path("p"))
        .arg("--key")
        .arg(f.path("trusted.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code::UNTRUSTED));
    assert!(
        text(&out.stdout).contains("REFUSED"),
        "{}",
        text(&out.stdout)
    );
}

/// No key configured: the patch applies (every hash is still checked), with one
/// warning that says whether it was signed, by which key, and how to configure one.
#[test]
fn without_a_key_a_patch_applies_with_a_warning() {
    let f = Fixture::new();
    let key = f.keygen("k");
    let secret = f.path("k.key").display().to_string();
    f.make("signed", &["--secret-key", &secret]);
    f.make("unsigned", &[]);
    for (patch, says) in [
        ("signed", format!("signed by key {}", key.id())),
        ("unsigned", "it is unsigned".to_string()),
    ] {
        let out = f
            .apply("old.bin", patch, "out", &["--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("warning: the origin of"), "{stderr}");
        assert!(stderr.contains(&says), "{stderr}");
        assert!(
            stderr.contains("--key") && stderr.contains("DELTAAPPLY_KEY"),
            "{stderr}"
        );
        let signed_by = (patch == "signed").then(|| key.id().to_string());
        assert_eq!(
            stdout_json(&out)["origin"],
            serde_json::json!({"kind": "unverified", "signed_by": signed_by})
        );
        assert_same(&f.dir.read("out"), &f.new, patch);
    }
    // A bit flipped in the signature: refused even without a key.
    let mut bytes = f.dir.read("signed");
    bytes[HEADER_LEN - 1] ^= 0x01;
    f.dir.write("flipped", &bytes);
    let message = assert_fails(
        &mut f.apply("old.bin", "flipped", "out2", &[]),
        code::UNTRUSTED,
        &f.path("flipped"),
    );
    assert!(message.contains("does not match"), "{message}");
    assert!(!f.path("out2").exists());
}

#[test]
fn bad_keys_exit_2() {
    let f = Fixture::new();
    f.keygen("k");
    f.make("p", &[]);
    let flipped_hex = "ed25519:ABCD".to_string();
    for (what, args, env) in [
        ("garbage --key", vec!["--key", "ed25519:1234"], None),
        ("uppercase hex", vec!["--key", flipped_hex.as_str()], None),
        ("missing file", vec!["--key", "no-such.pub"], None),
        ("secret key as --key", vec!["--key", "SECRET"], None),
        ("garbage env", vec![], Some("ed25519:zz")),
    ] {
        let secret = f.path("k.key").display().to_string();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "SECRET" { secret.as_str() } else { a })
            .collect();
        let mut cmd = f.apply("old.bin", "p", "out", &args);
        if let Some(env) = env {
            cmd.env("DELTAAPPLY_KEY", env);
        }
        let out = cmd.output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code::USAGE), "{what}: {stderr}");
        assert!(stderr.starts_with("error: "), "{what}: {stderr}");
        if what == "secret key as --key" {
            assert!(stderr.contains("secret key"), "{stderr}");
            assert!(!stderr.contains("PRIVATE"), "{stderr}");
        }
        if what == "garbage env" {
            assert!(stderr.contains("DELTAAPPLY_KEY"), "{stderr}");
        }
        assert!(!f.path("out").exists(), "{what}");
    }
    // A blank DELTAAPPLY_KEY is no key.
    let out = f
        .apply("old.bin", "p", "out", &[])
        .env("DELTAAPPLY_KEY", " ")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn diff_with_a_bad_or_exposed_secret_key() {
    let f = Fixture::new();
    f.keygen("k");
    // Not a key: exit 1 before any diffing, no patch written.
    let pubfile = f.path("k.pub").display().to_string();
    let message = assert_fails(
        &mut f.diff("p", &["--secret-key", &pubfile]),
        code::FAILURE,
        &f.path("k.pub"),
    );
    assert!(message.contains("PKCS#8"), "{message}");
    assert!(!f.path("p").exists());
    // Readable by others: a warning, and the patch is still made and signed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secret = f.path("k.key");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = f
            .diff("p", &["--secret-key", secret.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("warning: ") && stderr.contains("chmod 600"),
            "{stderr}"
        );
        assert_eq!(inspect_json(&f.path("p"))["signature"]["verifies"], true);
    }
}

/// Our secret key files are what OpenSSL reads and writes (PKCS#8, RFC 8410): it
/// derives the same public key from ours, and a key it generates signs patches that
/// apply with the public key OpenSSL reports.
#[test]
fn openssl_reads_and_writes_our_secret_keys() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("NOTICE: openssl not found; skipping the OpenSSL interoperability test");
        return;
    }
    let f = Fixture::new();
    let ours = f.keygen("ours");
    let raw_public = |secret: &Path| -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(secret)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl pkey: {}", text(&out.stderr));
        // SubjectPublicKeyInfo for ed25519: a 12-byte prefix, then the 32 key bytes.
        assert_eq!(out.stdout.len(), 44);
        out.stdout[12..].to_vec()
    };
    assert_eq!(raw_public(&f.path("ours.key")), ours.to_bytes());

    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(f.path("theirs.key"))
        .status()
        .unwrap();
    assert!(status.success());
    let theirs = raw_public(&f.path("theirs.key"));
    let line = format!("ed25519:{}", hex(&theirs));
    let secret = f.path("theirs.key").display().to_string();
    f.make("p", &["--secret-key", &secret]);
    let out = f
        .apply("old.bin", "p", "out", &["--key", &line])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_same(&f.dir.read("out"), &f.new, "signed with an OpenSSL key");
}
