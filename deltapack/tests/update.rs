//! End-to-end tests of `deltaapply check` and `deltaapply update` through the real
//! binaries: `deltapack keygen` and `deltapack build` make a signed publish directory,
//! the fault-injecting server of deltaapply's download tests serves it on 127.0.0.1
//! (plain HTTP or HTTPS), or it is read as a local directory, and `deltaapply` brings
//! an installed file to the newest release.
//!
//! After every command each test checks the exit code, that the target holds exactly
//! the bytes it must (the old release or the new one, byte for byte) and that no
//! temporary file is left beside it ([`Device::run`]); the server's log shows what was
//! downloaded.
//!
//! `deltaapply` is another package's binary, which `cargo test -p deltapack` does not
//! build: run `cargo build -p deltaapply-cli` first (or `cargo test --workspace`).
//! `DELTAAPPLY_BIN` overrides its path.

mod common;
#[path = "../../deltaapply/tests/common/http.rs"]
mod http;

use std::cell::Cell;
use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use common::{Dir, Rng, copy_dir, release_pair, snapshot};
use deltaapply::manifest::{MANIFEST_FILE, Manifest, SIGNATURE_FILE, Timestamp};
use http::{Fault, Logged, Server};
use serde_json::Value;

/// Exit codes from README.md ("Exit codes (both tools)").
mod code {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const LIMIT: i32 = 5;
    pub const UNTRUSTED: i32 = 6;
    pub const REFUSED: i32 = 7;
    pub const NO_ROUTE: i32 = 8;
    pub const NETWORK: i32 = 9;
}

/// Size of a release: small enough for a fast suite, large enough that a patch is a
/// small fraction of the full image.
const RELEASE_SIZE: usize = 160 << 10;

/// The artifact's name, and so the target's.
const ARTIFACT: &str = "app.bin";

const MANIFEST: &str = "/manifest.toml";
const SIGNATURE: &str = "/manifest.toml.sig";

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

/// `deltaapply` with no trusted key from the environment.
fn deltaapply() -> Command {
    common::deltaapply_cmd(Duration::from_secs(120))
}

/// `n` successive releases of an artifact, derived from `seed`: the first a realistic
/// mix of code, text, zeros and random bytes, each next one an edit of the one before
/// (bytes patched, a block inserted), as between two builds of a program.
fn releases(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let (mut current, _) = release_pair(RELEASE_SIZE, seed);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut out = vec![current.clone()];
    for _ in 1..n {
        for _ in 0..24 {
            let at = rng.below(current.len());
            current[at] = rng.byte();
        }
        let at = rng.below(current.len());
        let block: Vec<u8> = (0..400).map(|_| rng.byte()).collect();
        current.splice(at..at, block);
        out.push(current.clone());
    }
    out
}

/// `bytes` with one byte changed in the middle: an installed file modified on the
/// device, or a damaged download.
fn flipped(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    b
}

/// A publisher: a key pair from `deltapack keygen` and a product, with release files
/// and publish directories in a temporary directory.
struct Publisher {
    dir: Dir,
    product: String,
    channel: String,
    /// Creation time of the next build (one hour after the previous one).
    clock: Cell<u64>,
}

impl Publisher {
    fn new(product: &str) -> Publisher {
        let dir = Dir::new();
        let out = deltapack()
            .arg("keygen")
            .arg("--secret-key")
            .arg(dir.join("release.key"))
            .arg("--public-key")
            .arg(dir.join("release.pub"))
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {out:?}");
        Publisher {
            dir,
            product: product.to_string(),
            channel: "stable".to_string(),
            // Recent, so that the default 90 days of validity have not run out.
            clock: Cell::new(Timestamp::now().0 - 20 * 86_400),
        }
    }

    /// Another product signed with the same key.
    fn same_key(&self, product: &str) -> Publisher {
        let other = Publisher {
            dir: Dir::new(),
            product: product.to_string(),
            channel: self.channel.clone(),
            clock: Cell::new(self.clock.get()),
        };
        for name in ["release.key", "release.pub"] {
            std::fs::copy(self.dir.join(name), other.dir.join(name)).unwrap();
        }
        other
    }

    /// The public key file, for `deltaapply --key`.
    fn public_key(&self) -> PathBuf {
        self.dir.join("release.pub")
    }

    /// The publish directory `publish`.
    fn out(&self) -> PathBuf {
        self.dir.join("publish")
    }

    /// `deltapack build` of `version` with `content` into `out`, one hour after the
    /// previous build, with `extra` flags; returns its JSON summary.
    fn build_into(&self, out: &Path, version: &str, content: &[u8], extra: &[&str]) -> Value {
        let file = self.dir.write(&format!("{version}.bin"), content);
        let created = Timestamp(self.clock.get());
        self.clock.set(self.clock.get() + 3600);
        self.build_at(out, version, &file, created, extra)
    }

    fn build(&self, version: &str, content: &[u8], extra: &[&str]) -> Value {
        self.build_into(&self.out(), version, content, extra)
    }

    fn build_at(
        &self,
        out: &Path,
        version: &str,
        file: &Path,
        created: Timestamp,
        extra: &[&str],
    ) -> Value {
        let output = deltapack()
            .arg("build")
            .arg("--out")
            .arg(out)
            .arg("--secret-key")
            .arg(self.dir.join("release.key"))
            .args(["--product", &self.product, "--channel", &self.channel])
            .args(["--version", version])
            .arg("--artifact")
            .arg(format!("{ARTIFACT}={}", file.display()))
            .args(["--created", &created.to_string(), "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "deltapack build {version}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// The manifest of `out`.
    fn manifest(out: &Path) -> Manifest {
        Manifest::parse(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap()
    }
}

/// Builds releases `1.0`, `1.1`, … of `contents` into the publisher's publish
/// directory.
fn publish_all(p: &Publisher, contents: &[Vec<u8>]) {
    for (i, c) in contents.iter().enumerate() {
        p.build(&format!("1.{i}"), c, &[]);
    }
}

/// The newest release's patch from `base` (its path in the publish directory, with a
/// leading `/`, and its size).
fn patch_of(out: &Path, base: &str) -> (String, u64) {
    let m = Publisher::manifest(out);
    let p = m.artifacts[0]
        .patches
        .iter()
        .find(|p| p.base_version == base)
        .unwrap_or_else(|| panic!("no patch from {base} in {}", out.display()));
    (format!("/{}", p.path), p.size)
}

/// The newest full image (path with a leading `/`, size).
fn full_of(out: &Path) -> (String, u64) {
    let m = Publisher::manifest(out);
    let f = &m.artifacts[0].full;
    (format!("/{}", f.path), f.size)
}

/// The paths requested in `log`, in order.
fn paths(log: &[Logged]) -> Vec<String> {
    log.iter().map(|l| l.path.clone()).collect()
}

/// The requests for `path` in `log`.
fn requests<'a>(log: &'a [Logged], path: &str) -> Vec<&'a Logged> {
    log.iter().filter(|l| l.path == path).collect()
}

/// A port on 127.0.0.1 that nothing listens on (bound, then closed again).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn tls_ca() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tls/ca.der")
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The versions a route's steps go through: `["1.0->1.1", ...]`, `["*->1.2"]` for a
/// full image.
fn hops(steps: &Value) -> Vec<String> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}->{}",
                s["from_version"].as_str().unwrap_or("*"),
                s["to_version"].as_str().unwrap()
            )
        })
        .collect()
}

