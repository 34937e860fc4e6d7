#!/usr/bin/env python3
"""Runs the tests testdata/adversarial/plan.toml names for each case of the adversarial
plan (../shared/ADVERSARIAL-PLAN.md) and prints the table README.md quotes.

    python3 scripts/adversarial.py [--out FILE]

Builds the deltaapply binary with the test-only crash hook first (the crash-point and
fault-injection tests need it), runs each test file's named tests in one cargo call,
and exits 1 if a named test fails or does not run. Python 3.11 standard library only.
"""
import argparse
import collections
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The packages with the test-only crash hook, which the fault-injection tests need.
HOOKED = {"deltapack", "deltaapply", "deltaapply-cli", "deltaapply-apply"}


def cargo_target(test):
    """(package, cargo selector, filter, exact) for FILE::FUNCTION."""
    file, name = test.split("::")
    parts = Path(file).parts
    package = parts[0]
    if parts[1] == "tests":
        return package, ("--test", Path(file).stem), name
    return package, ("--lib",), name


def run_group(package, selector, names):
    features = ["--features", "crash-hook"] if package in HOOKED else []
    argv = ["cargo", "test", "--locked", "-p", package, *features, *selector,
            "--", *names]
    if selector[0] == "--test":
        argv.insert(argv.index("--") + 1, "--exact")
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    results = {}
    for line in out.stdout.splitlines():
        m = re.match(r"test (\S+) \.\.\. (ok|FAILED|ignored)", line)
        if m:
            results[m.group(1).split("::")[-1]] = m.group(2)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args()
    plan = tomllib.loads((ROOT / "testdata/adversarial/plan.toml").read_text())["case"]
    subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", "deltaapply-cli",
                    "--features", "crash-hook"], cwd=ROOT, check=True)
    groups = collections.defaultdict(set)
    for case in plan:
        for t in case.get("tests", []):
            package, selector, name = cargo_target(t)
            groups[(package, selector)].add(name)
    outcome = {}
    for (package, selector), names in sorted(groups.items()):
        print(f"running {package} {' '.join(selector)}: {len(names)} test(s)", file=sys.stderr)
        got = run_group(package, selector, sorted(names))
        for n in names:
            outcome[(package, selector, n)] = got.get(n, "did not run")
    lines = ["| case | what | status | named tests passing |", "|---:|---|---|---:|"]
    counts = collections.Counter()
    failed = []
    total = passing = 0
    for case in plan:
        tests = case.get("tests", [])
        ok = 0
        for t in tests:
            package, selector, name = cargo_target(t)
            r = outcome[(package, selector, name)]
            ok += r == "ok"
            if r != "ok":
                failed.append(f"case {case['n']}: {t}: {r}")
        total += len(tests)
        passing += ok
        counts[case["status"]] += 1
        cell = f"{ok}/{len(tests)}" if tests else "—"
        note = f" ({case['note']})" if case.get("note") else ""
        lines.append(f"| {case['n']} | {case['title']}{note} | {case['status']} | {cell} |")
    summary = (f"{counts['tested']} of 52 cases tested in full, {counts['partial']} in part, "
               f"{counts['missing']} missing, {counts['n/a']} not applicable; "
               f"{passing}/{total} named tests pass.")
    text = "\n".join(lines) + "\n\n" + summary + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    for f in failed:
        print("FAIL", f, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
