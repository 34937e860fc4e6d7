//! The rule of this crate: the formats without I/O. Its dependency tree (`cargo tree`)
//! holds none of the crates that do I/O for the rest of the toolchain; that its
//! sources never name the filesystem, the network, processes or the environment is
//! checked with the other layout rules (`deltapack/tests/architecture.rs`).

/// Crates the I/O-performing parts of the toolchain use; none may be in this crate's
/// tree.
const FORBIDDEN_CRATES: &[&str] = &[
    "reqwest",
    "ureq",
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