/// A device: a directory holding the installed file `app.bin` (or none yet), the
/// keys it trusts, and what `deltaapply` leaves beside it.
struct Device {
    dir: Dir,
    target: PathBuf,
    key: PathBuf,
    /// The time the device's clock shows, set with libfaketime (`faketime`), if not
    /// the real one.
    clock: Option<&'static str>,
}

impl Device {
    /// A device trusting the key file `key`, with `installed` at the target.
    fn new(key: &Path, installed: Option<&[u8]>) -> Device {
        let dir = Dir::new();
        let target = dir.join(ARTIFACT);
        if let Some(bytes) = installed {
            std::fs::write(&target, bytes).unwrap();
        }
        Device {
            dir,
            target,
            key: key.to_path_buf(),
            clock: None,
        }
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join(&format!(".{ARTIFACT}.deltaapply-state"))
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.join(&format!(".{ARTIFACT}.deltaapply-cache"))
    }

    /// Runs `deltaapply SUB --from F... --key KEY --target app.bin --json EXTRA` (with
    /// short timeouts and few retries unless `extra` sets them), then asserts that it
    /// exited with `code` (and its JSON says so), that the target holds exactly
    /// `expect` (`None`: no file), and that nothing but the state file and the download
    /// directory is beside it. Returns the JSON.
    fn run(
        &self,
        sub: &str,
        from: &[&str],
        extra: &[&str],
        code: i32,
        expect: Option<&[u8]>,
    ) -> Value {
        let mut args: Vec<OsString> = vec![sub.into()];
        for f in from {
            args.push("--from".into());
            args.push(f.into());
        }
        args.extend(["--key".into(), self.key.clone().into_os_string()]);
        args.extend(["--target".into(), self.target.clone().into_os_string()]);
        args.push("--json".into());
        for (flag, value) in [
            ("--retries", "2"),
            ("--connect-timeout", "5"),
            ("--read-timeout", "10"),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag.into(), value.into()]);
            }
        }
        args.extend(extra.iter().map(OsString::from));
        let mut cmd = match self.clock {
            None => deltaapply(),
            Some(at) => {
                // Debian's faketime (scripts/test.sh installs it).
                let mut cmd = Command::new("faketime");
                cmd.arg(at).arg(common::deltaapply_bin());
                cmd.env_remove("DELTAAPPLY_KEY");
                // Timeouts run on the real monotonic clock.
                cmd.env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                    .env("TZ", "UTC");
                cmd.timeout(Duration::from_secs(120));
                cmd
            }
        };
        let output = cmd.args(&args).output().unwrap();
        let what = format!("deltaapply {args:?} (clock {:?})", self.clock);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let json: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{what}: no JSON on stdout ({e}): {stdout}{stderr}"));
        assert_eq!(
            output.status.code(),
            Some(code),
            "{what}: exit code; output: {json:#}\n{stderr}"
        );
        assert_eq!(json["ok"], code == code::OK, "{what}: {json}");
        if code != code::OK {
            assert_eq!(json["exit_code"], code, "{what}: {json}");
            assert!(
                json["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{json}"
            );
        }
        self.assert_target(expect, &what);
        if code == code::OK && sub == "update" {
            assert!(
                !self.cache_dir().exists(),
                "{what}: the download directory is left after a successful update: {:?}",
                std::fs::read_dir(self.cache_dir()).map(|d| d.count())
            );
        }
        json
    }

    fn update(&self, from: &[&str], extra: &[&str], code: i32, expect: Option<&[u8]>) -> Value {
        self.run("update", from, extra, code, expect)
    }

    fn check(&self, from: &[&str], extra: &[&str], code: i32, expect: Option<&[u8]>) -> Value {
        self.run("check", from, extra, code, expect)
    }

    /// Asserts that the target holds exactly `expect` (`None`: there is no file), and
    /// that the directory holds nothing but the target, the state file and the
    /// download directory, which holds nothing but partial downloads to resume.
    fn assert_target(&self, expect: Option<&[u8]>, what: &str) {
        match (expect, std::fs::read(&self.target)) {
            (None, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            (None, got) => panic!("{what}: the target should not exist, got {got:?}"),
            (Some(want), Ok(got)) => assert!(
                got == want,
                "{what}: the target has {} bytes (sha256 {}), expected {} bytes (sha256 {})",
                got.len(),
                deltaapply::Sha256Digest::of(&got),
                want.len(),
                deltaapply::Sha256Digest::of(want)
            ),
            (Some(_), Err(e)) => panic!("{what}: cannot read the target: {e}"),
        }
        let allowed = [
            ARTIFACT.to_string(),
            format!(".{ARTIFACT}.deltaapply-state"),
            format!(".{ARTIFACT}.deltaapply-cache"),
        ];
        for name in self.dir.names() {
            assert!(
                allowed.contains(&name),
                "{what}: {name:?} was left beside the target (all: {:?})",
                self.dir.names()
            );
        }
        for name in self.cache_names() {
            assert!(
                name.ends_with(".part") || name.ends_with(".part.meta"),
                "{what}: {name:?} was left in the download directory"
            );
        }
    }

    /// The names in the download directory (none if it does not exist).
    fn cache_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.cache_dir())
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The state file's `accepted` lines.
    /// The state file's `accepted PRODUCT CHANNEL SEQUENCE` lines, without the
    /// manifest digest each one ends with (checked to be 64 hex digits).
    fn accepted(&self) -> Vec<String> {
        std::fs::read_to_string(self.state_file())
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("accepted "))
            .map(|l| {
                let (entry, digest) = l.rsplit_once(' ').unwrap();
                assert!(
                    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{l}"
                );
                entry.to_string()
            })
            .collect()
    }
}

/// A publisher with releases `1.0` and `1.1` (different content, so that the patch
/// from 1.0 is far smaller than the full image) served by a plain HTTP server.
struct Two {
    publisher: Publisher,
    server: Server,
    v: Vec<Vec<u8>>,
    patch: (String, u64),
    full: (String, u64),
}

