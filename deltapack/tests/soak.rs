//! Hostile-server soak (issue 15.5): a bounded loop of `deltaapply update` over HTTP on
//! 127.0.0.1 against a server that, per request, answers with a random fault: 5xx and
//! 429, a reset or a stall mid-body, Range ignored or cut short, no Content-Length,
//! redirects to other schemes and hosts, a patch or full image with wrong bytes or
//! trailing garbage. Every run must end with the newest release installed, or with a
//! non-zero exit and the installed file exactly as it was; a final clean run must then
//! complete and leave only the target and its state file. The outcomes are printed
//! (`cargo test --test soak -- --nocapture`) as N/N.
//! Run `cargo build -p deltaapply-cli` first (or `cargo test --workspace`).

mod common;
#[path = "../../deltaapply/tests/common/http.rs"]
mod http;

use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{Dir, Rng, deltaapply_bin, release_pair};
use http::{Fault, Resource, Server};

/// Runs at most this many updates, and stops starting new ones after [`BUDGET`].
const RUNS: usize = 30;
const BUDGET: Duration = Duration::from_secs(150);

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

/// Publishes `1.0`, `1.1`, `1.2` of `releases` into `dir/publish`, signed with a new key.
fn publish(dir: &Dir, releases: &[Vec<u8>]) {
    deltapack()
        .arg("keygen")
        .arg("--secret-key")
        .arg(dir.join("release.key"))
        .arg("--public-key")
        .arg(dir.join("release.pub"))
        .assert()
        .success();
    let now = deltaapply::manifest::Timestamp::now().0;
    for (i, content) in releases.iter().enumerate() {
        let version = format!("1.{i}");
        let file = dir.write(&format!("{version}.bin"), content);
        let created = deltaapply::manifest::Timestamp(now - 86_400 + 3600 * i as u64);
        deltapack()
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
                &version,
            ])
            .arg("--artifact")
            .arg(format!("app.bin={}", file.display()))
            .args(["--created", &created.to_string()])
            .assert()
            .success();
    }
}

/// Every file of the publish directory, by its URL path.
fn served_paths(publish: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![publish.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(publish).unwrap();
                out.push(format!("/{}", rel.to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

fn random_fault(rng: &mut Rng, len: usize) -> Fault {
    let at = rng.below(len.max(1));
    match rng.below(11) {
        0 => Fault::Status(503),
        1 => Fault::Status(500),
        2 => Fault::Status(429),
        3 => Fault::Status(404),
        4 => Fault::DropAfter(at),
        5 => Fault::StallAfter(at),
        6 => Fault::IgnoreRange,
        7 => Fault::ShortRange(at as u64),
        8 => Fault::NoLength,
        9 => Fault::Redirect("ftp://127.0.0.1/publish/manifest.toml".into()),
        _ => Fault::Redirect("file:///etc/passwd".into()),
    }
}

#[derive(Default, Debug)]
struct Outcomes {
    runs: usize,
    updated: usize,
    refused_intact: usize,
}

#[test]
fn updates_against_a_hostile_server_end_new_or_intact() {
    let releases: Vec<Vec<u8>> = {
        let (a, b) = release_pair(256 << 10, 21);
        let (_, c) = release_pair(256 << 10, 22);
        let mut c2 = b.clone();
        c2[..c.len().min(4096)].copy_from_slice(&c[..c.len().min(4096)]);
        vec![a, b, c2]
    };
    let publisher = Dir::new();
    publish(&publisher, &releases);
    let publish_dir = publisher.join("publish");
    let server = Server::start();
    let paths = served_paths(&publish_dir);
    let mut rng = Rng::new(2026);
    let mut outcomes = Outcomes::default();
    let started = Instant::now();
    let newest = releases.last().unwrap();
    for run in 0..RUNS {
        if started.elapsed() > BUDGET {
            break;
        }
        server.put_dir("/", &publish_dir);
        // Wrong bytes or trailing garbage in one content file, some of the time.
        let content: Vec<&String> = paths.iter().filter(|p| p.ends_with(".dpatch")).collect();
        if !content.is_empty() && rng.below(3) == 0 {
            let victim = content[rng.below(content.len())];
            let mut body = server.body(victim).unwrap();
            if rng.below(2) == 0 {
                let i = rng.below(body.len());
                body[i] ^= 0x40;
            } else {
                body.extend_from_slice(b"trailing garbage");
            }
            server.put(victim, Resource::new(&body, "\"tampered\""));
        }
        for path in &paths {
            let len = server.body(path).map_or(0, |b| b.len());
            let faults: Vec<Fault> = (0..rng.below(4))
                .map(|_| random_fault(&mut rng, len))
                .collect();
            server.faults(path, faults);
        }
        let installed = &releases[rng.below(releases.len() - 1)];
        let device = Dir::new();
        device.write("app.bin", installed);
        let out = std::process::Command::new(deltaapply_bin())
            .env_remove("DELTAAPPLY_KEY")
            .arg("update")
            .args(["--from", &server.url()])
            .arg("--key")
            .arg(publisher.join("release.pub"))
            .arg("--target")
            .arg(device.join("app.bin"))
            .args([
                "--retries",
                "3",
                "--connect-timeout",
                "2",
                "--read-timeout",
                "1",
            ])
            .arg("--json")
            .output()
            .unwrap();
        outcomes.runs += 1;
        let got = device.read("app.bin");
        let case = format!("run {run}: {}", String::from_utf8_lossy(&out.stdout));
        if out.status.success() {
            assert_eq!(&got, newest, "{case}: succeeded without the newest release");
            outcomes.updated += 1;
        } else {
            assert!(out.status.code().is_some(), "{case}: killed by a signal");
            assert_eq!(
                &got, installed,
                "{case}: failed and changed the installed file"
            );
            outcomes.refused_intact += 1;
        }
        // A clean server: the next run completes and leaves nothing behind.
        server.put_dir("/", &publish_dir);
        server.clear_faults();
        let again = std::process::Command::new(deltaapply_bin())
            .env_remove("DELTAAPPLY_KEY")
            .arg("update")
            .args(["--from", &server.url()])
            .arg("--key")
            .arg(publisher.join("release.pub"))
            .arg("--target")
            .arg(device.join("app.bin"))
            .arg("--json")
            .output()
            .unwrap();
        assert!(again.status.success(), "run {run}, clean rerun: {again:?}");
        assert_eq!(&device.read("app.bin"), newest, "run {run}, clean rerun");
        assert_eq!(
            device.names(),
            [".app.bin.deltaapply-state", "app.bin"],
            "run {run}: left behind after the clean rerun"
        );
    }
    eprintln!(
        "soak: {runs}/{runs} runs ended new or intact ({updated} updated, {refused} refused \
         with the installed file intact), in {:.0} s",
        started.elapsed().as_secs_f64(),
        runs = outcomes.runs,
        updated = outcomes.updated,
        refused = outcomes.refused_intact,
    );
    assert!(outcomes.runs >= 10, "{outcomes:?}");
    assert!(
        outcomes.updated > 0 && outcomes.refused_intact > 0,
        "the faults should make some runs fail and let others through: {outcomes:?}"
    );
}
