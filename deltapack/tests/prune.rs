//! `deltapack prune`: what clients may still need stays (everything the current and the
//! previous manifest name, and what manifests replaced within the grace period name),
//! the rest goes; `--dry-run` lists the same and removes nothing; in a directory and in
//! a bucket (s3s-fs, `common::s3`).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use assert_cmd::Command;
use common::s3::{S3Server, aws_env};
use common::{Dir, release_pair, snapshot};
use deltaapply::manifest::Manifest;
use deltapack::keys::SecretKey;
use serde_json::Value;

const CREATED: [&str; 5] = [
    "2026-11-01T10:00:00Z",
    "2026-11-02T10:00:00Z",
    "2026-11-03T10:00:00Z",
    "2026-11-04T10:00:00Z",
    "2026-11-05T10:00:00Z",
];

fn deltapack(home: &Path, vars: &[(&str, String)]) -> Command {
    let mut std = std::process::Command::new(env!("CARGO_BIN_EXE_deltapack"));
    aws_env(&mut std, home, vars);
    let mut cmd = Command::from_std(std);
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

/// Five releases of one file published to `out` with `--keep 1`, so that each build
/// leaves files only older manifests name.
fn publish(work: &Dir, out: &str, vars: &[(&str, String)]) -> SecretKey {
    let key = SecretKey::from_seed(&[77; 32]);
    key.save(&work.join("k.key"), false).unwrap();
    let (mut app, _) = release_pair(60_000, 4);
    for (i, created) in CREATED.iter().enumerate() {
        app.extend_from_slice(format!("release {i}\n").repeat(40).as_bytes());
        let file = work.write(&format!("app-{i}"), &app);
        deltapack(work.path(), vars)
            .args(["build", "--out", out, "--secret-key"])
            .arg(work.join("k.key"))
            .args([
                "--product",
                "p",
                "--version",
                &format!("1.{i}"),
                "--keep",
                "1",
            ])
            .arg("--artifact")
            .arg(format!("app={}", file.display()))
            .args(["--created", created, "--jobs", "1"])
            .assert()
            .success();
    }
    key
}

fn prune(
    work: &Dir,
    out: &str,
    key: &SecretKey,
    at: &str,
    extra: &[&str],
    vars: &[(&str, String)],
) -> Value {
    let assert = deltapack(work.path(), vars)
        .args([
            "prune",
            out,
            "--key",
            &key.public_key().to_string(),
            "--at",
            at,
            "--json",
        ])
        .args(extra)
        .assert()
        .success();
    serde_json::from_slice(&assert.get_output().stdout).unwrap()
}

fn names(v: &Value) -> Vec<String> {
    v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// The files a manifest names.
fn named(manifest: &[u8]) -> BTreeSet<String> {
    deltapack::store::references(&Manifest::parse(manifest).unwrap())
        .into_keys()
        .collect()
}

/// Runs the same checks on a publish location, reading its files through `files`.
fn check_prune(
    work: &Dir,
    out: &str,
    vars: &[(&str, String)],
    files: &dyn Fn() -> Vec<(String, Vec<u8>)>,
) {
    let key = publish(work, out, vars);
    let read = |name: &str| {
        files()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("{name} is missing"))
    };
    let current = named(&read("manifest.toml"));
    let previous = named(&read("manifests/4.toml"));
    let oldest = named(&read("manifests/1.toml"));
    let only_old: BTreeSet<_> = oldest.difference(&current).cloned().collect();
    assert!(
        !only_old.is_empty(),
        "with --keep 1 the first release's files drop out"
    );

    // A day after the last build, every manifest was replaced within the 7-day grace.
    let v = prune(work, out, &key, "2026-11-06T10:00:00Z", &[], vars);
    assert_eq!(names(&v), Vec::<String>::new(), "{v}");
    assert_eq!(v["kept_manifests"], serde_json::json!([5, 4, 3, 2, 1]));

    // A month later only the current and the previous manifest may still be held.
    let before = files();
    let dry = prune(
        work,
        out,
        &key,
        "2026-12-06T00:00:00Z",
        &["--dry-run"],
        vars,
    );
    assert_eq!(files(), before, "--dry-run removed something");
    assert_eq!(dry["kept_manifests"], serde_json::json!([5, 4]));
    let v = prune(work, out, &key, "2026-12-06T00:00:00Z", &[], vars);
    assert_eq!(names(&v), names(&dry), "--dry-run lists what is removed");
    let removed: BTreeSet<String> = names(&v).into_iter().collect();
    for f in only_old.iter().filter(|f| !previous.contains(*f)) {
        assert!(removed.contains(f), "{f} is named by no held manifest: {v}");
    }
    assert!(removed.contains("manifests/1.toml") && removed.contains("manifests/3.toml.sig"));
    let after: BTreeSet<String> = files().into_iter().map(|(n, _)| n).collect();
    for f in current.iter().chain(&previous) {
        assert!(
            after.contains(f),
            "{f} is named by the current or previous manifest"
        );
    }
    for f in &removed {
        assert!(!after.contains(f), "{f} was reported removed but is there");
    }
    assert!(after.contains("manifests/4.toml"));
    // Nothing left to do; and the location still verifies.
    let v = prune(work, out, &key, "2026-12-06T00:00:00Z", &[], vars);
    assert_eq!(names(&v), Vec::<String>::new());
    deltapack(work.path(), vars)
        .args(["verify", out, "--key", &key.public_key().to_string()])
        .args(["--at", "2026-12-06T00:00:00Z"])
        .assert()
        .success();
    // An untrusted key prunes nothing.
    let other = SecretKey::from_seed(&[1; 32]).public_key().to_string();
    let before = files();
    deltapack(work.path(), vars)
        .args(["prune", out, "--key", &other, "--grace-days", "0"])
        .assert()
        .code(6);
    assert_eq!(files(), before);
}

#[test]
fn prune_keeps_what_clients_may_hold_in_a_directory() {
    let work = Dir::new();
    let out = work.join("publish");
    let out_str = out.to_str().unwrap().to_string();
    check_prune(&work, &out_str, &[], &|| snapshot(&out));

    // Without the copy of the previous manifest (a directory published before
    // manifest history), nothing is removed.
    std::fs::remove_file(out.join("manifests/4.toml")).unwrap();
    let key = SecretKey::from_seed(&[77; 32]);
    let before = snapshot(&out);
    let output = deltapack(work.path(), &[])
        .args(["prune", &out_str, "--key", &key.public_key().to_string()])
        .args(["--grace-days", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no copy of the previous manifest"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(snapshot(&out), before);
}

#[test]
fn prune_keeps_what_clients_may_hold_in_a_bucket() {
    let server = S3Server::start();
    server.create_bucket("releases");
    let work = Dir::new();
    let env = server.env();
    let config = deltapack::store::aws::AwsConfig {
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        credentials: Some(deltapack::store::aws::Credentials {
            access_key_id: common::s3::ACCESS_KEY.into(),
            secret_access_key: zeroize::Zeroizing::new(common::s3::SECRET_KEY.into()),
            session_token: None,
        }),
        credentials_from: "the test".into(),
    };
    let url = deltapack::store::s3::S3Url::parse("s3://releases/p").unwrap();
    let store = deltapack::store::s3::S3Store::new(url, &config).unwrap();
    let files = || {
        let mut v: Vec<(String, Vec<u8>)> = store
            .list("")
            .unwrap()
            .into_iter()
            .map(|(k, _)| {
                let b = store.get(&k, u64::MAX).unwrap().unwrap();
                (k, b)
            })
            .collect();
        v.sort();
        v
    };
    check_prune(&work, "s3://releases/p", &env, &files);
}
