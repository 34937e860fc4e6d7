//! Fault injection on every durable step of a single-file install (issue 15.3): each
//! write into the temporary file, its fsync, the rename and the directory fsync, and
//! for `update` the state file's steps too, made in turn to crash the process (abort,
//! as on a power cut) or to fail with EIO, ENOSPC or EACCES (`deltaapply_apply::fault`,
//! compiled in only with the test-only `crash-hook` feature). Every time the target is
//! byte-identical to the old file or the new one, a plain rerun completes, and after
//! it no temporary file or lock is left. An fsync that fails is never followed by the
//! rename. Needs the deltaapply binary built with the hook (`scripts/test.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use common::{Dir, deltaapply_bin, release_pair};

const KINDS: [&str; 4] = ["crash", "eio", "enospc", "eacces"];

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

/// What is in a device's directory besides what a test put there.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

/// A job run against a fresh device directory holding the old release.
struct Job {
    /// The argument list after `deltaapply`, with `{T}` for the target's path.
    args: Vec<String>,
    old: Vec<u8>,
    new: Vec<u8>,
    /// Names the job may leave beside the target when it succeeds.
    keep: &'static [&'static str],
}

impl Job {
    fn run(&self, device: &Dir, env: &[(&str, String)]) -> Output {
        let target = device.join("app.bin");
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.replace("{T}", &target.to_string_lossy()))
            .collect();
        let mut cmd = std::process::Command::new(deltaapply_bin());
        cmd.args(&args).env_remove("DELTAAPPLY_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn device(&self) -> Dir {
        let dir = Dir::new();
        dir.write("app.bin", &self.old);
        dir
    }

    /// The fault points a clean run reaches, in order.
    fn points(&self) -> Vec<String> {
        let device = self.device();
        let out = self.run(&device, &[("DELTAAPPLY_FAULT_TRACE", "1".into())]);
        assert!(out.status.success(), "clean run: {out:?}");
        assert_eq!(device.read("app.bin"), self.new, "clean run");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("fault point "))
            .map(|l| l.split_once(": ").unwrap().1.to_string())
            .collect()
    }

    /// Fails every point in turn with every kind; returns (runs, ended old, ended new).
    fn sweep(&self, what: &str) -> (usize, usize, usize) {
        let points = self.points();
        assert!(
            points.iter().filter(|p| *p == "Write").count() >= 2
                && ["Fsync", "Rename", "DirFsync"]
                    .iter()
                    .all(|k| points.iter().any(|p| p == k)),
            "{what}: the sweep must reach several writes and every kind of step: {points:?}"
        );
        let first_dir_fsync = points.iter().position(|p| p == "DirFsync").unwrap();
        let (mut runs, mut old, mut new) = (0, 0, 0);
        for kind in KINDS {
            for (i, point) in points.iter().enumerate() {
                let n = i + 1;
                let device = self.device();
                let out = self.run(
                    &device,
                    &[
                        ("DELTAAPPLY_FAULT_AT", n.to_string()),
                        ("DELTAAPPLY_FAULT", kind.to_string()),
                    ],
                );
                let case = format!("{what}: {kind} at point {n} ({point})");
                runs += 1;
                assert!(!out.status.success(), "{case}: the fault went unnoticed");
                if kind == "crash" {
                    assert_eq!(out.status.code(), None, "{case}: not killed: {out:?}");
                } else {
                    // The error (in the --json report on stdout) names the file.
                    let said = String::from_utf8_lossy(&out.stdout);
                    assert!(said.contains("app.bin"), "{case}: {said}");
                }
                let got = device.read("app.bin");
                if got == self.old {
                    old += 1;
                } else if got == self.new {
                    new += 1;
                } else {
                    panic!("{case}: the target is neither the old file nor the new one");
                }
                // Up to the target's rename nothing may have replaced it: an fsync
                // error in particular is never followed by the rename.
                if i < first_dir_fsync {
                    assert!(got == self.old, "{case}: replaced before its rename");
                }
                let again = self.run(&device, &[]);
                assert!(
                    again.status.success(),
                    "{case}: the rerun failed: {again:?}"
                );
                assert_eq!(device.read("app.bin"), self.new, "{case}: after the rerun");
                assert_eq!(
                    leftovers(device.path(), self.keep),
                    Vec::<String>::new(),
                    "{case}: left behind after the rerun"
                );
            }
        }
        (runs, old, new)
    }
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltapack/crash-hook"
)]
fn every_durable_step_of_apply_fails_safely() {
    let (old, new) = release_pair(600 << 10, 15);
    let work = Dir::new();
    let old_path = work.write("old.bin", &old);
    let new_path = work.write("new.bin", &new);
    let patch = work.join("p.dpatch");
    deltapack()
        .args(["diff", "--method", "full"])
        .arg(&old_path)
        .arg(&new_path)
        .arg("-o")
        .arg(&patch)
        .assert()
        .success();
    let job = Job {
        args: vec![
            "apply".into(),
            "--in-place".into(),
            "{T}".into(),
            patch.to_string_lossy().into_owned(),
            "--json".into(),
        ],
        old,
        new,
        keep: &["app.bin"],
    };
    let (runs, ended_old, ended_new) = job.sweep("apply --in-place");
    eprintln!("apply: {runs} faulted runs, {ended_old} left the old file, {ended_new} the new one");
    assert_eq!(runs, ended_old + ended_new);
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltapack/crash-hook"
)]
fn every_durable_step_of_update_fails_safely() {
    let (old, new) = release_pair(600 << 10, 16);
    let publisher = Dir::new();
    deltapack()
        .arg("keygen")
        .arg("--secret-key")
        .arg(publisher.join("release.key"))
        .arg("--public-key")
        .arg(publisher.join("release.pub"))
        .assert()
        .success();
    let out: PathBuf = publisher.join("publish");
    let now = deltaapply::manifest::Timestamp::now().0;
    for (i, (version, content)) in [("1.0", &old), ("1.1", &new)].into_iter().enumerate() {
        let file = publisher.write(&format!("{version}.bin"), content);
        deltapack()
            .arg("build")
            .arg("--out")
            .arg(&out)
            .arg("--secret-key")
            .arg(publisher.join("release.key"))
            .args([
                "--product",
                "app",
                "--channel",
                "stable",
                "--version",
                version,
            ])
            .arg("--artifact")
            .arg(format!("app.bin={}", file.display()))
            .args([
                "--created",
                &deltaapply::manifest::Timestamp(now - 7200 + 3600 * i as u64).to_string(),
            ])
            .assert()
            .success();
    }
    let job = Job {
        args: vec![
            "update".into(),
            "--from".into(),
            out.to_string_lossy().into_owned(),
            "--key".into(),
            publisher.join("release.pub").to_string_lossy().into_owned(),
            "--target".into(),
            "{T}".into(),
            "--json".into(),
        ],
        old,
        new,
        keep: &["app.bin", ".app.bin.deltaapply-state"],
    };
    let (runs, ended_old, ended_new) = job.sweep("update");
    eprintln!(
        "update: {runs} faulted runs, {ended_old} left the old file, {ended_new} the new one"
    );
    assert_eq!(runs, ended_old + ended_new);
}
