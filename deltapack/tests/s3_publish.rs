//! Publishing to an S3-compatible bucket, against a real server (s3s-fs on 127.0.0.1,
//! `common::s3`): releases built from fresh "runners" (nothing local kept between
//! builds) are byte for byte what a local-directory build makes, `verify` checks the
//! bucket, a build downloads only the bases it needs, refused credentials and missing
//! buckets are named, a killed build leaves the previous release served whole, and a
//! device updates over HTTP from the bucket's public endpoint.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use common::s3::{S3Server, aws_env};
use common::{Dir, Rng, release_pair, snapshot};
use deltaapply::manifest::Manifest;
use deltapack::keys::SecretKey;
use deltapack::store::aws::{AwsConfig, Credentials};
use deltapack::store::s3::{S3Store, S3Url};
use serde_json::Value;

const BUCKET: &str = "releases";
const PREFIX: &str = "app/stable";
const CREATED: [&str; 4] = [
    "2026-11-01T10:00:00Z",
    "2026-11-02T10:00:00Z",
    "2026-11-03T10:00:00Z",
    "2026-11-04T10:00:00Z",
];
const CHECK_AT: &str = "2026-11-10T00:00:00Z";

fn url() -> String {
    format!("s3://{BUCKET}/{PREFIX}")
}

/// The inputs of every release: a key, and per version a file artifact and a tree.
struct Inputs {
    dir: Dir,
    key: SecretKey,
}

impl Inputs {
    fn new() -> Inputs {
        let dir = Dir::new();
        let key = SecretKey::from_seed(&[9; 32]);
        key.save(&dir.join("release.key"), false).unwrap();
        let (mut app, _) = release_pair(120_000, 11);
        let mut rng = Rng::new(5);
        for i in 0..CREATED.len() {
            if i > 0 {
                for _ in 0..30 {
                    let at = rng.below(app.len());
                    app[at] = rng.byte();
                }
                let at = rng.below(app.len());
                app.splice(at..at, (0..500).map(|_| rng.byte()));
            }
            dir.write(&format!("app-{i}.bin"), &app);
            let tree = dir.join(&format!("tree-{i}"));
            std::fs::create_dir_all(tree.join("lib")).unwrap();
            std::fs::write(tree.join("README"), format!("release {i}\n").repeat(50)).unwrap();
            std::fs::write(tree.join("lib/core.so"), &app[..40_000]).unwrap();
            std::fs::write(tree.join("lib/static.dat"), vec![7u8; 10_000]).unwrap();
        }
        Inputs { dir, key }
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("release.key")
    }

    fn public(&self) -> String {
        self.key.public_key().to_string()
    }

    /// `deltapack build` of release `1.<i>` into `out`, run from `runner` (its HOME,
    /// TMPDIR and working directory), with `vars` as its AWS environment.
    fn build(&self, runner: &Path, out: &str, i: usize, vars: &[(&str, String)]) -> Command {
        let mut cmd = Command::from_std(self.build_std(runner, out, i, vars));
        cmd.timeout(Duration::from_secs(300));
        cmd
    }

    fn build_std(
        &self,
        runner: &Path,
        out: &str,
        i: usize,
        vars: &[(&str, String)],
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_deltapack"));
        for sub in ["home", "tmp"] {
            std::fs::create_dir_all(runner.join(sub)).unwrap();
        }
        aws_env(&mut cmd, &runner.join("home"), vars);
        cmd.current_dir(runner)
            .env("TMPDIR", runner.join("tmp"))
            .arg("build")
            .args(["--out", out])
            .arg("--secret-key")
            .arg(self.key_path())
            .args(["--product", "s3-app", "--version", &format!("1.{i}")])
            .arg("--artifact")
            .arg(format!(
                "app.bin={}",
                self.dir.join(&format!("app-{i}.bin")).display()
            ))
            .arg("--artifact")
            .arg(format!(
                "tree={}",
                self.dir.join(&format!("tree-{i}")).display()
            ))
            .args(["--created", CREATED[i], "--jobs", "2", "--json"]);
        cmd
    }

