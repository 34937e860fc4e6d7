//! One build spread over CI jobs: `build --plan` (no secret key), N `build --shard K/N`
//! processes (no secret key), `build --merge` (the only one signing), byte-identical
//! to a single-job build with the same inputs, key and `--created`, in a directory and
//! in a bucket (s3s-fs); a missing shard or a plan gone stale publishes nothing.

mod common;

use assert_cmd::Command;
use common::s3::{S3Server, aws_env};
use common::{Dir, Rng, release_pair, snapshot};
use deltapack::keys::SecretKey;
use serde_json::Value;

const CREATED: [&str; 3] = [
    "2026-11-01T10:00:00Z",
    "2026-11-02T10:00:00Z",
    "2026-11-03T10:00:00Z",
];
const ARTIFACTS: [&str; 3] = ["a.bin", "b.bin", "c.bin"];

struct Setup {
    dir: Dir,
    key: SecretKey,
}

impl Setup {
    fn new() -> Setup {
        let dir = Dir::new();
        let key = SecretKey::from_seed(&[21; 32]);
        key.save(&dir.join("release.key"), false).unwrap();
        let mut rng = Rng::new(3);
        for i in 0..CREATED.len() {
            std::fs::create_dir_all(dir.join(&i.to_string())).unwrap();
        }
        for (n, name) in ARTIFACTS.iter().enumerate() {
            let (mut bytes, _) = release_pair(50_000 + 10_000 * n, n as u64);
            for i in 0..CREATED.len() {
                if i > 0 {
                    for _ in 0..20 {
                        let at = rng.below(bytes.len());
                        bytes[at] = rng.byte();
                    }
                }
                dir.write(&format!("{i}/{name}"), &bytes);
            }
        }
        for i in 0..CREATED.len() {
            let tree = dir.join(&format!("{i}/tree"));
            std::fs::create_dir_all(&tree).unwrap();
            std::fs::write(tree.join("notes.txt"), format!("release {i}\n").repeat(30)).unwrap();
        }
        Setup { dir, key }
    }

    fn public(&self) -> String {
        self.key.public_key().to_string()
    }

    fn std_cmd(&self, vars: &[(&str, String)]) -> std::process::Command {
        let mut std = std::process::Command::new(env!("CARGO_BIN_EXE_deltapack"));
        aws_env(&mut std, self.dir.path(), vars);
        std.current_dir(self.dir.path());
        std
    }

    fn cmd(&self, vars: &[(&str, String)]) -> Command {
        let mut cmd = Command::from_std(self.std_cmd(vars));
        cmd.timeout(std::time::Duration::from_secs(300));
        cmd
    }

    /// `deltapack build` of release `i` into `out` with `extra` flags (no key given).
    fn build(&self, out: &str, i: usize, extra: &[&str], vars: &[(&str, String)]) -> Command {
        let mut cmd = Command::from_std(self.build_std(out, i, extra, vars));
        cmd.timeout(std::time::Duration::from_secs(300));
        cmd
    }

    fn build_std(
        &self,
        out: &str,
        i: usize,
        extra: &[&str],
        vars: &[(&str, String)],
    ) -> std::process::Command {
        let mut cmd = self.std_cmd(vars);
        cmd.args([
            "build",
            "--out",
            out,
            "--product",
            "fan",
            "--jobs",
            "2",
            "--json",
        ]);
        cmd.args(["--version", &format!("1.{i}"), "--created", CREATED[i]]);
        for name in ARTIFACTS.iter().chain(&["tree"]) {
            cmd.arg("--artifact").arg(format!(
                "{name}={}",
                self.dir.join(&format!("{i}/{name}")).display()
            ));
        }
        cmd.args(extra);
        cmd
    }

    fn key_flags(&self) -> Vec<String> {
        vec![
            "--secret-key".into(),
            self.dir.join("release.key").display().to_string(),
        ]
    }

    /// A whole single-job build.
    fn whole(&self, out: &str, i: usize, vars: &[(&str, String)]) {
        let flags = self.key_flags();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.build(out, i, &flags, vars).assert().success();
    }