impl Two {
    fn new(seed: u64) -> Two {
        Two::served(seed, Server::start())
    }

    fn served(seed: u64, server: Server) -> Two {
        let publisher = Publisher::new("example-app");
        let v = releases(seed, 2);
        publish_all(&publisher, &v);
        server.put_dir("/", &publisher.out());
        let patch = patch_of(&publisher.out(), "1.0");
        let full = full_of(&publisher.out());
        assert!(
            patch.1 * 10 < full.1,
            "the test releases should give a small patch: {patch:?}, full {full:?}"
        );
        Two {
            publisher,
            server,
            v,
            patch,
            full,
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// A device trusting the publisher's key with `installed`.
    fn device(&self, installed: Option<&[u8]>) -> Device {
        Device::new(&self.publisher.public_key(), installed)
    }
}

// ---------------------------------------------------------------------------------
// Routes

#[test]
fn update_by_direct_patch_downloads_only_the_patch() {
    let t = Two::new(1);
    let url = t.url();
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));

    assert_eq!(json["command"], "update");
    assert_eq!(json["product"], "example-app");
    assert_eq!(json["channel"], "stable");
    assert_eq!(json["sequence"], 2);
    assert_eq!(json["source"], url);
    assert_eq!(json["installed"]["state"], "release");
    assert_eq!(json["installed"]["version"], "1.0");
    assert_eq!(json["installed"]["newest"], false);
    assert_eq!(json["newest"]["version"], "1.1");
    assert_eq!(u64_of(&json["newest"]["size"]), t.v[1].len() as u64);
    assert_eq!(json["update_available"], true);
    let plan = &json["plan"];
    assert_eq!(plan["route"], "patch");
    assert_eq!(hops(&plan["steps"]), ["1.0->1.1"]);
    assert_eq!(
        format!("/{}", plan["steps"][0]["path"].as_str().unwrap()),
        t.patch.0
    );
    assert_eq!(u64_of(&plan["steps"][0]["file"]["size"]), t.patch.1);
    assert_eq!(u64_of(&plan["download_size"]), t.patch.1);
    assert_eq!(u64_of(&plan["full_size"]), t.full.1);
    let result = &json["result"];
    assert_eq!(result["outcome"], "updated");
    assert_eq!(result["route"], "patch");
    assert_eq!(result["steps"], plan["steps"]);
    assert_eq!(result["fallback"], Value::Null);
    assert_eq!(result["state_updated"], true);
    let downloaded = u64_of(&result["downloaded"]);
    assert_eq!(downloaded, t.patch.1);
    assert!(downloaded * 10 < u64_of(&plan["full_size"]), "{json}");

    // Only the manifest, its signature and the patch were fetched, each whole.
    let log = t.server.log();
    assert_eq!(paths(&log), [MANIFEST, SIGNATURE, t.patch.0.as_str()]);
    assert!(
        log.iter().all(|l| l.status == 200 && l.range.is_none()),
        "{log:?}"
    );
    assert_eq!(dev.accepted(), ["accepted example-app stable 2"]);

    // Again: nothing to do, nothing downloaded but the manifest and its signature.
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["plan"]["route"], "up-to-date");
    assert_eq!(json["installed"]["newest"], true);
    assert_eq!(json["update_available"], false);
    assert_eq!(json["result"]["outcome"], "up-to-date");
    assert_eq!(json["result"]["downloaded"], 0);
    assert_eq!(json["result"]["state_updated"], false);
    assert_eq!(paths(&t.server.log()[3..]), [MANIFEST, SIGNATURE]);
}

#[test]
fn update_by_chain_through_an_older_release() {
    let p = Publisher::new("example-app");
    // 1.1 adds 16 KiB of new, incompressible bytes to 1.0; 1.2 changes a few bytes of
    // 1.1. So a patch from 1.0 costs about 16 KiB whichever release it leads to.
    let v0 = releases(2, 1).remove(0);
    let mut rng = Rng::new(22);
    let mut v1 = v0.clone();
    let block: Vec<u8> = (0..16 << 10).map(|_| rng.byte()).collect();
    v1.splice(v1.len() / 2..v1.len() / 2, block);
    let v2 = flipped(&v1);
    let v = [v0, v1, v2];
    p.build("1.0", &v[0], &[]);
    p.build("1.1", &v[1], &[]);
    // 1.2 publishes no patch above 5% of its full image: the one from 1.1, not the
    // one from 1.0. (`--keep 1` would not do: it drops 1.0 from the supported
    // releases, and with it 1.1's patch from 1.0.) 1.1 keeps its patch from 1.0.
    let built = p.build("1.2", &v[2], &["--max-patch-share", "0.05"]);
    let omitted: Vec<&Value> = built["patches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["omitted"].is_null())
        .collect();
    assert_eq!(omitted.len(), 1, "{built}");
    assert_eq!(omitted[0]["base_version"], "1.0");
    let m = Publisher::manifest(&p.out());
    let bases: Vec<&str> = m.artifacts[0]
        .patches
        .iter()
        .map(|p| p.base_version.as_str())
        .collect();
    assert_eq!(bases, ["1.1"]);
    let older = m.previous.iter().find(|r| r.version == "1.1").unwrap();
    let first = &older.artifacts[0].patches;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].base_version, "1.0");
    let step1 = (format!("/{}", first[0].path), first[0].size);
    let step2 = patch_of(&p.out(), "1.1");
    let server = Server::start();
    server.put_dir("/", &p.out());
    let url = server.url();

    // check plans the chain; update carries out exactly that plan.
    let dev = Device::new(&p.public_key(), Some(&v[0]));
    let check = dev.check(&[&url], &[], code::OK, Some(&v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&v[2]));
    assert_eq!(json["plan"], check["plan"]);
    assert_eq!(json["plan"]["route"], "chain");
    assert_eq!(hops(&json["plan"]["steps"]), ["1.0->1.1", "1.1->1.2"]);
    assert_eq!(json["result"]["route"], "chain");
    assert_eq!(json["result"]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(json["result"]["fallback"], Value::Null);
    assert_eq!(u64_of(&json["plan"]["download_size"]), step1.1 + step2.1);
    assert_eq!(u64_of(&json["result"]["downloaded"]), step1.1 + step2.1);
    assert!(step1.1 + step2.1 < u64_of(&json["plan"]["full_size"]) / 3);
    let log = server.log();
    assert_eq!(
        paths(&log),
        [
            MANIFEST,
            SIGNATURE,
            MANIFEST,
            SIGNATURE,
            step1.0.as_str(),
            step2.0.as_str()
        ]
    );

    // The second patch missing: the first one is applied (into the download
    // directory), then the full image is used instead of the chain.
    let full = full_of(&p.out());
    server.faults(&step2.0, [Fault::Status(404)]);
    let dev = Device::new(&p.public_key(), Some(&v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&v[2]));
    assert_eq!(json["plan"]["route"], "chain");
    assert_eq!(json["result"]["route"], "full");
    let reason = json["result"]["fallback"].as_str().unwrap();
    assert!(reason.contains("404"), "{reason}");
    assert_eq!(u64_of(&json["result"]["downloaded"]), step1.1 + full.1);
    // With --no-full the update fails, the target keeps 1.0, and the intermediate
    // release made by the first step is not left behind.
    server.faults(&step2.0, [Fault::Status(404)]);
    let dev = Device::new(&p.public_key(), Some(&v[0]));
    let before = server.log().len();
    dev.update(&[&url], &["--no-full"], code::NETWORK, Some(&v[0]));
    assert_eq!(dev.cache_names(), Vec::<String>::new());
    assert_eq!(
        paths(&server.log()[before..]),
        [MANIFEST, SIGNATURE, step1.0.as_str(), step2.0.as_str()]
    );

    // From 1.1, the direct patch.
    let dev = Device::new(&p.public_key(), Some(&v[1]));
    let json = dev.update(&[&url], &[], code::OK, Some(&v[2]));
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(u64_of(&json["result"]["downloaded"]), step2.1);

    // With chains of one patch at most, 1.0 can only take the full image.
    let dev = Device::new(&p.public_key(), Some(&v[0]));
    let json = dev.update(&[&url], &["--max-chain", "1"], code::OK, Some(&v[2]));
    assert_eq!(json["result"]["route"], "full");
    assert_eq!(u64_of(&json["result"]["downloaded"]), full_of(&p.out()).1);
}

