//! The rule of this crate: the formats without I/O. Its sources never name the
//! filesystem, the network, processes or the environment, and its dependency tree
//! (`cargo tree`) holds none of the crates that do I/O for the rest of the toolchain.

use std::path::{Path, PathBuf};

/// What no source file of this crate may contain.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "fs::",
    "File::",
    "OpenOptions",
    "std::net",
    "TcpStream",
    "std::process",
    "std::env",
    "env::var",
    "std::thread",
];

/// Crates the I/O-performing parts of the toolchain use; none may be in this crate's
/// tree.
const FORBIDDEN_CRATES: &[&str] = &[
    "reqwest",
    "hyper",
    "tokio",
    "mio",
    "socket2",
    "rustls",
    "tempfile",
    "rustix",
    "libc",
    "zstd",
    "clap",
    "anyhow",
    "indicatif",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_sources_do_no_io() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() >= 10, "found only {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    found.push(format!("{}:{}: {word}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O in the format core:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_dependency_tree_has_no_io_crates() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "deltaapply-format",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"sha2") && names.contains(&"ed25519-dalek"),
        "{tree}"
    );
    let bad: Vec<&&str> = names
        .iter()
        .filter(|n| FORBIDDEN_CRATES.contains(n))
        .collect();
    assert!(
        bad.is_empty(),
        "I/O crates in the format core's tree: {bad:?}\n{tree}"
    );
}
