//! The C ABI from C and Go: `deltapack keygen` and `deltapack build` make a signed
//! publish directory, the examples of `deltaapply-ffi/examples/` are compiled against
//! the static library (`cc` for C, `go build` with cgo for Go) and run as processes,
//! from the directory and over HTTP from the test server on 127.0.0.1; each test checks
//! the exit code and the target's bytes afterwards.
//!
//! The static library is built by the test itself (`cargo build -p deltaapply-ffi`,
//! same target directory and profile). `cc` and `go` must be installed:
//! `scripts/test.sh` installs `golang-go` when `go` is missing. Without them the tests
//! fail, saying so; they never skip.

mod common;
#[path = "../../deltaapply/tests/common/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Dir, release_pair};
use deltaapply::Sha256Digest;
use deltaapply::manifest::{MANIFEST_FILE, Manifest};

const ARTIFACT: &str = "app.bin";

fn ffi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deltaapply-ffi")
}

/// Builds `libdeltaapply_ffi.a` (once per test process) into the target directory
/// this test runs from, with its profile; returns the directory holding it.
fn library_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/c_abi-HASH
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev".to_string(),
            other => other.to_string(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--locked",
                "-p",
                "deltaapply-ffi",
                "--profile",
            ])
            .arg(&profile)
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cannot run cargo to build the C library");
        assert!(status.success(), "cargo build -p deltaapply-ffi failed");
        let lib = profile_dir.join("libdeltaapply_ffi.a");
        assert!(lib.is_file(), "{} was not built", lib.display());
        profile_dir
    })
}

/// What the static library needs from the system when linked into a C program.
const SYSTEM_LIBS: [&str; 4] = ["-lpthread", "-ldl", "-lm", "-lrt"];