#[test]
fn update_by_full_image() {
    let t = Two::new(3);
    let url = t.url();

    // An installed file that matches no release (modified on the device).
    let modified = flipped(&t.v[0]);
    let dev = t.device(Some(&modified));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["installed"]["state"], "unknown");
    assert_eq!(
        u64_of(&json["installed"]["file"]["size"]),
        modified.len() as u64
    );
    assert_eq!(json["plan"]["route"], "full");
    assert_eq!(hops(&json["plan"]["steps"]), ["*->1.1"]);
    assert_eq!(json["result"]["route"], "full");
    assert_eq!(json["result"]["fallback"], Value::Null);
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.full.1);
    assert_eq!(
        paths(&t.server.log()),
        [MANIFEST, SIGNATURE, t.full.0.as_str()]
    );

    // No file yet: the update installs it.
    let dev = t.device(None);
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["installed"]["state"], "missing");
    assert_eq!(json["result"]["route"], "full");
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.full.1);

    // --prefer-full takes the full image although the patch is smaller.
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &["--prefer-full"], code::OK, Some(&t.v[1]));
    assert_eq!(json["installed"]["version"], "1.0");
    assert_eq!(json["plan"]["route"], "full");
    assert_eq!(u64_of(&json["plan"]["cheapest_patch_route"]), t.patch.1);
    assert_eq!(json["result"]["route"], "full");
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.full.1);
}

// ---------------------------------------------------------------------------------
// Fallback to the full image

#[test]
fn fallback_when_the_patch_on_the_server_is_wrong() {
    let t = Two::new(4);
    let url = t.url();
    let patch = t.patch.0.as_str();
    // Same length, one byte different: the download's hash never matches.
    let good = t.server.body(patch).unwrap();
    t.server
        .put(patch, http::Resource::new(&flipped(&good), "damaged"));

    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["plan"]["route"], "patch");
    assert_eq!(json["result"]["route"], "full");
    let reason = json["result"]["fallback"].as_str().unwrap();
    assert!(reason.contains("sha256"), "{reason}");
    // `downloaded` counts every byte received, also those of the damaged patch that
    // was received whole and then refused.
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.patch.1 + t.full.1);
    let log = t.server.log();
    assert_eq!(paths(&log), [MANIFEST, SIGNATURE, patch, t.full.0.as_str()]);
    // The damaged patch was received whole before it was refused.
    assert_eq!(log[2].status, 200);

    // --no-full: the patch's error, the old file kept, the full image never asked for.
    let before = t.server.log().len();
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &["--no-full"], code::NETWORK, Some(&t.v[0]));
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("sha256") && error.contains(patch.trim_start_matches('/')),
        "{error}"
    );
    assert_eq!(
        paths(&t.server.log()[before..]),
        [MANIFEST, SIGNATURE, patch]
    );
    // A file whose hash did not match is not kept to resume.
    assert_eq!(dev.cache_names(), Vec::<String>::new());
}

#[test]
fn fallback_when_the_patch_is_missing() {
    let t = Two::new(5);
    let url = t.url();
    let patch = t.patch.0.as_str();
    t.server.faults(patch, [Fault::Status(404)]);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "full");
    let reason = json["result"]["fallback"].as_str().unwrap();
    assert!(reason.contains("404"), "{reason}");
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.full.1);
    let log = t.server.log();
    assert_eq!(paths(&log), [MANIFEST, SIGNATURE, patch, t.full.0.as_str()]);
    assert_eq!(log[2].status, 404);

    // --no-full: exit 9 with the 404, the old file kept.
    t.server.remove(patch);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &["--no-full"], code::NETWORK, Some(&t.v[0]));
    assert!(json["error"].as_str().unwrap().contains("404"), "{json}");

    // A fallback that would pass --max-download is not made: exit 5, the old file kept.
    let limit = (t.patch.1 + 100).to_string();
    let before = t.server.log().len();
    let json = dev.update(
        &[&url],
        &["--max-download", &limit],
        code::LIMIT,
        Some(&t.v[0]),
    );
    assert!(
        json["error"].as_str().unwrap().contains("--max-download"),
        "{json}"
    );
    assert_eq!(
        paths(&t.server.log()[before..]),
        [MANIFEST, SIGNATURE, patch]
    );
}

// ---------------------------------------------------------------------------------
// Network faults: each ends with the new file, exactly.

#[test]
fn dropped_connection_resumes_with_range() {
    let t = Two::new(6);
    let url = t.url();
    let patch = t.patch.0.as_str();
    let half = (t.patch.1 / 2) as usize;
    t.server.faults(patch, [Fault::DropAfter(half)]);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(json["result"]["fallback"], Value::Null);
    // The second request asked for the rest only.
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.patch.1);
    let log = t.server.log();
    let got = requests(&log, patch);
    assert_eq!(got.len(), 2, "{log:?}");
    assert_eq!(got[0].range, None);
    assert_eq!(
        got[1].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
    assert!(got[1].if_range.is_some(), "{:?}", got[1]);
    assert_eq!(got[1].status, 206);
}

