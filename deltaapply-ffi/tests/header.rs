//! The hand-written header must declare exactly the library's entry points: the same
//! names, the same parameters (names and types, in order), the same return types, and
//! the same values for every code and progress phase.

use std::collections::BTreeMap;

const HEADER: &str = include_str!("../include/deltaapply.h");
const ABI: &str = include_str!("../src/abi.rs");

/// Function name to (return type, [(parameter, type)]) in C spelling.
type Signatures = BTreeMap<String, (String, Vec<(String, String)>)>;

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits a C declarator `const char *name` into (type, name).
fn c_param(p: &str) -> (String, String) {
    let p = squash(p);
    let at = p
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let (ty, name) = p.split_at(at);
    let ty = squash(&ty.replace('*', " * ")).replace("* *", "**");
    // The handle typedef is a uint64_t (checked below).
    let ty = if ty == "deltaapply_handle" {
        "uint64_t".to_string()
    } else {
        ty
    };
    let ty = ty.replace("deltaapply_handle *", "uint64_t *");
    (ty, name.to_string())
}

fn header_signatures() -> Signatures {
    let mut out = Signatures::new();
    // Prototypes are one a line, outside comments.
    for line in HEADER.lines().map(str::trim) {
        if line.starts_with("/*") || line.starts_with('*') || line.starts_with('#') {
            continue;
        }
        let Some(open) = line.find("deltaapply_").filter(|_| line.ends_with(");")) else {
            continue;
        };
        if line.starts_with("typedef") {
            continue;
        }
        let paren = line.find('(').unwrap();
        let (ret, name) = c_param(&line[..paren]);
        assert!(open <= paren);
        let inner = &line[paren + 1..line.len() - 2];
        let params = if inner.trim() == "void" {
            Vec::new()
        } else {
            inner
                .split(',')
                .map(|p| {
                    let (ty, name) = c_param(p);
                    (name, ty)
                })
                .collect()
        };
        out.insert(name, (ret, params));
    }
    out
}

fn rust_type(t: &str) -> String {
    match squash(t).as_str() {
        "u64" => "uint64_t",
        "u32" => "uint32_t",
        "i32" => "int",
        "*mut u64" => "uint64_t *",
        "*const c_char" => "const char *",
        "*mut c_char" => "char *",
        "*mut *mut c_char" => "char **",
        "*mut c_void" => "void *",
        "Option<ProgressFn>" => "deltaapply_progress_fn",
        other => panic!("no C spelling for the Rust type {other:?}: add it to rust_type"),
    }
    .to_string()
}

fn rust_signatures() -> Signatures {
    let mut out = Signatures::new();
    let mut rest = ABI;
    while let Some(at) = rest.find("extern \"C\" fn ") {
        let decl = &rest[at + "extern \"C\" fn ".len()..];
        let body = decl.find('{').unwrap();
        let decl = &decl[..body];
        let paren = decl.find('(').unwrap();
        let name = decl[..paren].trim().to_string();
        let close = decl.rfind(')').unwrap();
        let params = decl[paren + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, t) = p.split_once(':').unwrap();
                (n.trim().to_string(), rust_type(t))
            })
            .collect();
        let ret = match decl[close + 1..].trim().strip_prefix("->") {
            None => "void".to_string(),
            Some(t) => rust_type(t),
        };
        out.insert(name, (ret, params));
        rest = &rest[at + 1..];
    }
    out
}

#[test]
fn the_header_declares_every_entry_point_as_the_library_defines_it() {
    let header = header_signatures();
    let rust = rust_signatures();
    assert!(
        rust.len() >= 14,
        "found only {} entry points in abi.rs",
        rust.len()
    );
    for (name, sig) in &rust {
        assert_eq!(
            header.get(name),
            Some(sig),
            "{name}: header differs from abi.rs"
        );
    }
    for name in header.keys() {
        assert!(
            rust.contains_key(name),
            "{name} is in the header but not in abi.rs"
        );
    }
}

#[test]
fn the_typedefs_match_the_library() {
    let squashed = squash(HEADER);
    assert!(squashed.contains("typedef uint64_t deltaapply_handle;"));
    assert!(squashed.contains(
        "typedef int (*deltaapply_progress_fn)(void *user, int phase, uint64_t done, uint64_t total);"
    ));
    let abi_handle = squash(include_str!("../src/handle.rs"));
    assert!(
        abi_handle
            .contains("pub type ProgressFn = extern \"C\" fn(*mut c_void, i32, u64, u64) -> i32;")
    );
}

fn defines() -> BTreeMap<String, i32> {
    HEADER
        .lines()
        .filter_map(|l| l.strip_prefix("#define DELTAAPPLY_"))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            let value = it.next()?.parse().ok()?;
            Some((format!("DELTAAPPLY_{name}"), value))
        })
        .collect()
}

#[test]
fn every_code_and_phase_has_the_same_value() {
    use deltaapply_ffi::{failure, jobs};
    let defined = defines();
    let mut codes = 0;
    for code in 0..64 {
        let name = failure::name(code).to_str().unwrap();
        if name != "DELTAAPPLY_E_UNKNOWN" {
            assert_eq!(defined.get(name), Some(&code), "{name}");
            codes += 1;
        }
    }
    let phases = [
        ("DELTAAPPLY_PHASE_MANIFEST", jobs::PHASE_MANIFEST),
        (
            "DELTAAPPLY_PHASE_HASH_INSTALLED",
            jobs::PHASE_HASH_INSTALLED,
        ),
        ("DELTAAPPLY_PHASE_DOWNLOAD", jobs::PHASE_DOWNLOAD),
        ("DELTAAPPLY_PHASE_CHECK_SOURCE", jobs::PHASE_CHECK_SOURCE),
        ("DELTAAPPLY_PHASE_CHECK_PATCH", jobs::PHASE_CHECK_PATCH),
        ("DELTAAPPLY_PHASE_WRITE", jobs::PHASE_WRITE),
        ("DELTAAPPLY_PHASE_TREE_STAGE", jobs::PHASE_TREE_STAGE),
        ("DELTAAPPLY_PHASE_TREE_COMMIT", jobs::PHASE_TREE_COMMIT),
    ];
    for (name, value) in phases {
        assert_eq!(defined.get(name), Some(&value), "{name}");
    }
    assert_eq!(
        defined.len(),
        codes + phases.len(),
        "a #define the library does not have"
    );
}

#[test]
fn code_names_come_back_as_c_strings() {
    use std::ffi::CStr;
    for (code, name) in [
        (0, "DELTAAPPLY_OK"),
        (11, "DELTAAPPLY_E_CANCELLED"),
        (99, "DELTAAPPLY_E_UNKNOWN"),
    ] {
        let got = unsafe { CStr::from_ptr(deltaapply_ffi::abi::deltaapply_code_name(code)) };
        assert_eq!(got.to_str().unwrap(), name);
    }
}