/// Compiles `examples/c/NAME.c` against the static library into `out`.
fn compile_c(name: &str, out: &Path) -> PathBuf {
    let exe = out.join(name);
    let src = ffi_dir().join(format!("examples/c/{name}.c"));
    let output = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1"])
        .arg("-I")
        .arg(ffi_dir().join("include"))
        .arg(&src)
        .arg(library_dir().join("libdeltaapply_ffi.a"))
        .args(SYSTEM_LIBS)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc (install a C compiler): {e}"));
    assert!(
        output.status.success(),
        "cc {}: {}",
        src.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// A signed publish directory with releases 1.0 and 1.1 of `app.bin`.
struct Published {
    dir: Dir,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

impl Published {
    fn new(size: usize, seed: u64) -> Published {
        let dir = Dir::new();
        let deltapack = env!("CARGO_BIN_EXE_deltapack");
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {out:?}");
        };
        run(Command::new(deltapack)
            .arg("keygen")
            .arg("--secret-key")
            .arg(dir.join("release.key"))
            .arg("--public-key")
            .arg(dir.join("release.pub")));
        let (v1, v2) = release_pair(size, seed);
        for (version, bytes) in [("1.0", &v1), ("1.1", &v2)] {
            let file = dir.write(&format!("{version}.bin"), bytes);
            run(Command::new(deltapack)
                .arg("build")
                .arg("--out")
                .arg(dir.join("publish"))
                .arg("--secret-key")
                .arg(dir.join("release.key"))
                .args([
                    "--product",
                    "app",
                    "--channel",
                    "stable",
                    "--version",
                    version,
                ])
                .arg("--artifact")
                .arg(format!("{ARTIFACT}={}", file.display())));
        }
        Published { dir, v1, v2 }
    }

    fn key(&self) -> PathBuf {
        self.dir.join("release.pub")
    }

    fn publish(&self) -> PathBuf {
        self.dir.join("publish")
    }

    /// The patch from 1.0 to 1.1 in the publish directory.
    fn patch(&self) -> PathBuf {
        let m =
            Manifest::parse(&std::fs::read(self.publish().join(MANIFEST_FILE)).unwrap()).unwrap();
        let p = m.artifacts[0]
            .patches
            .iter()
            .find(|p| p.base_version == "1.0")
            .expect("a patch from 1.0");
        self.publish().join(p.path.to_string())
    }

    /// A device with release 1.0 installed at `app.bin`.
    fn device(&self) -> (Dir, PathBuf) {
        let device = Dir::new();
        let target = device.write(ARTIFACT, &self.v1);
        (device, target)
    }
}

/// The names in `dir` that are an apply's temporary files.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".deltaapply-tmp"))
        .collect()
}

/// Runs `cmd`; returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Updates a 1.0 target with `program KEY TARGET SOURCE` from the directory and from
/// the test server, checking the target's bytes after each.
fn updates_from_a_directory_and_over_http(program: &Path, p: &Published) {
    let (device, target) = p.device();
    let (code, stdout, stderr) = run(Command::new(program)
        .arg(p.key())
        .arg(&target)
        .arg(p.publish()));
    assert_eq!(code, 0, "{}: {stdout}{stderr}", program.display());
    assert!(stdout.contains("\"outcome\":\"updated\""), "{stdout}");
    assert!(stdout.contains("\"route\":\"patch\""), "{stdout}");
    assert!(
        std::fs::read(&target).unwrap() == p.v2,
        "the target is not 1.1"
    );
    assert!(temp_files(device.path()).is_empty());

    // Up to date now: a second run changes nothing.
    let (code, stdout, _) = run(Command::new(program)
        .arg(p.key())
        .arg(&target)
        .arg(p.publish()));
    assert_eq!(code, 0);
    assert!(stdout.contains("\"outcome\":\"up-to-date\""), "{stdout}");

    let server = http::Server::start();
    server.put_dir("/app/", &p.publish());
    let (device, target) = p.device();
    let url = format!("{}/app", server.url().trim_end_matches('/'));
    let (code, stdout, stderr) = run(Command::new(program).arg(p.key()).arg(&target).arg(&url));
    assert_eq!(code, 0, "{}: {stdout}{stderr}", program.display());
    assert!(
        std::fs::read(&target).unwrap() == p.v2,
        "the target is not 1.1"
    );
    assert!(temp_files(device.path()).is_empty());
    let patch_name = p
        .patch()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        server.log().iter().any(|l| l.path.ends_with(&patch_name)),
        "the patch was not downloaded: {:?}",
        server.log().iter().map(|l| &l.path).collect::<Vec<_>>()
    );

    // An untrusted key: the origin check's code, the target untouched.
    let other = Published::new(4 << 10, 99);
    let (device, target) = p.device();
    let (code, _, stderr) = run(Command::new(program)
        .arg(other.key())
        .arg(&target)
        .arg(p.publish()));
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("DELTAAPPLY_E_UNTRUSTED"), "{stderr}");
    assert!(std::fs::read(&target).unwrap() == p.v1);
    assert!(temp_files(device.path()).is_empty());
}

#[test]
fn the_c_example_updates_from_a_directory_and_over_http() {
    let p = Published::new(160 << 10, 3);
    let build = Dir::new();
    let program = compile_c("update", build.path());
    updates_from_a_directory_and_over_http(&program, &p);
}