#[test]
fn interrupted_download_resumes_in_a_later_run() {
    let t = Two::new(7);
    let url = t.url();
    let patch = t.patch.0.as_str();
    let part = (t.patch.1 / 3) as usize;
    t.server.faults(patch, [Fault::DropAfter(part)]);
    // No retries and no full image: the run fails and keeps what it received.
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(
        &[&url],
        &["--no-full", "--retries", "0"],
        code::NETWORK,
        Some(&t.v[0]),
    );
    assert!(
        json["error"].as_str().unwrap().contains("broke off"),
        "{json}"
    );
    let kept = dev.cache_names();
    assert!(kept.iter().any(|n| n.ends_with(".part")), "{kept:?}");

    let json = dev.update(&[&url], &["--no-full"], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(
        u64_of(&json["result"]["downloaded"]),
        t.patch.1 - part as u64
    );
    let log = t.server.log();
    let got = requests(&log, patch);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].range.as_deref(),
        Some(format!("bytes={part}-").as_str())
    );
    assert_eq!(got[1].status, 206);
}

#[test]
fn server_error_is_retried() {
    let t = Two::new(8);
    let url = t.url();
    let patch = t.patch.0.as_str();
    t.server.faults(patch, [Fault::Status(503)]);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(json["result"]["fallback"], Value::Null);
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.patch.1);
    let log = t.server.log();
    let statuses: Vec<u16> = requests(&log, patch).iter().map(|l| l.status).collect();
    assert_eq!(statuses, [503, 200]);

    // The same for the manifest.
    t.server.faults(MANIFEST, [Fault::Status(503)]);
    let dev = t.device(Some(&t.v[0]));
    dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
}

#[test]
fn stalled_response_times_out_and_resumes() {
    let t = Two::new(9);
    let url = t.url();
    let patch = t.patch.0.as_str();
    let part = (t.patch.1 / 2) as usize;
    t.server.faults(patch, [Fault::StallAfter(part)]);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &["--read-timeout", "2"], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(json["result"]["fallback"], Value::Null);
    let log = t.server.log();
    let got = requests(&log, patch);
    assert_eq!(got.len(), 2, "{log:?}");
    assert_eq!(
        got[1].range.as_deref(),
        Some(format!("bytes={part}-").as_str())
    );
    assert_eq!(got[1].status, 206);
}

#[test]
fn server_ignoring_range_restarts_the_download() {
    let t = Two::new(10);
    let url = t.url();
    let patch = t.patch.0.as_str();
    let part = (t.patch.1 / 2) as usize;
    t.server
        .faults(patch, [Fault::DropAfter(part), Fault::IgnoreRange]);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(json["result"]["fallback"], Value::Null);
    // The first half, then the whole file again.
    assert_eq!(
        u64_of(&json["result"]["downloaded"]),
        part as u64 + t.patch.1
    );
    let log = t.server.log();
    let got = requests(&log, patch);
    assert_eq!(got.len(), 2, "{log:?}");
    assert!(got[1].range.is_some());
    assert_eq!(got[1].status, 200);
}

#[test]
fn body_longer_than_declared_is_refused() {
    let t = Two::new(11);
    let url = t.url();
    let patch = t.patch.0.as_str();
    let good = t.server.body(patch).unwrap();
    let mut longer = good.clone();
    longer.extend_from_slice(&[0x55; 1000]);

    // A longer file, announced: refused, the full image used instead.
    t.server.put(patch, http::Resource::new(&longer, "longer"));
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "full");
    let reason = json["result"]["fallback"].as_str().unwrap();
    assert!(reason.contains("larger"), "{reason}");

    // A longer file without Content-Length: refused as it arrives, also the fallback.
    t.server.faults(patch, [Fault::NoLength]);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "full");
    let reason = json["result"]["fallback"].as_str().unwrap();
    assert!(reason.contains("larger"), "{reason}");
    // ... and with --no-full it is an error, with nothing of it kept.
    t.server.faults(patch, [Fault::NoLength]);
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &["--no-full"], code::NETWORK, Some(&t.v[0]));
    assert!(json["error"].as_str().unwrap().contains("larger"), "{json}");
    assert_eq!(dev.cache_names(), Vec::<String>::new());

    // The right file without Content-Length: accepted by its size and hash.
    t.server.put(patch, http::Resource::new(&good, "good"));
    t.server.faults(patch, [Fault::NoLength]);
    let json = dev.update(&[&url], &["--no-full"], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.patch.1);
}

#[test]
fn redirect_from_https_to_http_is_refused() {
    let t = Two::served(12, Server::start_tls());
    let url = t.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let plain = Server::start();
    plain.put_dir("/", &t.publisher.out());
    let ca = tls_ca();
    let ca = ca.to_str().unwrap();
    let patch = t.patch.0.as_str();

    // The patch redirects to plain http: refused, so the full image (over https).
    t.server.faults(
        patch,
        [Fault::Redirect(format!("{}{}", plain.url(), &patch[1..]))],
    );
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &["--ca-cert", ca], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "full");
    let reason = json["result"]["fallback"].as_str().unwrap();
    assert!(reason.contains("redirect"), "{reason}");
    assert_eq!(
        paths(&t.server.log()),
        [MANIFEST, SIGNATURE, patch, t.full.0.as_str()]
    );

    // The manifest redirects to plain http: the update fails, nothing changed.
    t.server.faults(
        MANIFEST,
        [Fault::Redirect(format!("{}manifest.toml", plain.url()))],
    );
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&url], &["--ca-cert", ca], code::NETWORK, Some(&t.v[0]));
    assert!(
        json["error"].as_str().unwrap().contains("redirect"),
        "{json}"
    );
    assert!(!dev.state_file().exists());
    // The plain server was never asked for anything.
    assert_eq!(plain.log(), []);
    // Without the redirect, the same device updates by the patch.
    let json = dev.update(&[&url], &["--ca-cert", ca], code::OK, Some(&t.v[1]));
    assert_eq!(json["result"]["route"], "patch");
}