    /// `deltapack verify --json` of `at`: exit code, JSON, and the error's text (from the
    /// JSON's `error`, else stderr).
    fn verify(&self, runner: &Path, at: &str, vars: &[(&str, String)]) -> (i32, Value, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_deltapack"));
        std::fs::create_dir_all(runner.join("home")).unwrap();
        aws_env(&mut cmd, &runner.join("home"), vars);
        let out = cmd
            .current_dir(runner)
            .args([
                "verify",
                at,
                "--key",
                &self.public(),
                "--at",
                CHECK_AT,
                "--json",
            ])
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let error = json["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
        (out.status.code().unwrap_or(-1), json, error)
    }
}

/// A client of the test server's bucket, for the test's own reads.
fn client(server: &S3Server, bucket: &str) -> S3Store {
    let config = AwsConfig {
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        credentials: Some(Credentials {
            access_key_id: common::s3::ACCESS_KEY.into(),
            secret_access_key: zeroize::Zeroizing::new(common::s3::SECRET_KEY.into()),
            session_token: None,
        }),
        credentials_from: "the test".into(),
    };
    let url = S3Url::parse(&format!("s3://{bucket}/{PREFIX}")).unwrap();
    S3Store::new(url, &config).unwrap()
}

/// Every object under the prefix, as (relative key, bytes), sorted.
fn bucket_files(store: &S3Store) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|(key, _)| {
            let bytes = store.get(&key, u64::MAX).unwrap().unwrap();
            (key, bytes)
        })
        .collect();
    files.sort();
    files
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// What a build of the next release must download: the manifest, its signature, and
/// the full image of each older artifact it patches from (one per distinct content).
fn needed_bytes(store: &S3Store) -> u64 {
    let manifest = store.get("manifest.toml", 1 << 24).unwrap().unwrap();
    let sig = store.get("manifest.toml.sig", 1 << 20).unwrap().unwrap();
    let m = Manifest::parse(&manifest).unwrap();
    let mut fulls = std::collections::BTreeSet::new();
    for (_, a) in m.all_artifacts() {
        fulls.insert((a.full.sha256, a.full.size));
    }
    manifest.len() as u64 + sig.len() as u64 + fulls.iter().map(|(_, s)| s).sum::<u64>()
}

#[test]
fn releases_from_fresh_runners_match_a_local_build_and_verify_from_the_bucket() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = Inputs::new();
    let env = server.env();
    let store = client(&server, BUCKET);
    let local = Dir::new();
    let local_out = local.join("publish");
    for i in 0..3 {
        let expected_download = (i > 0).then(|| needed_bytes(&store));
        // A fresh runner each time: nothing but the inputs and the bucket.
        let runner = Dir::new();
        let output = inputs
            .build(runner.path(), &url(), i, &env)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "build 1.{i}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let json = json_of(&output);
        assert_eq!(json["out"], url());
        let downloaded = u64_of(&json["downloaded_bytes"]);
        let bucket_total: u64 = bucket_files(&store)
            .iter()
            .map(|(_, b)| b.len() as u64)
            .sum();
        match expected_download {
            None => assert_eq!(downloaded, 0, "the first build has nothing to download"),
            Some(expected) => {
                assert_eq!(
                    downloaded, expected,
                    "build 1.{i} downloads only the manifest and its bases"
                );
                eprintln!(
                    "build 1.{i}: downloaded {downloaded} bytes; the bucket holds {bucket_total} bytes"
                );
            }
        }
        let local_runner = Dir::new();
        let output = inputs
            .build(local_runner.path(), local_out.to_str().unwrap(), i, &[])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "local build 1.{i}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            bucket_files(&store),
            snapshot(&local_out),
            "release 1.{i}: the bucket must hold exactly the local directory's files"
        );
        let (code, report, stderr) = inputs.verify(Dir::new().path(), &url(), &env);
        assert_eq!(code, 0, "verify 1.{i}: {report:#} {stderr}");
        assert_eq!(report["version"], format!("1.{i}"));
        if i > 0 {
            assert!(u64_of(&report["patches_applied"]) >= 2, "{report:#}");
        }
    }
    // A patch from 1.0 to 1.2 exists and applied: three releases, two bases each.
    let m = Manifest::parse(&store.get("manifest.toml", 1 << 24).unwrap().unwrap()).unwrap();
    assert_eq!(m.previous.len(), 2);
    assert!(m.artifacts.iter().all(|a| a.patches.len() == 2), "{m:?}");
}

