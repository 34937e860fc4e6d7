//! `testdata/adversarial/plan.toml` maps the 52 cases of the adversarial plan to the
//! tests that exercise them. This checks the map itself: every case is there once, in
//! order, with a known status; every test it names exists (a `#[test]` function of that
//! name in that file); a case short of "tested" says why. `scripts/adversarial.py`
//! runs the named tests and prints the table README.md quotes.

use std::path::Path;

#[derive(serde::Deserialize)]
struct Plan {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    n: u32,
    title: String,
    status: String,
    #[serde(default)]
    tests: Vec<String>,
    #[serde(default)]
    note: Option<String>,
}

#[test]
fn the_plan_map_names_every_case_and_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("testdata/adversarial/plan.toml")).unwrap();
    let plan: Plan = toml::from_str(&text).unwrap();
    let numbers: Vec<u32> = plan.case.iter().map(|c| c.n).collect();
    assert_eq!(
        numbers,
        (1..=52).collect::<Vec<_>>(),
        "cases 1 to 52, in order"
    );
    for case in &plan.case {
        let what = format!("case {} ({})", case.n, case.title);
        assert!(
            ["tested", "partial", "missing", "n/a"].contains(&case.status.as_str()),
            "{what}: status {:?}",
            case.status
        );
        match case.status.as_str() {
            "tested" | "partial" => assert!(!case.tests.is_empty(), "{what}: names no test"),
            _ => assert!(
                case.tests.is_empty(),
                "{what}: {} but names tests",
                case.status
            ),
        }
        if case.status != "tested" {
            assert!(
                case.note.as_ref().is_some_and(|n| n.len() > 20),
                "{what}: {} needs a note saying why",
                case.status
            );
        }
        for test in &case.tests {
            let (file, name) = test
                .split_once("::")
                .unwrap_or_else(|| panic!("{what}: {test:?} is not FILE::FUNCTION"));
            let source = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("{what}: {file}: {e}"));
            let at = source
                .find(&format!("fn {name}("))
                .unwrap_or_else(|| panic!("{what}: no fn {name} in {file}"));
            let before = &source[..at];
            let attrs = &before[before.rfind("\n\n").unwrap_or(0)..];
            // A #[test] function, or a property of a `proptest!` block.
            assert!(
                attrs.contains("#[test]") || before.contains("proptest! {"),
                "{what}: {name} in {file} is not a #[test]"
            );
        }
    }
}