    /// Release `i` by `--plan`, `n` shards as concurrent processes, and `--merge`.
    fn fan_out(&self, out: &str, i: usize, n: usize, vars: &[(&str, String)]) -> Value {
        let plan = self.dir.join(&format!("plan-{i}.json"));
        let plan_s = plan.to_str().unwrap();
        let pubkey = self.public();
        let planned = self
            .build(out, i, &["--plan", plan_s, "--trust", &pubkey], vars)
            .assert()
            .success();
        let planned: Value = serde_json::from_slice(&planned.get_output().stdout).unwrap();
        let shards: Vec<_> = (1..=n)
            .map(|k| {
                let shard = format!("{k}/{n}");
                // Shards hold no key: none is given, and none is in the environment.
                self.build_std(
                    out,
                    i,
                    &["--plan", plan_s, "--shard", &shard, "--trust", &pubkey],
                    vars,
                )
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        let mut made = Vec::new();
        for child in shards {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let json: Value = serde_json::from_slice(&out.stdout).unwrap();
            made.extend(
                json["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|j| j.as_u64().unwrap()),
            );
        }
        made.sort();
        let all: Vec<u64> = (0..planned["jobs"].as_u64().unwrap()).collect();
        assert_eq!(made, all, "every job made by exactly one shard");
        let mut flags = self.key_flags();
        flags.extend(["--plan".into(), plan_s.into(), "--merge".into()]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let merged = self.build(out, i, &flags, vars).assert().success();
        serde_json::from_slice(&merged.get_output().stdout).unwrap()
    }
}

fn without_shards(files: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    files
        .into_iter()
        .filter(|(n, _)| !n.starts_with("shards/"))
        .collect()
}

#[test]
fn three_shards_and_a_merge_publish_what_one_job_does_in_a_directory() {
    let s = Setup::new();
    let one = s.dir.join("one");
    let fan = s.dir.join("fan");
    let (one_s, fan_s) = (one.to_str().unwrap(), fan.to_str().unwrap());
    for i in 0..2 {
        s.whole(one_s, i, &[]);
        s.whole(fan_s, i, &[]);
    }
    s.whole(one_s, 2, &[]);
    let merged = s.fan_out(fan_s, 2, 3, &[]);
    assert_eq!(merged["version"], "1.2");
    // 3 file artifacts x 2 bases, each patch made by a shard and checked by the merge.
    let patches = merged["patches"].as_array().unwrap();
    assert!(patches.len() >= 8, "{merged:#}");
    let sharded = snapshot(&fan);
    assert!(
        sharded.iter().all(|(n, _)| !n.starts_with("shards/")),
        "shard files left"
    );
    assert_eq!(
        sharded,
        snapshot(&one),
        "N=3 and N=1 must publish the same bytes"
    );
    s.cmd(&[])
        .args([
            "verify",
            fan_s,
            "--key",
            &s.public(),
            "--at",
            "2026-11-10T00:00:00Z",
        ])
        .assert()
        .success();
}

#[test]
fn a_missing_shard_or_a_stale_plan_publishes_nothing() {
    let s = Setup::new();
    let out = s.dir.join("pub");
    let out_s = out.to_str().unwrap();
    s.whole(out_s, 0, &[]);
    s.whole(out_s, 1, &[]);
    let plan = s.dir.join("plan.json");
    let plan_s = plan.to_str().unwrap();
    let pubkey = s.public();
    s.build(out_s, 2, &["--plan", plan_s, "--trust", &pubkey], &[])
        .assert()
        .success();
    // Only shard 1 of 2 runs.
    s.build(
        out_s,
        2,
        &["--plan", plan_s, "--shard", "1/2", "--trust", &pubkey],
        &[],
    )
    .assert()
    .success();
    let before = snapshot(&out);
    let manifest = std::fs::read(out.join("manifest.toml")).unwrap();
    let mut flags = s.key_flags();
    flags.extend(["--plan".into(), plan_s.into(), "--merge".into()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let output = s.build(out_s, 2, &flags, &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("run every --shard"),
        "{json}"
    );
    assert_eq!(std::fs::read(out.join("manifest.toml")).unwrap(), manifest);
    assert_eq!(snapshot(&out), before, "a failed merge wrote nothing");

    // Another release published meanwhile makes the plan stale: shards and merge refuse.
    s.whole(out_s, 2, &[]);
    let output = s
        .build(
            out_s,
            2,
            &["--plan", plan_s, "--shard", "2/2", "--trust", &pubkey],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("already published"),
        "{json}"
    );

    // A shard needs a key to trust and no secret key.
    let output = s
        .build(out_s, 2, &["--plan", plan_s, "--shard", "2/2"], &[])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn shards_and_a_merge_in_a_bucket_match_a_local_single_job_build() {
    let server = S3Server::start();
    server.create_bucket("releases");
    let env = server.env();
    let s = Setup::new();
    let url = "s3://releases/fan";
    let local = s.dir.join("local");
    let local_s = local.to_str().unwrap();
    for i in 0..2 {
        s.whole(url, i, &env);
        s.whole(local_s, i, &[]);
    }
    s.whole(local_s, 2, &[]);
    s.fan_out(url, 2, 3, &env);
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
    let store = deltapack::store::s3::S3Store::new(
        deltapack::store::s3::S3Url::parse(url).unwrap(),
        &config,
    )
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|(k, _)| {
            let b = store.get(&k, u64::MAX).unwrap().unwrap();
            (k, b)
        })
        .collect();
    files.sort();
    assert!(
        files.iter().all(|(n, _)| !n.starts_with("shards/")),
        "shard objects left"
    );
    assert_eq!(without_shards(files), snapshot(&local));
}