#[test]
fn a_cache_keeps_bases_between_builds_on_one_runner() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = Inputs::new();
    let env = server.env();
    let runner = Dir::new();
    let cache = runner.join("cache");
    let store = client(&server, BUCKET);
    let signed_size = || {
        ["manifest.toml", "manifest.toml.sig"]
            .iter()
            .map(|f| store.get(f, 1 << 24).unwrap().map_or(0, |b| b.len() as u64))
            .sum::<u64>()
    };
    let mut downloads = Vec::new();
    for i in 0..3 {
        let expected = signed_size();
        let output = inputs
            .build(runner.path(), &url(), i, &env)
            .arg("--cache")
            .arg(&cache)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        downloads.push((u64_of(&json_of(&output)["downloaded_bytes"]), expected));
    }
    // Each build found its bases in the cache (put there by the build before): it
    // downloaded the manifest and its signature only.
    for (i, (got, expected)) in downloads.iter().enumerate() {
        assert_eq!(got, expected, "build 1.{i} with a warm cache");
    }
    let manifest = store.get("manifest.toml", 1 << 24).unwrap().unwrap();
    // A corrupted cache entry is not trusted: it is downloaded again.
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    std::fs::write(&entry, b"not the full image").unwrap();
    let output = inputs
        .build(runner.path(), &url(), 3, &env)
        .arg("--cache")
        .arg(&cache)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(u64_of(&json_of(&output)["downloaded_bytes"]) > manifest.len() as u64 + 10_000);
    let (code, report, stderr) = inputs.verify(Dir::new().path(), &url(), &env);
    assert_eq!(code, 0, "{report:#} {stderr}");
}

#[test]
fn refused_credentials_and_missing_buckets_are_named_and_change_nothing() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = Inputs::new();
    let env = server.env();
    let runner = Dir::new();
    let output = inputs
        .build(runner.path(), &url(), 0, &env)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = client(&server, BUCKET);
    let before = bucket_files(&store);

    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()));
    let output = inputs
        .build(runner.path(), &url(), 1, &wrong)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = json_of(&output)["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("refused access to bucket \"releases\""),
        "{error}"
    );
    assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
    assert!(
        !error.contains("not-the-secret"),
        "the secret was echoed: {error}"
    );
    let (code, _, stderr) = inputs.verify(runner.path(), &url(), &wrong);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("refused access to bucket \"releases\""),
        "{stderr}"
    );

    let missing = "s3://no-such-bucket/app/stable";
    let output = inputs
        .build(runner.path(), missing, 1, &env)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = json_of(&output)["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("bucket \"no-such-bucket\" does not exist"),
        "{error}"
    );
    let (code, _, stderr) = inputs.verify(runner.path(), missing, &env);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bucket \"no-such-bucket\" does not exist"),
        "{stderr}"
    );

    // No credentials at all: anonymous requests, refused by this server.
    let anonymous: Vec<_> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .cloned()
        .collect();
    let output = inputs
        .build(runner.path(), &url(), 1, &anonymous)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = json_of(&output)["error"].as_str().unwrap().to_string();
    assert!(error.contains("refused access"), "{error}");
    assert_eq!(
        bucket_files(&store),
        before,
        "a refused build changed the bucket"
    );
}

#[test]
fn credentials_from_a_profile_as_the_aws_cli_reads_them() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = Inputs::new();
    let runner = Dir::new();
    let aws = runner.join("home/.aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
             [publisher]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            common::s3::ACCESS_KEY,
            common::s3::SECRET_KEY
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile publisher]\nregion = us-east-1\nendpoint_url = {}\n",
            server.endpoint()
        ),
    )
    .unwrap();
    let vars = [("AWS_PROFILE", "publisher".to_string())];
    let output = inputs
        .build(runner.path(), &url(), 0, &vars)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (code, report, stderr) = inputs.verify(runner.path(), &url(), &vars);
    assert_eq!(code, 0, "{report:#} {stderr}");
    // The default profile's credentials are refused, and the message says whose they were.
    let output = inputs
        .build(
            runner.path(),
            &url(),
            1,
            &[("AWS_ENDPOINT_URL", server.endpoint())],
        )
        .output()
        .unwrap();
    let error = json_of(&output)["error"].as_str().unwrap().to_string();
    assert!(error.contains("profile default of"), "{error}");
}