#[test]
fn every_c_entry_point_survives_bad_input() {
    let p = Published::new(2 << 20, 5);
    let build = Dir::new();
    let program = compile_c("bad_input", build.path());
    let work = Dir::new();
    let old = p.dir.write("old.bin", &p.v1);
    let (code, stdout, stderr) = run(Command::new(&program)
        .arg(p.key())
        .arg(p.publish())
        .arg(work.path())
        .arg(&old)
        .arg(p.patch())
        .arg(Sha256Digest::of(&p.v2).to_string()));
    assert_eq!(code, 0, "bad_input failed:\n{stdout}{stderr}");
    assert!(stdout.contains("failures 0"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Every phase of a file update was cancelled once.
    for phase in 1..=6 {
        assert!(
            stdout.contains(&format!(
                "ok update cancelled at phase {phase}: DELTAAPPLY_E_CANCELLED"
            )),
            "phase {phase}:\n{stdout}"
        );
    }
    // The last step updated the target for real.
    assert!(std::fs::read(work.join(ARTIFACT)).unwrap() == p.v2);
    assert!(temp_files(work.path()).is_empty());
}

/// Builds `examples/go` with cgo against the static library into `out`.
fn compile_go(out: &Path) -> PathBuf {
    let exe = out.join("deltaapply-update");
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(ffi_dir().join("examples/go"))
        .env("CGO_ENABLED", "1")
        .env("CGO_LDFLAGS", format!("-L{}", library_dir().display()))
        // The example has no dependencies: nothing is fetched.
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run go ({e}): install Go (Debian: apt-get install golang-go; \
                 scripts/test.sh does it)"
            )
        });
    assert!(
        output.status.success(),
        "go build examples/go: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

#[test]
fn the_go_example_updates_from_a_directory_and_over_http() {
    let p = Published::new(160 << 10, 4);
    let build = Dir::new();
    let program = compile_go(build.path());
    updates_from_a_directory_and_over_http(&program, &p);
}

/// Two releases of a tree (the second with its program edited, a file added and one
/// removed) and the tree patch between them, made by `deltapack diff`.
fn tree_releases(dir: &Dir) -> (PathBuf, PathBuf, PathBuf) {
    use common::trees::{copy_tree, gen_tree, put, remove};
    let (old, new) = (dir.join("1.0"), dir.join("1.1"));
    gen_tree(&old, 11);
    copy_tree(&old, &new);
    let (_, app) = release_pair(160 << 10, 11);
    put(&new, "bin/app", &app);
    put(&new, "share/doc/NEWS", b"1.1: faster\n");
    remove(&new, "share/data/blob-0");
    let patch = dir.join("tree.dpatch");
    let out = Command::new(env!("CARGO_BIN_EXE_deltapack"))
        .arg("diff")
        .arg(&old)
        .arg(&new)
        .arg("-o")
        .arg(&patch)
        .output()
        .unwrap();
    assert!(out.status.success(), "deltapack diff: {out:?}");
    (old, new, patch)
}

/// The names beside `path` that an interrupted tree apply would leave (staging
/// directories, journals, temporary files).
fn leftovers_beside(path: &Path) -> Vec<String> {
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("deltaapply") && !n.ends_with("-lock"))
        .collect()
}

#[test]
fn a_tree_apply_cancelled_from_c_while_staging_leaves_the_tree_and_the_commit_completes() {
    use common::trees::{assert_same_tree, copy_tree, snapshot_tree};
    let dir = Dir::new();
    let (old, new, patch) = tree_releases(&dir);
    let build = Dir::new();
    let program = compile_c("cancel_tree", build.path());
    let (old_snap, new_snap) = (snapshot_tree(&old), snapshot_tree(&new));
    let stage = "7";
    let commit = "8";

    // Out of place, cancelled while the files are made: no new tree, nothing beside.
    let work = Dir::new();
    let dest = work.join("out");
    let (code, stdout, _) = run(Command::new(&program)
        .arg(stage)
        .arg(&old)
        .arg(&patch)
        .arg(&dest));
    assert_eq!(code, 11, "{stdout}");
    assert!(stdout.contains("seen 7"), "{stdout}");
    assert!(
        !dest.exists(),
        "a cancelled out-of-place apply made {}",
        dest.display()
    );
    assert_eq!(leftovers_beside(&dest), Vec::<String>::new());
    assert_same_tree(&snapshot_tree(&old), &old_snap, "the old tree");

    // In place, cancelled while the files are made: the old tree, entry for entry.
    let installed = work.join("installed");
    copy_tree(&old, &installed);
    let (code, stdout, _) = run(Command::new(&program)
        .arg(stage)
        .arg(&installed)
        .arg(&patch)
        .arg(&installed));
    assert_eq!(code, 11, "{stdout}");
    assert_same_tree(
        &snapshot_tree(&installed),
        &old_snap,
        "the tree after a cancel",
    );
    assert_eq!(leftovers_beside(&installed), Vec::<String>::new());

    // In place, a cancel asked during the commit: the commit runs to its end.
    let (code, stdout, _) = run(Command::new(&program)
        .arg(commit)
        .arg(&installed)
        .arg(&patch)
        .arg(&installed));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("seen 8"), "{stdout}");
    assert_same_tree(
        &snapshot_tree(&installed),
        &new_snap,
        "the tree after its commit",
    );
    assert_eq!(leftovers_beside(&installed), Vec::<String>::new());
}
