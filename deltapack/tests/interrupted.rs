//! What a killed applier leaves behind, and two appliers of one target at once: a
//! real `deltaapply apply --in-place` on a 64 MiB file is killed with SIGKILL while it
//! writes its temporary file; the installed file must be the old or the new one, the
//! full-size temporary file is left (nothing can remove it in a killed process), and
//! the next run removes it. While another process holds the target's lock an applier
//! refuses to start (exit 10) and removes nothing.
//!
//! `--wait` makes it wait for the holder instead. Run `cargo build -p deltaapply-cli` first (or `cargo test --workspace`).

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::{Dir, Kind, fill};
use deltaapply::lock::TargetLock;

const SIZE: usize = 64 << 20;
const BUSY: i32 = 10;

/// A 64 MiB installed file and a full-image patch to a new one (a full image needs no
/// diffing, so the test spends its time applying).
struct Fixture {
    dir: Dir,
    old: Vec<u8>,
    new: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = Dir::new();
        let old = fill(Kind::Random, SIZE, 1);
        let mut new = old.clone();
        new[SIZE / 2..SIZE / 2 + 4096].fill(7);
        dir.write("new.bin", &new);
        let out = Process::new(env!("CARGO_BIN_EXE_deltapack"))
            .args(["diff", "--method", "full", "--level", "1"])
            .arg(dir.join("new.bin"))
            .arg(dir.join("new.bin"))
            .arg("-o")
            .arg(dir.join("p"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(dir.join("new.bin")).unwrap();
        dir.write("app", &old);
        Fixture { dir, old, new }
    }

    fn apply(&self) -> Process {
        let mut cmd = Process::new(common::deltaapply_bin());
        cmd.env_remove("DELTAAPPLY_KEY")
            .arg("apply")
            .arg("--in-place")
            .arg(self.dir.join("app"))
            .arg(self.dir.join("p"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// The applier's temporary files beside `app`.
    fn temporaries(&self) -> Vec<PathBuf> {
        self.dir
            .names()
            .into_iter()
            .filter(|n| n.starts_with(".app.") && n.ends_with(".deltaapply-tmp"))
            .map(|n| self.dir.join(&n))
            .collect()
    }

    fn installed_is_old_or_new(&self) {
        let got = self.dir.read("app");
        assert!(
            got == self.old || got == self.new,
            "the installed file is neither the old nor the new one"
        );
    }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_temporary_file_left_by_sigkill_is_removed_by_the_next_run() {
    let f = Fixture::new();
    let mut killed_mid_write = 0;
    for _ in 0..10 {
        f.dir.write("app", &f.old);
        let mut child = f.apply().spawn().unwrap();
        // Killed once its temporary file holds some but not all of the output.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut caught = false;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if f.temporaries()
                .iter()
                .any(|t| (1..SIZE as u64).contains(&size(t)))
            {
                child.kill().unwrap();
                caught = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = child.wait().unwrap();
        f.installed_is_old_or_new();
        if !caught {
            assert!(status.success(), "the applier failed on its own");
            continue;
        }
        killed_mid_write += 1;
        let left = f.temporaries();
        assert_eq!(left.len(), 1, "a SIGKILL leaves the temporary file");
        let out = f.apply().output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(f.dir.read("app"), f.new);
        assert_eq!(
            f.dir.names(),
            ["app", "p"],
            "the next run left something beside the target"
        );
        if killed_mid_write == 3 {
            break;
        }
    }
    assert!(
        killed_mid_write >= 1,
        "the applier was never caught writing its temporary file"
    );
}

#[test]
fn an_applier_refuses_a_target_another_holds_and_removes_nothing() {
    let f = Fixture::new();
    let lock = TargetLock::acquire(&f.dir.join("app")).unwrap();
    // Written after the lock is taken: taking it removes stale temporary files.
    let stale = f
        .dir
        .write(".app.Qw3rTy.deltaapply-tmp", b"left by a killed run");
    let out = f.apply().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(BUSY), "{stderr}");
    assert!(
        stderr.contains("being updated by another") && stderr.contains("app"),
        "{stderr}"
    );
    assert_eq!(f.dir.read("app"), f.old);
    assert!(
        stale.exists(),
        "removed a temporary file under another's lock"
    );
    drop(lock);

    let out = f.apply().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.dir.read("app"), f.new);
    assert_eq!(f.dir.names(), ["app", "p"]);
}

#[test]
fn a_lock_file_left_by_a_killed_applier_does_not_block_the_next() {
    let f = Fixture::new();
    // A killed applier's lock file stays; the kernel released its lock.
    f.dir.write(".app.deltaapply-lock", b"");
    let out = f.apply().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.dir.names(), ["app", "p"]);
}

#[test]
fn with_wait_an_applier_waits_for_the_holder_and_then_applies() {
    let f = Fixture::new();
    let lock = TargetLock::acquire(&f.dir.join("app")).unwrap();
    let mut child = f.apply().args(["--wait", "60"]).spawn().unwrap();
    // Still waiting while the lock is held, and the target untouched.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "--wait gave up while the lock was held"
    );
    assert_eq!(f.dir.read("app"), f.old);
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.dir.read("app"), f.new);

    // A wait that runs out is the same refusal as none.
    f.dir.write("app", &f.old);
    let lock = TargetLock::acquire(&f.dir.join("app")).unwrap();
    let out = f.apply().args(["--wait", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(BUSY));
    assert_eq!(f.dir.read("app"), f.old);
    drop(lock);
}

/// Plan case 26: a link planted at the lock file's name (dangling, or to a file
/// outside the directory) is refused, not followed: nothing is created or changed
/// where it points, and the target keeps its old bytes.
#[test]
fn a_link_planted_at_the_lock_name_is_refused_and_nothing_is_written_through_it() {
    let f = Fixture::new();
    let outside = Dir::new();
    let lock = f.dir.join(".app.deltaapply-lock");
    // Dangling: a followed `create` would make outside/made-by-the-lock.
    std::os::unix::fs::symlink(outside.join("made-by-the-lock"), &lock).unwrap();
    let out = f.apply().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "applied through a planted lock link");
    assert!(
        stderr.contains(".app.deltaapply-lock") && stderr.contains("symbolic link"),
        "the refusal names the lock file and why: {stderr}"
    );
    assert!(outside.names().is_empty(), "{:?}", outside.names());
    assert_eq!(f.dir.read("app"), f.old);

    // To an existing file: refused the same way; the file keeps its bytes.
    std::fs::remove_file(&lock).unwrap();
    outside.write("precious", b"not the applier's");
    std::os::unix::fs::symlink(outside.join("precious"), &lock).unwrap();
    let out = f.apply().output().unwrap();
    assert!(!out.status.success());
    assert_eq!(outside.read("precious"), b"not the applier's");
    assert_eq!(outside.names(), ["precious"]);
    assert_eq!(f.dir.read("app"), f.old);
    assert!(f.temporaries().is_empty());
}

/// Plan case 26: links planted under the applier's own temporary names (which it
/// removes when a killed run left them) are not followed: the run succeeds, what
/// they point to keeps its bytes, and the links are left alone (not ours). The
/// temporary file itself is made with `O_CREAT | O_EXCL` under a fresh random name,
/// which never opens an existing name, link or not.
#[test]
fn links_planted_under_temporary_names_are_not_followed_or_removed_through() {
    let f = Fixture::new();
    let outside = Dir::new();
    outside.write("precious", b"not the applier's");
    let planted = [".app.AAAAAA.deltaapply-tmp", ".app.zz9zz9.deltaapply-tmp"];
    std::os::unix::fs::symlink(outside.join("precious"), f.dir.join(planted[0])).unwrap();
    std::os::unix::fs::symlink(outside.join("dangling"), f.dir.join(planted[1])).unwrap();
    let out = f.apply().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.dir.read("app"), f.new);
    assert_eq!(outside.read("precious"), b"not the applier's");
    assert_eq!(outside.names(), ["precious"]);
    for name in planted {
        let meta = std::fs::symlink_metadata(f.dir.join(name)).unwrap();
        assert!(meta.file_type().is_symlink(), "{name} was replaced");
    }
}
