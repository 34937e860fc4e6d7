//! What makes both command lines feel finished: shell completions and man pages made
//! from the argument definitions (`deltapack completions`, `deltapack man`), `--version`
//! naming the formats, and `-q` / `-v` meaning the same in both tools.
//! Needs the deltaapply binary: `cargo test --workspace`, or `cargo build -p
//! deltaapply-cli` first (see `common::deltaapply_bin`).

mod common;

use assert_cmd::Command;
use common::{Dir, deltaapply_bin, release_pair};

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

fn deltaapply() -> Command {
    let mut cmd = Command::new(deltaapply_bin());
    cmd.env_remove("DELTAAPPLY_KEY");
    cmd
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_name_every_subcommand_and_parse_in_bash() {
    for (tool, subcommands) in [
        (
            "deltapack",
            &[
                "diff",
                "build",
                "verify",
                "inspect",
                "keygen",
                "key",
                "completions",
                "man",
            ][..],
        ),
        ("deltaapply", &["apply", "check", "update", "inspect"][..]),
    ] {
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let text = stdout_of(deltapack().args(["completions", shell, "--tool", tool]));
            for sub in subcommands {
                assert!(text.contains(sub), "{tool} {shell} completions lack {sub}");
            }
            assert!(text.contains("quiet"), "{tool} {shell}: no --quiet");
        }
        let bash = stdout_of(deltapack().args(["completions", "bash", "--tool", tool]));
        let dir = Dir::new();
        dir.write("completion.bash", bash.as_bytes());
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(dir.join("completion.bash"))
            .status()
            .unwrap();
        assert!(status.success(), "bash -n refuses the {tool} completions");
    }
    deltapack().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn man_pages_cover_both_tools_and_their_subcommands() {
    let dir = Dir::new();
    let out = dir.join("man");
    deltapack().arg("man").arg(&out).assert().success();
    for page in [
        "deltapack.1",
        "deltapack-diff.1",
        "deltapack-build.1",
        "deltaapply.1",
        "deltaapply-apply.1",
        "deltaapply-update.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is not roff"
        );
    }
    let apply = std::fs::read_to_string(out.join("deltaapply-apply.1")).unwrap();
    assert!(
        apply.contains("expect\\-sha256"),
        "apply's page lacks --expect-sha256"
    );
}

#[test]
fn long_version_names_the_formats_both_tools_read() {
    let container = format!("container version {}", deltaapply::container::VERSION);
    for mut cmd in [deltapack(), deltaapply()] {
        let text = stdout_of(cmd.arg("--version"));
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
        for part in [container.as_str(), "tree-v1", "manifest-v1", "BSDIFF40"] {
            assert!(text.contains(part), "--version lacks {part}: {text}");
        }
    }
}

#[test]
fn quiet_says_nothing_and_verbose_shows_each_step() {
    let dir = Dir::new();
    let (old, new) = release_pair(64 << 10, 7);
    dir.write("old.bin", &old);
    dir.write("new.bin", &new);
    let diff = |flag: &str, patch: &str| {
        let mut cmd = deltapack();
        cmd.arg(flag)
            .arg("diff")
            .arg(dir.join("old.bin"))
            .arg(dir.join("new.bin"))
            .arg("-o")
            .arg(dir.join(patch));
        cmd.output().unwrap()
    };
    let quiet = diff("-q", "q.dpatch");
    assert!(quiet.status.success(), "{quiet:?}");
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{quiet:?}"
    );
    let normal = diff("--verbose", "v.dpatch");
    assert!(
        normal.status.success() && !normal.stdout.is_empty(),
        "{normal:?}"
    );

    let apply = |flags: &[&str], out: &str| {
        deltaapply()
            .args(flags)
            .arg("apply")
            .arg(dir.join("old.bin"))
            .arg(dir.join("q.dpatch"))
            .arg("-o")
            .arg(dir.join(out))
            .output()
            .unwrap()
    };
    let quiet = apply(&["--quiet"], "q.out");
    assert!(quiet.status.success(), "{quiet:?}");
    // The only line left is the warning that nobody vouched for the unsigned patch.
    let text = String::from_utf8_lossy(&quiet.stderr);
    assert!(!text.contains("wrote"), "{text}");
    assert!(
        text.contains("warning"),
        "the origin warning must stay: {text}"
    );
    assert_eq!(std::fs::read(dir.join("q.out")).unwrap(), new);

    let verbose = apply(&["-v"], "v.out");
    let text = String::from_utf8_lossy(&verbose.stderr);
    for step in ["checking old file", "checking patch", "writing", "wrote"] {
        assert!(text.contains(step), "-v lacks {step:?}: {text}");
    }
    deltaapply()
        .args(["-q", "-v", "inspect"])
        .arg(dir.join("q.dpatch"))
        .assert()
        .code(2);
}