/// On a system without CA certificates (SSL_CERT_FILE and SSL_CERT_DIR point at
/// nothing), plain http still works, https works with the server's CA given, and
/// without it the error says what is missing.
#[test]
fn no_system_ca_certificates() {
    let t = Two::served(14, Server::start_tls());
    let plain = Server::start();
    plain.put_dir("/", &t.publisher.out());
    let empty = Dir::new();
    let dev = t.device(Some(&t.v[0]));
    let run = |url: &str, ca: bool| {
        let mut cmd = deltaapply();
        cmd.env("SSL_CERT_FILE", empty.join("none.pem"))
            .env("SSL_CERT_DIR", empty.path())
            .args(["check", "--from", url, "--key"])
            .arg(&dev.key)
            .arg("--target")
            .arg(&dev.target)
            .args(["--retries", "0", "--json"]);
        if ca {
            cmd.arg("--ca-cert").arg(tls_ca());
        }
        let output = cmd.output().unwrap();
        let json: Value = serde_json::from_slice(&output.stdout).unwrap();
        (output.status.code(), json)
    };
    let (code, json) = run(&plain.url(), false);
    assert_eq!(code, Some(code::OK), "{json}");
    assert_eq!(json["plan"]["route"], "patch");
    let (code, json) = run(&t.url(), true);
    assert_eq!(code, Some(code::OK), "{json}");
    assert_eq!(json["plan"]["route"], "patch");
    let (code, json) = run(&t.url(), false);
    assert_eq!(code, Some(code::NETWORK), "{json}");
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("no CA certificates were found"), "{error}");
    dev.assert_target(Some(&t.v[0]), "check without CA certificates");
}

#[test]
fn dead_mirror_is_skipped() {
    let t = Two::new(13);
    let url = t.url();
    let dead = format!("http://127.0.0.1:{}/", closed_port());
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(
        &[&dead, &url],
        &["--retries", "1", "--connect-timeout", "2"],
        code::OK,
        Some(&t.v[1]),
    );
    assert_eq!(json["source"], url);
    assert_eq!(json["result"]["route"], "patch");
    assert_eq!(json["result"]["fallback"], Value::Null);
    assert_eq!(u64_of(&json["result"]["downloaded"]), t.patch.1);
    assert_eq!(
        paths(&t.server.log()),
        [MANIFEST, SIGNATURE, t.patch.0.as_str()]
    );

    // Every mirror dead: exit 9, nothing changed, nothing written.
    let dev = t.device(Some(&t.v[0]));
    let json = dev.update(&[&dead], &["--retries", "0"], code::NETWORK, Some(&t.v[0]));
    assert!(json["error"].as_str().unwrap().contains(&dead), "{json}");
    assert!(!dev.state_file().exists());
}

// ---------------------------------------------------------------------------------
// Trust

#[test]
fn rolled_back_manifest_is_refused() {
    let p = Publisher::new("example-app");
    let v = releases(14, 3);
    p.build("1.0", &v[0], &[]);
    p.build("1.1", &v[1], &[]);
    // What the publish directory held at sequence 2.
    let old = p.dir.join("publish-seq2");
    copy_dir(&p.out(), &old);
    p.build("1.2", &v[2], &[]);
    let server = Server::start();
    server.put_dir("/", &p.out());
    let url = server.url();

    let dev = Device::new(&p.public_key(), Some(&v[1]));
    let json = dev.update(&[&url], &[], code::OK, Some(&v[2]));
    assert_eq!(json["sequence"], 3);
    assert_eq!(dev.accepted(), ["accepted example-app stable 3"]);
    let state = std::fs::read_to_string(dev.state_file()).unwrap();

    // The server now serves the older, validly signed directory.
    server.put_dir("/", &old);
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&url], &[], code::REFUSED, Some(&v[2]));
        let error = json["error"].as_str().unwrap();
        assert!(
            error.contains("rollback") && error.contains("sequence 2"),
            "{error}"
        );
    }
    assert_eq!(dev.accepted(), ["accepted example-app stable 3"]);
    // A damaged state file is an error, not a reason to forget what was accepted.
    std::fs::write(dev.state_file(), "accepted everything\n").unwrap();
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&url], &[], code::FAILURE, Some(&v[2]));
        assert!(
            json["error"].as_str().unwrap().contains("damaged"),
            "{json}"
        );
    }
    // The same sequence with other bytes (here a manifest re-made with another
    // creation time, validly signed): refused, the state keeps the first.
    std::fs::write(dev.state_file(), &state).unwrap();
    let other = p.dir.join("publish-seq3-other");
    copy_dir(&old, &other);
    p.build_into(&other, "1.2", &v[2], &[]);
    assert_eq!(Publisher::manifest(&other).sequence, 3);
    assert_ne!(
        std::fs::read(other.join(MANIFEST_FILE)).unwrap(),
        std::fs::read(p.out().join(MANIFEST_FILE)).unwrap()
    );
    server.put_dir("/", &other);
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&url], &[], code::REFUSED, Some(&v[2]));
        let error = json["error"].as_str().unwrap();
        assert!(error.contains("with other bytes"), "{error}");
    }
    assert_eq!(std::fs::read_to_string(dev.state_file()).unwrap(), state);
    // The same bytes again are accepted (up to date).
    server.put_dir("/", &p.out());
    dev.update(&[&url], &[], code::OK, Some(&v[2]));
    server.put_dir("/", &old);
    // A device that never saw sequence 3 takes it.
    let fresh = Device::new(&p.public_key(), Some(&v[0]));
    fresh.update(&[&url], &[], code::OK, Some(&v[1]));
}

#[test]
fn the_newest_manifest_among_mirrors_is_used_whatever_their_order() {
    let p = Publisher::new("example-app");
    let v = releases(29, 3);
    publish_all(&p, &v[..2]);
    // A mirror that lags behind: the publish directory as it was at 1.1.
    let lagging = p.dir.join("lagging");
    copy_dir(&p.out(), &lagging);
    p.build("1.2", &v[2], &[]);
    let server = Server::start();
    server.put_dir("/old/", &lagging);
    server.put_dir("/new/", &p.out());
    let old_url = format!("{}old/", server.url());
    let new_url = format!("{}new/", server.url());
    for mirrors in [
        [old_url.as_str(), new_url.as_str()],
        [new_url.as_str(), old_url.as_str()],
    ] {
        let dev = Device::new(&p.public_key(), Some(&v[0]));
        let json = dev.update(&mirrors, &[], code::OK, Some(&v[2]));
        assert_eq!(json["sequence"], 3, "{json}");
        assert_eq!(json["source"].as_str().unwrap(), new_url.as_str(), "{json}");
    }
}