#[test]
fn a_killed_build_leaves_the_previous_release_served_whole_and_a_rerun_completes() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = Inputs::new();
    let env = server.env();
    let store = client(&server, BUCKET);
    let output = inputs
        .build(Dir::new().path(), &url(), 0, &env)
        .output()
        .unwrap();
    assert!(output.status.success());
    // How long a whole build of 1.1 takes here: the kill points are spread over it.
    let probe = {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let runner = Dir::new();
        assert!(
            inputs
                .build(runner.path(), &url(), 0, &server.env())
                .output()
                .unwrap()
                .status
                .success()
        );
        let started = std::time::Instant::now();
        assert!(
            inputs
                .build(runner.path(), &url(), 1, &server.env())
                .output()
                .unwrap()
                .status
                .success()
        );
        started.elapsed()
    };
    let objects_of_1_0 = store.list("").unwrap().len();
    let mut outcomes = (0, 0);
    let mut between = 0;
    let mut torn = 0;
    for step in 0..8u32 {
        let delay = probe * step / 8;
        let runner = Dir::new();
        let mut child = inputs
            .build_std(runner.path(), &url(), 1, &env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        // Whatever point it was killed at, the bucket serves one release, complete;
        // or, killed between the signature's upload and the manifest's, the new
        // signature beside the old manifest: a pair every client refuses (its
        // installed release untouched) until a rerun publishes the new manifest.
        let (code, report, stderr) = inputs.verify(Dir::new().path(), &url(), &env);
        if code != 0 && mismatched_pair_only(&report) {
            // The rerun below must then publish 1.1.
            torn += 1;
            break;
        }
        assert_eq!(code, 0, "killed after {delay:?}: {report:#} {stderr}");
        match report["version"].as_str() {
            Some("1.0") => {
                outcomes.0 += 1;
                // New content uploaded, manifest not yet: clients still get 1.0 whole.
                if store.list("").unwrap().len() > objects_of_1_0 {
                    between += 1;
                }
            }
            Some("1.1") => {
                outcomes.1 += 1;
                break;
            }
            other => panic!("killed after {delay:?}: serves {other:?}"),
        }
    }
    eprintln!(
        "killed builds: {} left 1.0 ({between} of them after uploading new content), {} \
         completed 1.1 ({torn} killed between the signature and the manifest, then rerun)",
        outcomes.0, outcomes.1
    );
    assert!(
        outcomes.0 > 0,
        "no kill landed before the manifest was written"
    );
    if outcomes.1 == 0 {
        // The rerun after the interrupted ones publishes 1.1.
        let output = inputs
            .build(Dir::new().path(), &url(), 1, &env)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (code, report, _) = inputs.verify(Dir::new().path(), &url(), &env);
    assert_eq!(code, 0);
    assert_eq!(report["version"], "1.1");
    let m = Manifest::parse(&store.get("manifest.toml", 1 << 24).unwrap().unwrap()).unwrap();
    assert_eq!(m.sequence, 2);
}

/// Whether `verify`'s only complaint is a signature that does not match the manifest
/// beside it (the content it would name then goes unread, and is listed as missing
/// by name only when the manifest could not be trusted).
fn mismatched_pair_only(report: &Value) -> bool {
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    problems.iter().any(|p| {
        p["file"] == "manifest.toml.sig"
            && p["problem"]
                .as_str()
                .is_some_and(|t| t.contains("does not match the signed bytes"))
    }) && problems.iter().all(|p| {
        p["file"] == "manifest.toml.sig"
            || p["file"] == "manifest.toml"
            || p["problem"]
                .as_str()
                .is_some_and(|t| t.contains("No such file"))
    })
}

#[test]
fn a_device_updates_over_http_from_the_buckets_public_endpoint() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = Inputs::new();
    let env = server.env();
    for i in 0..2 {
        let output = inputs
            .build(Dir::new().path(), &url(), i, &env)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // s3s-fs with credentials refuses unsigned GETs, as a private bucket does; the
    // devices' endpoint is a second s3s-fs on the same storage without credentials,
    // as a bucket with public read (or a CDN in front of it) is.
    let public = server.public_reader();
    let from = format!("{}/{BUCKET}/{PREFIX}/", public.endpoint());
    let device = Dir::new();
    let target = device.join("app.bin");
    std::fs::write(
        &target,
        std::fs::read(inputs.dir.join("app-0.bin")).unwrap(),
    )
    .unwrap();
    let key_file = device.join("release.pub");
    std::fs::write(&key_file, format!("{}\n", inputs.public())).unwrap();
    let output = common::deltaapply_cmd(Duration::from_secs(120))
        .args(["update", "--from", &from, "--artifact", "app.bin", "--json"])
        .arg("--key")
        .arg(&key_file)
        .arg("--target")
        .arg(&target)
        .output()
        .unwrap();
    let json = json_of(&output);
    assert!(output.status.success(), "{json:#}");
    assert_eq!(json["newest"]["version"], "1.1", "{json:#}");
    assert_eq!(json["plan"]["route"], "patch", "{json:#}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(inputs.dir.join("app-1.bin")).unwrap()
    );
    // The authenticated endpoint refuses the same unsigned requests.
    let private = format!("{}/{BUCKET}/{PREFIX}/", server.endpoint());
    let output = common::deltaapply_cmd(Duration::from_secs(120))
        .args([
            "check",
            "--from",
            &private,
            "--artifact",
            "app.bin",
            "--json",
        ])
        .arg("--key")
        .arg(&key_file)
        .arg("--target")
        .arg(&target)
        .args(["--retries", "0"])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn transient_errors_are_retried_and_persistent_ones_reported() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = Inputs::new();
    // The first four connections get 503 SlowDown: the build retries and publishes.
    let flaky = common::s3::FlakyProxy::start(server.port(), 4);
    let mut env = server.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", flaky.endpoint()));
    let output = inputs
        .build(Dir::new().path(), &url(), 0, &env)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(flaky.refused.load(std::sync::atomic::Ordering::SeqCst), 4);
    let (code, report, error) = inputs.verify(Dir::new().path(), &url(), &server.env());
    assert_eq!(code, 0, "{report:#} {error}");

    // An endpoint that never stops answering 503 fails the build, saying so.
    let down = common::s3::FlakyProxy::start(server.port(), usize::MAX);
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", down.endpoint()));
    let output = inputs
        .build(Dir::new().path(), &url(), 1, &env)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = json_of(&output)["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("HTTP 503") && error.contains("SlowDown"),
        "{error}"
    );
    assert_eq!(
        down.refused.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "five attempts"
    );
}

#[test]
fn large_objects_go_up_in_parts_and_read_back_whole() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let store = client(&server, BUCKET).with_part_size(deltapack::store::s3::MIN_PART_SIZE);
    let mut rng = Rng::new(77);
    let big: Vec<u8> = (0..(2 * deltapack::store::s3::MIN_PART_SIZE + 123_457))
        .map(|_| rng.byte())
        .collect();
    store.put("full/big.dpatch", &big).unwrap();
    assert_eq!(store.parts_uploaded(), 3, "5 MiB, 5 MiB and the rest");
    assert_eq!(store.uploaded(), big.len() as u64);
    assert_eq!(
        store.list("full").unwrap(),
        [("full/big.dpatch".to_string(), big.len() as u64)]
    );
    assert!(store.get("full/big.dpatch", u64::MAX).unwrap().unwrap() == big);
    // Replaced whole by a second upload; an object of one part's size goes in one PUT.
    let smaller = &big[..deltapack::store::s3::MIN_PART_SIZE + 1];
    store.put("full/big.dpatch", smaller).unwrap();
    assert_eq!(store.parts_uploaded(), 5);
    assert!(store.get("full/big.dpatch", u64::MAX).unwrap().unwrap() == smaller);
    store
        .put("small", &big[..deltapack::store::s3::MIN_PART_SIZE])
        .unwrap();
    assert_eq!(store.parts_uploaded(), 5);

    // Refused credentials: refused at the start, named, nothing written.
    let config = AwsConfig {
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        credentials: Some(Credentials {
            access_key_id: common::s3::ACCESS_KEY.into(),
            secret_access_key: zeroize::Zeroizing::new("not-the-secret".into()),
            session_token: None,
        }),
        credentials_from: "the test".into(),
    };
    let url = S3Url::parse(&format!("s3://{BUCKET}/{PREFIX}")).unwrap();
    let refused = S3Store::new(url, &config).unwrap().with_part_size(1);
    let err = refused.put("full/other.dpatch", &big).unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        text.contains("refused access") && text.contains(BUCKET),
        "{text}"
    );
    assert_eq!(refused.parts_uploaded(), 0);
    assert_eq!(store.get("full/other.dpatch", u64::MAX).unwrap(), None);
}
