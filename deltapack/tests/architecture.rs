//! The layout rules of ARCHITECTURE.md, checked on the sources of every crate of the
//! workspace: no module imports (through `crate::` paths) a module that imports it,
//! directly or through others; no source file holds more than 800 lines of code
//! before its test module; and the format core's code does no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: &[&str] = &[
    "deltaapply-format/src",
    "deltaapply-apply/src",
    "deltaapply-fetch/src",
    "deltaapply-update/src",
    "deltaapply/src",
    "deltaapply-ffi/src",
    "deltaapply-cli/src",
    "deltapack/src",
];
const MAX_CODE_LINES: usize = 800;

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

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The module path of a source file (`tree::apply` for `tree/apply/mod.rs`).
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its test module, comments and doc comments.
fn code(text: &str) -> Vec<&str> {
    text.split("\n#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with("//")
        })
        .collect()
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let mut found = Vec::new();
    for krate in CRATES {
        let root = workspace().join(krate);
        let mut files = Vec::new();
        sources(&root, &mut files);
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let module = module_of(&root, file);
            // The binary's edge (main.rs, cmd/) sits on top of everything by design.
            if module.is_empty() || module.starts_with("cmd") {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let deps = uses.entry(module).or_default();
            for line in code(&text) {
                let mut rest = line;
                while let Some(i) = rest.find("crate::") {
                    rest = &rest[i + 7..];
                    let path: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    deps.insert(path);
                }
            }
        }
        let modules: BTreeSet<String> = uses.keys().cloned().collect();
        // Each `crate::a::b::Item` is an edge to the longest module path it names;
        // edges between a module and its own parents or children are not cycles.
        let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (module, deps) in &uses {
            for dep in deps {
                let mut parts: Vec<&str> = dep.split("::").filter(|p| !p.is_empty()).collect();
                while !parts.is_empty() && !modules.contains(&parts.join("::")) {
                    parts.pop();
                }
                let Some(target) = modules.get(&parts.join("::")) else {
                    continue;
                };
                let related = target == module
                    || module.starts_with(&format!("{target}::"))
                    || target.starts_with(&format!("{module}::"));
                if !related {
                    graph.entry(module).or_default().insert(target);
                }
            }
        }
        // A module reaching itself is a cycle.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&str> = graph[start].iter().copied().collect();
            while let Some(m) = todo.pop() {
                if m == *start {
                    found.push(format!("{krate}: {start} imports itself through others"));
                    break;
                }
                if seen.insert(m) {
                    todo.extend(graph.get(m).into_iter().flatten().copied());
                }
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn no_file_is_over_800_lines_of_code() {
    let mut found = Vec::new();
    let mut checked = 0;
    for krate in CRATES {
        let mut files = Vec::new();
        sources(&workspace().join(krate), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines = code(&text).len();
            checked += 1;
            if lines > MAX_CODE_LINES {
                found.push(format!("{}: {lines} lines of code", file.display()));
            }
        }
    }
    assert!(checked > 40, "only {checked} files found");
    assert!(
        found.is_empty(),
        "files over {MAX_CODE_LINES} lines of code:\n{}",
        found.join("\n")
    );
}

/// What no source file of the format core may contain.
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

#[test]
fn the_format_core_does_no_io() {
    let mut files = Vec::new();
    sources(&workspace().join("deltaapply-format/src"), &mut files);
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

/// The crates of the applier's network stack and of the command line.
const NETWORK_CRATES: &[&str] = &[
    "reqwest", "hyper", "tokio", "ureq", "rustls", "socket2", "mio",
];
const CLI_CRATES: &[&str] = &["clap", "anyhow", "indicatif", "serde_json"];
/// What the C library must not link: the command line and the producer. Its results
/// are JSON, so serde_json is allowed there, and only there.
const NOT_IN_FFI: &[&str] = &["clap", "anyhow", "indicatif", "deltaapply-cli", "deltapack"];

/// The names in `cargo tree -p PACKAGE -e normal` with `extra` arguments.
fn dependency_names(package: &str, extra: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            package,
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(extra)
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn having<'a>(names: &'a [String], forbidden: &[&str]) -> Vec<&'a str> {
    let mut found: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| forbidden.contains(n))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// A package, the extra `cargo tree` arguments, the crate lists it must not link.
type Rule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static [&'static str]],
);

/// ARCHITECTURE.md's dependency rules, as `cargo tree` shows them: apply and update
/// link no network stack of their own (the facade's `http` feature decides), and no
/// library an installer embeds links the command-line crates.
#[test]
fn each_crate_keeps_to_its_dependency_rule() {
    let cases: &[Rule] = &[
        ("deltaapply-apply", &[], &[NETWORK_CRATES, CLI_CRATES]),
        ("deltaapply-fetch", &[], &[NETWORK_CRATES, CLI_CRATES]),
        ("deltaapply-fetch", &["--features", "http"], &[CLI_CRATES]),
        ("deltaapply-update", &[], &[NETWORK_CRATES, CLI_CRATES]),
        ("deltaapply", &[], &[CLI_CRATES]),
        (
            "deltaapply",
            &["--no-default-features"],
            &[NETWORK_CRATES, CLI_CRATES],
        ),
        ("deltaapply-ffi", &[], &[NOT_IN_FFI]),
    ];
    for (package, extra, rules) in cases {
        let names = dependency_names(package, extra);
        assert!(names.iter().any(|n| n == package), "{package}: {names:?}");
        for forbidden in *rules {
            let found = having(&names, forbidden);
            assert!(
                found.is_empty(),
                "{package} {extra:?} links {found:?}, which ARCHITECTURE.md keeps out of it"
            );
        }
    }
    let with_http = dependency_names("deltaapply", &[]);
    assert!(
        !having(&with_http, NETWORK_CRATES).is_empty(),
        "the facade's default http feature links no network stack: {with_http:?}"
    );
}