#[test]
fn expired_manifest_is_refused_unless_allowed() {
    let p = Publisher::new("example-app");
    let v = releases(15, 2);
    let month_ago = Timestamp::now().0 - 30 * 86_400;
    for (i, c) in v.iter().enumerate() {
        let file = p.dir.write(&format!("{i}.bin"), c);
        let created = Timestamp(month_ago + i as u64 * 3600);
        p.build_at(
            &p.out(),
            &format!("1.{i}"),
            &file,
            created,
            &["--valid-days", "1"],
        );
    }
    let server = Server::start();
    server.put_dir("/", &p.out());
    let url = server.url();
    let dev = Device::new(&p.public_key(), Some(&v[0]));
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&url], &[], code::REFUSED, Some(&v[0]));
        assert!(
            json["error"].as_str().unwrap().contains("expired"),
            "{json}"
        );
    }
    assert!(!dev.state_file().exists());
    assert_eq!(paths(&server.log()[..2]), [MANIFEST, SIGNATURE]);
    let json = dev.update(&[&url], &["--allow-expired"], code::OK, Some(&v[1]));
    assert_eq!(json["expired"], true);
    assert_eq!(json["result"]["route"], "patch");
}

/// Plan case 10, the untrusted clock: a device whose clock shows 1970 would take an
/// expired manifest (a frozen feed) for a fresh one. A clock more than a day behind the
/// manifest's creation is refused as an expired manifest is, unless allowed.
#[test]
fn a_clock_far_behind_the_manifest_is_refused_unless_expired_is_allowed() {
    let p = Publisher::new("example-app");
    let v = releases(19, 2);
    let month_ago = Timestamp::now().0 - 30 * 86_400;
    for (i, c) in v.iter().enumerate() {
        let file = p.dir.write(&format!("{i}.bin"), c);
        let created = Timestamp(month_ago + i as u64 * 3600);
        p.build_at(
            &p.out(),
            &format!("1.{i}"),
            &file,
            created,
            &["--valid-days", "1"],
        );
    }
    let server = Server::start();
    server.put_dir("/", &p.out());
    let url = server.url();
    let mut dev = Device::new(&p.public_key(), Some(&v[0]));
    dev.clock = Some("1970-01-02 00:00:00");
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&url], &[], code::REFUSED, Some(&v[0]));
        let error = json["error"].as_str().unwrap();
        assert!(
            error.contains("more than a day after this device's clock")
                && error.contains("1970-01-02"),
            "{json}"
        );
    }
    assert!(!dev.state_file().exists());
    // An hour behind the newest manifest's creation is within the skew, and by that
    // clock the manifest has not expired yet.
    let hour_behind = format_unix(month_ago);
    dev.clock = Some(Box::leak(hour_behind.into_boxed_str()));
    let json = dev.run("check", &[&url], &[], code::OK, Some(&v[0]));
    assert_eq!(json["expired"], false, "{json}");
    dev.clock = Some("1970-01-02 00:00:00");
    let json = dev.update(&[&url], &["--allow-expired"], code::OK, Some(&v[1]));
    assert_eq!(json["result"]["route"], "patch");
}

/// `faketime`'s absolute form for `secs` after the epoch (UTC).
fn format_unix(secs: u64) -> String {
    Timestamp(secs)
        .to_string()
        .replace('T', " ")
        .replace('Z', "")
}

#[test]
fn manifest_not_signed_by_a_trusted_key_is_refused() {
    let t = Two::new(16);
    let url = t.url();
    // Another publisher's key.
    let stranger = Publisher::new("example-app");
    let dev = Device::new(&stranger.public_key(), Some(&t.v[0]));
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&url], &[], code::UNTRUSTED, Some(&t.v[0]));
        assert!(
            json["error"].as_str().unwrap().contains("signature"),
            "{json}"
        );
    }
    assert!(!dev.state_file().exists());

    // The right key, but the signature file of another manifest of the same
    // publisher: refused after fetching both once more.
    let other = t.publisher.dir.join("publish-other");
    t.publisher.build_into(&other, "9.0", &t.v[0], &[]);
    let sig = std::fs::read(other.join(SIGNATURE_FILE)).unwrap();
    t.server
        .put(SIGNATURE, http::Resource::new(&sig, "swapped"));
    let before = t.server.log().len();
    let dev = t.device(Some(&t.v[0]));
    for sub in ["update", "check"] {
        dev.run(sub, &[&url], &[], code::UNTRUSTED, Some(&t.v[0]));
    }
    assert!(!dev.state_file().exists());
    let log = t.server.log();
    assert_eq!(
        paths(&log[before..]),
        [MANIFEST, SIGNATURE, MANIFEST, SIGNATURE].repeat(2)
    );
}

/// Plan case 37: a state file that is lost (or deleted to reset the device) must not
/// open the way to a rollback past the release the device shipped with: the floor
/// (`Policy::min_sequence`, `--min-sequence`) holds whatever the state file says.
#[test]
fn a_sequence_floor_holds_without_the_state_file() {
    let p = Publisher::new("example-app");
    let v = releases(20, 2);
    publish_all(&p, &v);
    let newest = Publisher::manifest(&p.out()).sequence;
    let server = Server::start();
    server.put_dir("/", &p.out());
    let url = server.url();
    let dev = Device::new(&p.public_key(), Some(&v[0]));
    let floor = (newest + 1).to_string();
    for sub in ["update", "check"] {
        let json = dev.run(
            sub,
            &[&url],
            &["--min-sequence", &floor],
            code::REFUSED,
            Some(&v[0]),
        );
        let error = json["error"].as_str().unwrap();
        assert!(
            error.contains(&format!(
                "sequence {newest}, below the lowest this device accepts"
            )),
            "{json}"
        );
    }
    assert!(!dev.state_file().exists());
    let at_floor = newest.to_string();
    dev.update(
        &[&url],
        &["--min-sequence", &at_floor],
        code::OK,
        Some(&v[1]),
    );
}

#[test]
fn state_file_pins_the_product() {
    let app = Publisher::new("example-app");
    let v = releases(17, 2);
    publish_all(&app, &v);
    let tool = app.same_key("other-tool");
    let w = releases(18, 2);
    publish_all(&tool, &w);
    let server = Server::start();
    server.put_dir("/app/", &app.out());
    server.put_dir("/tool/", &tool.out());
    let app_url = format!("{}app/", server.url());
    let tool_url = format!("{}tool/", server.url());

    let dev = Device::new(&app.public_key(), Some(&v[0]));
    dev.update(&[&app_url], &[], code::OK, Some(&v[1]));
    assert_eq!(dev.accepted(), ["accepted example-app stable 2"]);
    // Another product signed with the same key: refused.
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&tool_url], &[], code::REFUSED, Some(&v[1]));
        let error = json["error"].as_str().unwrap();
        assert!(
            error.contains("other-tool") && error.contains("--product"),
            "{error}"
        );
    }
    // --product of the other names the switch: its full image replaces the file.
    let json = dev.update(
        &[&tool_url],
        &["--product", "other-tool"],
        code::OK,
        Some(&w[1]),
    );
    assert_eq!(json["product"], "other-tool");
    assert_eq!(json["result"]["route"], "full");
    assert_eq!(
        dev.accepted(),
        [
            "accepted example-app stable 2",
            "accepted other-tool stable 2"
        ]
    );

    // --product refuses another product even without a state file.
    let fresh = Device::new(&app.public_key(), Some(&v[0]));
    fresh.update(
        &[&tool_url],
        &["--product", "example-app"],
        code::REFUSED,
        Some(&v[0]),
    );
    assert!(!fresh.state_file().exists());
}

#[test]
fn state_file_pins_the_channel() {
    let stable = Publisher::new("example-app");
    let v = releases(27, 2);
    publish_all(&stable, &v);
    // The same product's beta channel, validly signed with the same key.
    let mut beta = stable.same_key("example-app");
    beta.channel = "beta".into();
    let w = releases(28, 1);
    publish_all(&beta, &w);
    let server = Server::start();
    server.put_dir("/stable/", &stable.out());
    server.put_dir("/beta/", &beta.out());
    let stable_url = format!("{}stable/", server.url());
    let beta_url = format!("{}beta/", server.url());

    let dev = Device::new(&stable.public_key(), Some(&v[0]));
    dev.update(&[&stable_url], &[], code::OK, Some(&v[1]));
    assert_eq!(dev.accepted(), ["accepted example-app stable 2"]);
    // A mirror serving the beta manifest to a device following stable: refused.
    for sub in ["update", "check"] {
        let json = dev.run(sub, &[&beta_url], &[], code::REFUSED, Some(&v[1]));
        let error = json["error"].as_str().unwrap();
        assert!(
            error.contains("\"beta\"") && error.contains("stable") && error.contains("--channel"),
            "{error}"
        );
    }
    assert_eq!(dev.accepted(), ["accepted example-app stable 2"]);
    // --channel stable refuses beta even where the state would not.
    let fresh = Device::new(&stable.public_key(), Some(&v[0]));
    fresh.update(
        &[&beta_url],
        &["--channel", "stable"],
        code::REFUSED,
        Some(&v[0]),
    );
    assert!(!fresh.state_file().exists());
    // --channel beta names the switch.
    let json = dev.update(&[&beta_url], &["--channel", "beta"], code::OK, Some(&w[0]));
    assert_eq!(json["channel"], "beta");
    assert_eq!(
        dev.accepted(),
        [
            "accepted example-app beta 1",
            "accepted example-app stable 2"
        ]
    );
}

// ---------------------------------------------------------------------------------
// Policy limits

#[test]
fn no_full_and_max_download_limits() {
    let t = Two::new(19);
    let url = t.url();

    // Only the full image would do and --no-full forbids it: exit 8, nothing fetched
    // but the manifest and its signature.
    let modified = flipped(&t.v[0]);
    let dev = t.device(Some(&modified));
    let json = dev.update(&[&url], &["--no-full"], code::NO_ROUTE, Some(&modified));
    assert!(
        json["error"].as_str().unwrap().contains("--no-full"),
        "{json}"
    );
    dev.check(&[&url], &["--no-full"], code::NO_ROUTE, Some(&modified));
    assert_eq!(
        paths(&t.server.log()),
        [MANIFEST, SIGNATURE, MANIFEST, SIGNATURE]
    );
    assert!(dev.cache_names().is_empty());

    // Every route is larger than --max-download: exit 5.
    let dev = t.device(Some(&t.v[0]));
    let limit = (t.patch.1 - 1).to_string();
    let before = t.server.log().len();
    let json = dev.update(
        &[&url],
        &["--max-download", &limit],
        code::LIMIT,
        Some(&t.v[0]),
    );
    assert!(
        json["error"].as_str().unwrap().contains("--max-download"),
        "{json}"
    );
    assert_eq!(paths(&t.server.log()[before..]), [MANIFEST, SIGNATURE]);
    // Exactly the patch's size is enough.
    let limit = t.patch.1.to_string();
    let json = dev.update(
        &[&url],
        &["--max-download", &limit],
        code::OK,
        Some(&t.v[1]),
    );
    assert_eq!(json["result"]["route"], "patch");
}

// ---------------------------------------------------------------------------------
// Offline media and check

#[test]
fn updates_from_a_local_directory_and_a_file_url() {
    let p = Publisher::new("example-app");
    let v = releases(20, 3);
    publish_all(&p, &v);
    let out = p.out();
    let before = snapshot(&out);
    let dir = out.to_str().unwrap().to_string();
    let file_url = format!("file://{dir}");
    for from in [&dir, &file_url] {
        let dev = Device::new(&p.public_key(), Some(&v[1]));
        let json = dev.update(&[from], &[], code::OK, Some(&v[2]));
        // A file:// URL is reported as the directory it names.
        assert_eq!(json["source"].as_str().unwrap().trim_end_matches('/'), dir);
        assert_eq!(json["result"]["route"], "patch");
        assert_eq!(json["result"]["downloaded"], 0);
        let dev = Device::new(&p.public_key(), None);
        let json = dev.update(&[from], &[], code::OK, Some(&v[2]));
        assert_eq!(json["result"]["route"], "full");
    }
    // The stick is read, never written.
    assert!(snapshot(&out) == before, "the publish directory changed");
}

#[test]
fn check_writes_nothing_and_plans_what_update_does() {
    let t = Two::new(21);
    let url = t.url();
    for installed in [Some(t.v[0].clone()), Some(flipped(&t.v[0])), None] {
        let dev = t.device(installed.as_deref());
        let check = dev.check(&[&url], &[], code::OK, installed.as_deref());
        assert_eq!(check["command"], "check");
        assert!(check.get("result").is_none(), "{check}");
        // Nothing written: no state file, no download directory.
        assert_eq!(
            dev.dir.names(),
            installed.iter().map(|_| ARTIFACT).collect::<Vec<_>>()
        );
        let update = dev.update(&[&url], &[], code::OK, Some(&t.v[1]));
        assert_eq!(update["plan"], check["plan"]);
        assert_eq!(update["installed"], check["installed"]);
        assert_eq!(update["result"]["route"], check["plan"]["route"]);
        assert_eq!(update["result"]["steps"], check["plan"]["steps"]);
        assert_eq!(
            update["result"]["downloaded"],
            check["plan"]["download_size"]
        );
        // Up to date now: check says so, still writing nothing new.
        let names = dev.dir.names();
        let again = dev.check(&[&url], &[], code::OK, Some(&t.v[1]));
        assert_eq!(again["plan"]["route"], "up-to-date");
        assert_eq!(again["update_available"], false);
        assert_eq!(dev.dir.names(), names);
    }
}
