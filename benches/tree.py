#!/usr/bin/env python3
"""Whole release trees: tree patches against tar patches, and the per-file fallback.

    python3 benches/tree.py [--pairs a,b] [--corpus DIR] [--work DIR] [--repeat N]
                            [--keep] [--out FILE] [--no-build]
    python3 benches/tree.py --render benches/results/tree.json   # markdown again from the JSON

Answers two questions for the corpus's directory pairs (default `cryptography-tree` and
`prettier-tree`, DIR/pairs/NAME/{old,new}):

1. **Tree patch or tar patch?** For each pair:
   (a) `deltapack diff OLD_DIR NEW_DIR -o PATCH --json` (the tree patch; default
       settings) and `deltaapply apply OLD_DIR PATCH -o OUT --json`; OUT must equal the
       new tree: the same entries, kinds, permission bits (0o777), file bytes and link
       targets (checked by walking both trees, links never followed);
   (b) the same sides packed into deterministic tars exactly as benches/compare.py and
       PEERS.md do (`tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner
       --format=gnu -C side -cf side.tar .`), `deltapack diff old.tar new.tar -o PATCH
       --json` (the single-file `auto` method) and `deltaapply apply old.tar PATCH -o
       out.tar --json`, checked byte for byte;
   (c) the peers, measured in the same run (every figure is measured, none recorded):
       bsdiff, xdelta3 and zstd on the tars (benches/compare.py's commands), the new tar's
       zstd-19 full image (`zstd -19 --long=27`), and HDiffPatch `hdiffz -m-6 -SD
       -c-zstd-21-24` both on the tars and on the directories (its directory mode;
       `hpatchz -f OLD_DIR PATCH OUT_DIR`, OUT checked as in (a), permission bits
       reported apart since hdiffz does not promise them). hdiffz is built from the
       checkout HDIFFPATCH_SRC names, as compare.py does; without it its rows say "not
       measured". Peers run once each (their sizes are deterministic).
   Our diffs and applies run --repeat times (default 3) under `/usr/bin/time -f '%e %U %S
   %M'`; the table shows the run with the median wall time. Applies read the old side
   from the page cache (the diff just read it).

2. **Per-file fallback or whole image?** The old tree is published as release 1.0 and
   the new tree as 2.0 into one publish directory (`deltapack keygen`, then `deltapack
   build` twice: product `bench`, artifact NAME, fixed `--created` times and
   `--valid-days 36500`). The directory is served on 127.0.0.1 by benches/update.py's
   server (which counts the body bytes it sends). A copy of the old tree is installed
   in a fresh directory and then, per scenario:
       clean        nothing changed: the tree patch alone
       1 changed    one byte flipped in the changed file of median size (a file both
                    releases have and 2.0 changes)
       1 largest    one byte flipped in the largest file 2.0 changes (the worst case
                    for the per-file route: its whole file must be fetched)
       5 files      one byte flipped in each of 5 files both releases have, changed or
                    kept by 2.0 (the first 5 by SHA-256 of their path: a fixed pick)
       nothing installed  the target does not exist (a first install: the full image)
   and `deltaapply update --from http://127.0.0.1:PORT/ --key PUB --target DIR/NAME
   --json` runs (the default plan: the tree patch plus each modified file's own signed
   full container, "per-file fallback"), and, on each installed copy (clean too), again
   with `--prefer-full` (the whole tree image). Recorded: the route, `result.downloaded`,
   `plan.download_size`, the files fetched whole, the server's body bytes (manifest and
   signature counted apart), wall time and peak RSS (median of --repeat runs); the
   target must then equal the new tree (as in 1a) and nothing but the target and its
   state file may be left beside it.

Binaries: `cargo build --release -p deltapack -p deltaapply-cli` (unless --no-build); the
run uses copies of target/release/{deltapack,deltaapply} (not the size-optimised
target/applier build that compare.py and update.py time applies with).

Writes benches/results/tree.md (also printed) and tree.json beside it (--out). Large
files go to --work (default CORPUS/tree-bench, outside the repository), removed at the
end unless --keep. Exit status 1 if any check failed. Python 3.11 stdlib only; needs GNU
time and tar. Helpers come from benches/compare.py, release_build.py and update.py.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import compare
from compare import HDIFFZ_OPTS, PEERS, TAR, build_hdiffz, hdiffz_version, last_json, peer_cmds, same
from release_build import log, run, sha256_file, timed
from update import start_server

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
BIN = {"deltapack": TARGET / "release/deltapack", "deltaapply": TARGET / "release/deltaapply"}
BUILD = ["cargo", "build", "--release", "-p", "deltapack", "-p", "deltaapply-cli"]
PAIRS = ("cryptography-tree", "prettier-tree")
CREATED = ["2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z"]
VERSIONS = ["1.0", "2.0"]

TIMING_KEYS = ("wall", "cpu", "rss_kib", "others_cpu")


# --- trees --------------------------------------------------------------------------

def listing(root):
    """{relative path: (kind, mode bits, size, sha256 or link target)} of a tree, links
    not followed; the root itself is left out."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("symlink", None, None, os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode & 0o777, None, None)
            elif p.is_file():
                out[rel] = ("file", st.st_mode & 0o777, st.st_size, sha256_file(p))
            else:
                out[rel] = ("other", st.st_mode, None, None)
    return out


def tree_differences(want, got_root):
    """Where the tree at got_root differs from the listing `want` (empty when equal)."""
    got = listing(got_root)
    diffs = [f"missing {p}" for p in sorted(want.keys() - got.keys())]
    diffs += [f"extra {p}" for p in sorted(got.keys() - want.keys())]
    diffs += [f"differs {p}: {got[p]} != {want[p]}" for p in sorted(want.keys() & got.keys()) if want[p] != got[p]]
    return diffs


def tree_bytes(lst):
    return sum(v[2] for v in lst.values() if v[0] == "file")


def flip_byte(path):
    """One byte flipped a third of the way in (size kept, so only hashing can tell)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 3)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))


def install_copy(src, dst):
    """A fresh copy of a tree (modes and links kept), flushed to disk so that writing it
    back is not charged to the next command."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst, symlinks=True)
    os.sync()


def rmtree(p):
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)


# --- measuring ----------------------------------------------------------------------

def repeated(n, once):
    """Runs once(i) for i = 1..n; returns the run with the median wall time, with every
    run's figures under "runs" and "verified" only if every run verified."""
    rows = [once(i) for i in range(1, n + 1)]
    pick = dict(sorted(rows, key=lambda r: r["wall"])[(n - 1) // 2])
    pick["runs"] = [{k: r.get(k) for k in TIMING_KEYS} for r in rows]
    pick["verified"] = all(r["verified"] for r in rows)
    return pick


def step(argv, work, problems, what):
    res = timed(argv, work / "time.txt", watch=True)
    out = last_json(res["stdout"]) or {}
    if res["rc"] != 0 or not out.get("ok"):
        problems.append(f"{what}: exit {res['rc']}: "
                        f"{(str(out.get('error') or '') or res['stderr'][-600:]).strip()}")
    return res, out


def diff_apply(kind, old, new, work, rep, problems, want=None):
    """One diff and one apply of `kind` ("tree" or "tar"); returns both rows."""
    d = work / kind
    d.mkdir(parents=True, exist_ok=True)
    patch, out = d / "patch.dpatch", d / ("out" if kind == "tree" else "out.tar")
    rmtree(patch)
    rmtree(out)
    argv = [BIN["deltapack"], "diff", old, new, "-o", patch, "--json"]
    log(f"  {kind} diff, run {rep} ...")
    dres, dout = step(argv, work, problems, f"{kind} diff (run {rep})")
    size = patch.stat().st_size if patch.exists() else None
    if dout.get("patch_size") not in (None, size):
        problems.append(f"{kind} diff (run {rep}): JSON patch_size {dout.get('patch_size')} != file {size}")
    diff = {"argv": [str(a) for a in argv], "wall": dres["wall"], "cpu": dres["cpu"], "rss_kib": dres["rss_kib"],
            "others_cpu": dres["others_cpu"], "patch_bytes": size, "json": dout, "verified": dres["rc"] == 0}
    aargv = [BIN["deltaapply"], "apply", old, patch, "-o", out, "--json"]
    log(f"  {kind} apply, run {rep} ...")
    ares, aout = step(aargv, work, problems, f"{kind} apply (run {rep})")
    if ares["rc"] == 0:
        bad = tree_differences(want, out) if kind == "tree" else ([] if same(out, new) else ["output differs"])
    else:
        bad = ["apply failed"]
    if bad:
        problems.append(f"{kind} apply (run {rep}): result is not the new {kind}: {'; '.join(bad[:5])}")
    apply = {"argv": [str(a) for a in aargv], "wall": ares["wall"], "cpu": ares["cpu"], "rss_kib": ares["rss_kib"],
             "others_cpu": ares["others_cpu"], "json": aout, "verified": not bad}
    log(f"    {size:,} bytes; diff {dres['wall']:.2f} s, {dres['rss_kib'] / 1024:.0f} MiB; "
        f"apply {ares['wall']:.2f} s, {ares['rss_kib'] / 1024:.1f} MiB; {'ok' if not bad else 'FAIL'}")
    rmtree(out)
    return diff, apply


def measure_patches(pair, old_dir, new_dir, work, repeat, problems):
    want = listing(new_dir)
    old_tar, new_tar = work / "old.tar", work / "new.tar"
    for src, tar in ((old_dir, old_tar), (new_dir, new_tar)):
        subprocess.run([*TAR, "-C", str(src), "-cf", str(tar), "."], check=True)
    rows = {}
    for kind, old, new in (("tree", old_dir, new_dir), ("tar", old_tar, new_tar)):
        runs = [diff_apply(kind, old, new, work, i, problems, want) for i in range(1, repeat + 1)]
        diff = repeated(repeat, lambda i: runs[i - 1][0])
        apply = repeated(repeat, lambda i: runs[i - 1][1])
        sizes = {r[0]["patch_bytes"] for r in runs}
        if len(sizes) != 1:
            problems.append(f"{pair} {kind}: patch sizes differ between runs: {sorted(sizes, key=str)}")
        rows[kind] = {"diff": diff, "apply": apply, "patch_bytes": diff["patch_bytes"]}
    rows["new_tar_bytes"] = new_tar.stat().st_size
    rows["new_tree_bytes"] = tree_bytes(want)
    rows["new_entries"] = len(want)
    rows["old_tree_bytes"] = tree_bytes(listing(old_dir))
    rows["peers"] = measure_peers(old_dir, new_dir, old_tar, new_tar, work, problems, want)
    for p in (old_tar, new_tar):
        p.unlink()
    return rows


HDP = {"dir": None, "missing": "HDIFFPATCH_SRC not set"}  # main() builds hdiffz


def peer_run(key, label, diff_argv, apply_argv, patch, out, new, work, problems, want=None):
    """One diff and apply of a peer tool, checked like ours (a directory output against the
    new tree's listing: contents strictly, permission bits reported apart)."""
    rmtree(patch)
    rmtree(out)
    log(f"  {label} ...")
    row = {"label": label, "diff_argv": [str(a) for a in diff_argv],
           "apply_argv": [str(a) for a in apply_argv] if apply_argv else None, "verified": False}
    d = timed(diff_argv, work / "time.txt")
    row.update(diff_wall=d["wall"], diff_cpu=d["cpu"], diff_rss_kib=d["rss_kib"])
    if d["rc"] != 0 or not patch.exists():
        row["note"] = f"diff exit {d['rc']}: {d['stderr'].strip()[-300:]}"
        problems.append(f"{label}: {row['note']}")
        return row
    row["patch_bytes"] = patch.stat().st_size
    if apply_argv is None:  # the full image: compressed size only
        row["verified"] = None
        rmtree(patch)
        return row
    a = timed(apply_argv, work / "time.txt")
    row.update(apply_wall=a["wall"], apply_cpu=a["cpu"], apply_rss_kib=a["rss_kib"])
    if a["rc"] != 0 or not out.exists():
        row["note"] = f"apply exit {a['rc']}: {a['stderr'].strip()[-300:]}"
    elif want is not None:
        bad = tree_differences(want, out)
        modes = [x for x in bad if x.startswith("differs") and mode_only(x, want, out)]
        bad = [x for x in bad if x not in modes]
        row["verified"] = not bad
        if bad:
            row["note"] = "; ".join(bad[:5])
        elif modes:
            row["note"] = f"contents ok; permission bits differ on {len(modes)} entries"
    else:
        row["verified"] = same(out, new)
        if not row["verified"]:
            row["note"] = "output differs from new"
    if not row["verified"]:
        problems.append(f"{label}: {row.get('note')}")
    log(f"    {row['patch_bytes']:,} bytes; diff {d['cpu']:.2f} s CPU; apply {a['wall']:.2f} s; "
        f"{'ok' if row['verified'] else 'FAIL'}")
    rmtree(patch)
    rmtree(out)
    return row


def mode_only(line, want, out_root):
    """True when a `differs PATH` line of tree_differences is about permission bits only."""
    path = line[len("differs "):].split(": ", 1)[0]
    got = listing(out_root).get(path)
    w = want.get(path)
    return got is not None and w is not None and (got[0], got[2], got[3]) == (w[0], w[2], w[3])


def measure_peers(old_dir, new_dir, old_tar, new_tar, work, problems, want):
    """The peers in the same run: Debian's on the tars, the zstd-19 full image, and hdiffz
    on the tars and on the directories (when HDIFFPATCH_SRC built it)."""
    d = work / "peers"
    d.mkdir(parents=True, exist_ok=True)
    patch, out = d / "patch", d / "out"
    rows = {}
    for tool in PEERS:
        bins = compare.PEER_BINS[tool]
        if lacking := [b for b in bins if not shutil.which(b)]:
            rows[tool] = {"label": tool, "verified": None, "note": f"not installed ({', '.join(lacking)})"}
            continue
        da = peer_cmds(tool, str(old_tar), str(new_tar), str(patch), str(out))
        rows[tool] = peer_run(tool, f"{tool} (tars)", *da, patch, out, new_tar, d, problems)
    if shutil.which("zstd"):
        rows["full_zstd19"] = peer_run("full_zstd19", "full image zstd-19 (new tar)",
                                       ["zstd", "-q", "-f", "-19", "--long=27", str(new_tar), "-o", str(patch)],
                                       None, patch, out, new_tar, d, problems)
    for kind, old, new in (("tar", old_tar, new_tar), ("dir", old_dir, new_dir)):
        key = f"hdiffz-{kind}"
        label = f"hdiffz -m ({'tars' if kind == 'tar' else 'directories'})"
        if HDP["missing"]:
            rows[key] = {"label": label, "verified": None, "not_measured": HDP["missing"]}
            continue
        da = peer_cmds("hdiffz", str(old), str(new), str(patch), str(out))
        rows[key] = peer_run(key, label, *da, patch, out, new, d, problems,
                             want if kind == "dir" else None)
    return rows


# --- publishing and updating --------------------------------------------------------

def publish(pair, old_dir, new_dir, work, problems):
    key, pub = work / "bench.key", work / "bench.pub"
    if not key.exists():
        p = run([BIN["deltapack"], "keygen", "--secret-key", key, "--public-key", pub])
        if p.returncode != 0:
            sys.exit(f"error: deltapack keygen failed: {p.stderr.strip()}")
    out = work / "publish"
    rmtree(out)
    builds = []
    for i, side in enumerate((old_dir, new_dir)):
        argv = [BIN["deltapack"], "build", "--out", out, "--secret-key", key, "--version", VERSIONS[i],
                "--artifact", f"{pair}={side}", "--created", CREATED[i], "--valid-days", "36500", "--json"]
        if i == 0:
            argv[2:2] = ["--product", "bench"]
        log(f"  deltapack build {VERSIONS[i]} ...")
        res = timed(argv, work / "time.txt")
        info = last_json(res["stdout"]) or {}
        if res["rc"] != 0 or not info.get("ok"):
            sys.exit(f"error: deltapack build {VERSIONS[i]} of {pair} failed (exit {res['rc']}): "
                     f"{res['stderr'][-2000:]}")
        builds.append({"argv": [str(a) for a in argv], "wall": res["wall"], "cpu": res["cpu"],
                       "rss_kib": res["rss_kib"], "json": info})
    manifest = tomllib.loads((out / "manifest.toml").read_text())
    art = manifest["artifact"][0]
    patches = art.get("patch", [])
    entries = {e["path"]: e for e in art.get("entry", [])}
    pub_line = next(l.strip() for l in pub.read_text().splitlines() if l.startswith("ed25519:"))
    return out, pub_line, builds, {
        "full_image": art["full"]["size"],
        "tree_patch": patches[0]["size"] if patches else None,
        "tree_patch_method": patches[0].get("method") if patches else None,
        "entries": entries,
        "publish_files": sum(1 for p in out.rglob("*") if p.is_file()),
        "publish_bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
    }


def scenarios(old_dir, new_dir):
    """(name, description, [paths to modify]) per the module doc."""
    old, new = listing(old_dir), listing(new_dir)
    common = sorted(p for p in new if new[p][0] == "file" and p in old and old[p][0] == "file")
    changed = sorted((p for p in common if old[p][3] != new[p][3]), key=lambda p: (new[p][2], p))
    pick5 = sorted(common, key=lambda p: hashlib.sha256(p.encode()).hexdigest())[:5]
    out = [("clean", "nothing modified", [])]
    if changed:
        out.append(("1 changed", "1 file 2.0 changes (median size)", [changed[(len(changed) - 1) // 2]]))
        out.append(("1 largest", "1 file 2.0 changes (the largest)", [changed[-1]]))
    out.append(("5 files", "5 files both have (fixed pick)", pick5))
    out.append(("nothing installed", "the target does not exist (a first install)", None))
    return out, old, new


def measure_update(pair, sc, flags, rep, server, url, pub_line, old_dir, want, old_changed, work, problems):
    name, _, paths = sc
    rundir = work / "run"
    rmtree(rundir)
    target = rundir / pair
    if paths is None:
        rundir.mkdir(parents=True)
    else:
        install_copy(old_dir, target)
        for p in paths:
            flip_byte(target / p)
        os.sync()
    server.take_requests()
    argv = [BIN["deltaapply"], "update", "--from", url, "--key", pub_line, "--target", target, *flags, "--json"]
    log(f"  update {name}{' ' + ' '.join(flags) if flags else ''}, run {rep} ...")
    res = timed(argv, work / "time.txt", watch=True)
    reqs = server.take_requests()
    out = last_json(res["stdout"]) or {}
    result, plan = out.get("result") or {}, out.get("plan") or {}
    if res["rc"] != 0 and target.exists():  # the failed update left the target as it was: ask for its plan
        chk = run([BIN["deltaapply"], "check", "--from", url, "--key", pub_line, "--target", target, *flags, "--json"])
        plan = (last_json(chk.stdout) or {}).get("plan") or {}
        server.take_requests()
    meta = sum(r["body_bytes"] for r in reqs if r["path"] in ("manifest.toml", "manifest.toml.sig"))
    body = sum(r["body_bytes"] for r in reqs)
    files = result.get("files") or []
    steps = result.get("steps") or []
    bad = []
    if res["rc"] != 0 or not out.get("ok"):
        bad.append(f"exit {res['rc']}: {(str(out.get('error') or '') or res['stderr'][-600:]).strip()}")
    else:
        bad += tree_differences(want, target)[:5]
        leftover = sorted(p.name for p in rundir.iterdir() if p.name not in (pair, f".{pair}.deltaapply-state"))
        if leftover:
            bad.append(f"left beside the target: {leftover}")
        # The default plan may choose the full image when it is cheaper than the per-file route.
        expected = ("full",) if "--prefer-full" in flags or paths is None else ("tree-patch", "full")
        if result.get("route") not in expected:
            bad.append(f"route {result.get('route')!r}, expected {' or '.join(expected)}")
    for b in bad:
        problems.append(f"{pair} update {name}{' ' + ' '.join(flags) if flags else ''}: {b}")
    row = {
        "pair": pair, "scenario": name, "flags": flags, "modified": paths or [],
        "modified_sizes": [want.get(p, (None, None, None))[2] for p in paths or []],
        "modified_changed": [p in old_changed for p in paths or []], "error": out.get("error"),
        "argv": [str(a) for a in argv], "rc": res["rc"], "wall": res["wall"], "cpu": res["cpu"],
        "rss_kib": res["rss_kib"], "others_cpu": res["others_cpu"],
        "route": result.get("route"), "fallback": result.get("fallback"),
        "downloaded": result.get("downloaded"), "plan_download_size": plan.get("download_size"),
        "plan_route": plan.get("route"), "full_size": plan.get("full_size"),
        "cheapest_patch_route": plan.get("cheapest_patch_route"), "reason": plan.get("reason"),
        "steps_bytes": sum(s["file"]["size"] for s in steps),
        "files_fetched": [{"path": f["path"], "container_bytes": f["file"]["size"], "why": f.get("why")}
                          for f in files],
        "files_bytes": sum(f["file"]["size"] for f in files),
        "server_body_bytes": body, "server_manifest_sig_bytes": meta, "requests": reqs,
        "json": out, "stderr": res["stderr"][-2000:], "verified": not bad,
    }
    log(f"    route {row['route']}, downloaded {row['downloaded']}, server {body - meta:,} + {meta:,}; "
        f"{res['wall']:.2f} s, {res['rss_kib'] / 1024:.1f} MiB; {'ok' if not bad else 'FAIL: ' + '; '.join(bad)}")
    rmtree(rundir)
    return row


# --- reporting ----------------------------------------------------------------------

def fnum(x, fmt="{:,}"):
    return "—" if x is None else fmt.format(x)


def pct(a, b):
    return "—" if a is None or not b else f"{100 * a / b:.2f}%"


def mib(kib):
    return f"{kib / 1024:.1f}"


def header_info(args):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    rev = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip() or "?"
    if run(["git", "status", "--porcelain", "--", ".", ":!benches"], cwd=ROOT).stdout.strip():
        rev += " (uncommitted changes)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"nproc {os.cpu_count()}, {cpu}, {mem / 2**20:.1f} GiB RAM, "
                   f"load average {os.getloadavg()[0]:.2f} at start",
        "build": f"git {rev}, {run(['rustc', '--version']).stdout.strip() or '?'}",
        "command": " ".join(["python3", "benches/tree.py", *sys.argv[1:]]),
    }


def short(argv, r, url=None, key=None):
    s = " ".join(argv).replace(r["work"] + "/", "$WORK/").replace(r["corpus"] + "/", "$CORPUS/")
    for name, exe in r["bins"].items():
        s = s.replace(exe, name)
    if url:
        s = s.replace(url, "http://127.0.0.1:$PORT/")
    if key:
        s = s.replace(key, "$KEY")
    return s


def render(r):
    h = r["header"]
    lines = [
        "# Whole release trees: tree patch, tar patch, per-file fallback", "",
        f"- date: {h['date']}",
        f"- machine: {h['machine']}",
        f"- binaries: {h['build']}; `{' '.join(BUILD)}`, target/release/deltapack and deltaapply",
        f"- peers: {h.get('hdiffz', 'hdiffz: not in this JSON')}; Debian bsdiff, xdelta3, zstd "
        f"(benches/compare.py's commands; hdiffz `{' '.join(HDIFFZ_OPTS)} -d -f`)",
        f"- command: `{h['command']}`",
        f"- each diff, apply and update ran {r['repeat']} times under `/usr/bin/time -f '%e %U %S %M'`; "
        "the figures are those of the run with the median wall time",
        "", "Commands, per pair (`$CORPUS` = " + r["corpus"] + ", `$WORK` = " + r["work"]
        + ", `$KEY` = the public key line `deltapack keygen` wrote; old.tar and new.tar made with "
        f"`{' '.join(TAR)} -C SIDE -cf SIDE.tar .`):", "",
    ]
    for pr in r["pairs"][:1]:
        p = pr["patches"]
        lines += [f"- `{short(p[k][s]['argv'], r)}`" for k in ("tree", "tar") for s in ("diff", "apply")]
        lines += [f"- `{short(b['argv'], r)}`" for b in pr["builds"]]
        seen = set()
        for u in pr["updates"]:
            if tuple(u["flags"]) not in seen:
                seen.add(tuple(u["flags"]))
                lines.append(f"- `{short(u['argv'], r, pr['url'], pr['key'])}` (a copy of the old tree "
                             "installed at `$WORK/run/PAIR`, modified per scenario)")
    busy = max([x["others_cpu"] for pr in r["pairs"] for k in ("tree", "tar") for s in ("diff", "apply")
                for x in pr["patches"][k][s]["runs"]]
               + [x["others_cpu"] for pr in r["pairs"] for u in pr["updates"] for x in u["runs"]] or [0])

    lines += ["", "## 1. Tree patch against the tar patch and the peers", "",
              "*new bytes*: the new tree's file bytes (tree, hdiffz on directories) or its tar's size. "
              "*% of zstd-19 full*: share of the new tar's zstd-19 full image (`zstd -19 --long=27`), "
              "measured in this run. Times are wall seconds (diff CPU in brackets); RSS is the peak of "
              "the whole process. Every row was measured in this run; the peers ran once each, ours "
              f"{r['repeat']} times (median shown).", "",
              "| pair | patch | new bytes | patch bytes | % of new | % of zstd-19 full | diff wall s (CPU s) "
              "| diff RSS MiB | apply wall s | apply RSS MiB | verified |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for pr in r["pairs"]:
        pair, p = pr["pair"], pr["patches"]
        peers = p.get("peers", {})
        full = (peers.get("full_zstd19") or {}).get("patch_bytes")
        for k, label, nb in (("tree", "deltapack tree patch (dirs)", p["new_tree_bytes"]),
                             ("tar", "deltapack on the tars (auto → "
                              f"{p['tar']['diff']['json'].get('method', '?')})", p["new_tar_bytes"])):
            d, a = p[k]["diff"], p[k]["apply"]
            lines.append(f"| {pair} | {label} | {nb:,} | {fnum(p[k]['patch_bytes'])} | {pct(p[k]['patch_bytes'], nb)} "
                         f"| {pct(p[k]['patch_bytes'], full)} | {d['wall']:.2f} ({d['cpu']:.2f}) "
                         f"| {mib(d['rss_kib'])} | {a['wall']:.2f} | {mib(a['rss_kib'])} "
                         f"| {'ok' if d['verified'] and a['verified'] else '**FAIL**'} |")
        if not peers:
            lines.append(f"| {pair} | peers | — | not in this JSON (written before peers were measured) "
                         "| — | — | — | — | — | — | — |")
        for k in ("hdiffz-dir", "hdiffz-tar", *PEERS, "full_zstd19"):
            x = peers.get(k)
            if x is None:
                continue
            nb = p["new_tree_bytes"] if k == "hdiffz-dir" else p["new_tar_bytes"]
            if "not_measured" in x or "patch_bytes" not in x:
                why = f"not measured ({x['not_measured']})" if "not_measured" in x else x.get("note", "—")
                lines.append(f"| {pair} | {x['label']} | {nb:,} | {why} | — | — | — | — | — | — | — |")
                continue
            ver = {True: "ok", False: "**FAIL**", None: "—"}[x["verified"]]
            note = f" ({x['note']})" if x.get("note") else ""
            lines.append(f"| {pair} | {x['label']} | {nb:,} | {x['patch_bytes']:,} | {pct(x['patch_bytes'], nb)} "
                         f"| {pct(x['patch_bytes'], full)} | {x['diff_wall']:.2f} ({x['diff_cpu']:.2f}) "
                         f"| {mib(x['diff_rss_kib'])} | {fnum(x.get('apply_wall'), '{:.2f}')} "
                         f"| {mib(x['apply_rss_kib']) if 'apply_rss_kib' in x else '—'} | {ver}{note} |")
    lines += ["", "Tree patch against the others, all measured in this run (below 1.000 the tree patch is "
              "smaller; best Debian peer = smallest verified of bsdiff, xdelta3, zstd on the tars):", "",
              "| pair | tree patch | tree / tar patch | tree / hdiffz (dirs) | tree / hdiffz (tars) "
              "| tree / best Debian peer | our full tree image (publish) | tree patch recipes |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]

    def over(t, x):
        if x is None:
            return "—"
        if "not_measured" in x:
            return "not measured"
        return f"{t / x['patch_bytes']:.3f}" if x.get("verified") else "—"

    for pr in r["pairs"]:
        p = pr["patches"]
        peers = p.get("peers", {})
        t = p["tree"]["patch_bytes"]
        best = min((peers[k] for k in PEERS if (peers.get(k) or {}).get("verified")),
                   key=lambda x: x["patch_bytes"], default=None)
        bcell = f"{over(t, best)} ({best['label'].split()[0]})" if best else "—"
        st = p["tree"]["diff"]["json"].get("stats")
        lines.append(f"| {pr['pair']} | {t:,} | {t / p['tar']['patch_bytes']:.3f} | {over(t, peers.get('hdiffz-dir'))} "
                     f"| {over(t, peers.get('hdiffz-tar'))} | {bcell} "
                     f"| {pr['publish']['full_image']:,} | {recipes(st)} |")

    lines += ["", "## 2. Updating an installed tree: per-file fallback against the whole image", "",
              "Release 1.0 = old tree, 2.0 = new tree, published with `deltapack build` into one directory "
              "and served on 127.0.0.1. The installed copy of 1.0 has one byte flipped in each modified "
              "file. *downloaded* is `result.downloaded` (bytes over the network, manifest and signature "
              "not included); *plan* is `plan.download_size`; *server* is the body bytes the server sent "
              "for patches, images and files (manifest and signature apart). *% of full* is the share of "
              "the full tree image published for 2.0.", "",
              "| pair | installed | modified files (bytes in 2.0) | route | files fetched whole | downloaded "
              "| plan.download_size | server bytes | % of full image | wall s | peak RSS MiB | verified |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for pr in r["pairs"]:
        full = pr["publish"]["full_image"]
        for u in pr["updates"]:
            mods = ", ".join(f"`{m}` ({fnum(s)}{', changed' if c else ', kept'})"
                             for m, s, c in zip(u["modified"], u["modified_sizes"], u["modified_changed"])) or "—"
            route = (u["route"] or f"{u['plan_route']}: **failed**") + (" (`--prefer-full`)" if u["flags"] else "")
            lines.append(f"| {pr['pair']} | {u['scenario']} | {mods} | {route} | {len(u['files_fetched'])} "
                         f"({u['files_bytes']:,} bytes) | {fnum(u['downloaded'], '{:,}') if u['downloaded'] is not None else 'failed'} "
                         f"| {fnum(u['plan_download_size'])} "
                         f"| {u['server_body_bytes'] - u['server_manifest_sig_bytes']:,} "
                         f"| {pct(u['server_body_bytes'] - u['server_manifest_sig_bytes'], full)} | {u['wall']:.2f} | {mib(u['rss_kib'])} "
                         f"| {'ok' if u['verified'] else '**FAIL**'} |")
    lines += ["", "Default plan (per-file route) against the whole image, bytes the server sent for "
              "patches, images and files (a failed update is marked; its bytes were still sent):", "",
              "| pair | installed | default plan: route, bytes | whole image (`--prefer-full`) | default / whole |",
              "|---|---|---:|---:|---:|"]
    for pr in r["pairs"]:
        ups = pr["updates"]
        sent = lambda x: x["server_body_bytes"] - x["server_manifest_sig_bytes"]
        mark = lambda x: "" if x["verified"] else " (**update failed**)"
        for u in ups:
            if u["flags"]:
                continue
            f = next((x for x in ups if x["scenario"] == u["scenario"] and x["flags"]), None)
            fd = sent(f) if f else pr["publish"]["full_image"]
            lines.append(f"| {pr['pair']} | {u['scenario']} | {u['route'] or u['plan_route']}, {sent(u):,}{mark(u)} "
                         f"| {fd:,}{mark(f) if f else ' (not run; the image size)'} | {sent(u) / fd:.3f} |")
    failed = [(pr["pair"], u) for pr in r["pairs"] for u in pr["updates"] if not u["verified"] and u.get("error")]
    if failed:
        lines += ["", "Errors of the failed updates (`error` in the JSON; plan reason in brackets):", ""]
        lines += list(dict.fromkeys(
            f"- {pair} {u['scenario']}{' ' + ' '.join(u['flags']) if u['flags'] else ''}: "
            f"`{u['error'].replace(r['work'] + '/', '$WORK/')}` ({u['reason']})" for pair, u in failed))
    lines += ["", "Publish directories: " + "; ".join(
        f"{pr['pair']}: full tree image {pr['publish']['full_image']:,} bytes, tree patch 1.0 -> 2.0 "
        f"{fnum(pr['publish']['tree_patch'])} bytes, {pr['publish']['publish_files']} files "
        f"({pr['publish']['publish_bytes']:,} bytes, including every file's own full container)"
        for pr in r["pairs"])]
    if busy > 1.0:
        lines += ["", f"**Measured under load**: other processes used up to {busy:.1f} CPU s during a run "
                  f"on this {os.cpu_count()}-core machine (other people's builds); wall times are inflated "
                  "accordingly. Byte counts do not depend on load."]
    if any(pr["patches"]["tree"]["patch_bytes"] > pr["patches"]["tar"]["patch_bytes"] for pr in r["pairs"]):
        lines += ["", "Where the tree patch is larger than the tar patch, benches/README.md (section \"Whole "
                  "release trees\") says why."]
    if r["notes"]:
        lines += ["", "## Notes", "", *(f"- {n}" for n in r["notes"])]
    if r["problems"]:
        lines += ["", "## PROBLEMS", "", *(f"- {p}" for p in r["problems"])]
    return "\n".join(lines) + "\n"


def recipes(st):
    """The tree diff's `stats`, compactly: files per recipe and the blob bytes shipped."""
    if not isinstance(st, dict):
        return "—"
    parts = []
    for k in ("unchanged", "renamed_or_copied", "bsdiff", "zstd", "full", "deleted"):
        v = st.get(k)
        if isinstance(v, dict) and v.get("files"):
            blob = f" → {v['blob_bytes']:,} B" if "blob_bytes" in v else ""
            parts.append(f"{k.replace('_', ' ')} {v['files']} files ({v['bytes']:,} B){blob}")
    return "; ".join(parts) or "—"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("DELTA_CORPUS", Path.home() / ".cache/delta-corpus")))
    ap.add_argument("--pairs", default=",".join(PAIRS), help=f"comma-separated (default {','.join(PAIRS)})")
    ap.add_argument("--work", type=Path, help="work directory (default CORPUS/tree-bench)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3; median wall time)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", type=Path, default=ROOT / "benches/results/tree.md")
    ap.add_argument("--no-build", action="store_true", help="use target/release binaries as they are")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="only rewrite --out's markdown from a JSON file this script wrote (no measuring)")
    args = ap.parse_args()
    if args.render:
        md = render(json.loads(args.render.read_text()))
        args.out.write_text(md)
        print(md)
        return
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    pairs = [p for p in args.pairs.split(",") if p]
    for p in pairs:
        if not (args.corpus / "pairs" / p / "old").is_dir() or not (args.corpus / "pairs" / p / "new").is_dir():
            sys.exit(f"error: {args.corpus}/pairs/{p}/{{old,new}} are not directories "
                     "(build the corpus with ../shared/corpus/fetch.sh)")
    if lacking := [n for n in ("/usr/bin/time", "tar") if not shutil.which(n)]:
        sys.exit(f"error: missing {', '.join(lacking)}; install with: apt-get install -y time tar")
    work = (args.work or args.corpus / "tree-bench").resolve()
    if work.is_relative_to(ROOT):
        sys.exit(f"error: the work directory {work} is inside the repository; choose another --work")
    work.mkdir(parents=True, exist_ok=True)
    if not args.no_build:
        log("$ " + " ".join(BUILD))
        if subprocess.run(BUILD, cwd=ROOT).returncode != 0:
            sys.exit("error: cargo build failed")
    (work / "bin").mkdir(exist_ok=True)
    for name, exe in BIN.items():  # run copies, so a rebuild during the run cannot mix versions
        if not exe.exists():
            sys.exit(f"error: {exe} missing (run without --no-build)")
        BIN[name] = Path(shutil.copy2(exe, work / "bin" / name))

    HDP["dir"], HDP["missing"] = build_hdiffz(os.environ.get("HDIFFPATCH_SRC"))
    if HDP["missing"]:
        log(f"hdiffz: not measured ({HDP['missing']})")
    else:
        for name in ("hdiffz", "hpatchz"):
            compare.BIN[name] = Path(shutil.copy2(HDP["dir"] / name, work / "bin" / name))
            BIN[name] = compare.BIN[name]
    header = header_info(args)
    header["hdiffz"] = hdiffz_version(HDP["dir"], HDP["missing"])
    problems, notes, results = [], [], []
    for pair in pairs:
        old_dir, new_dir = args.corpus / "pairs" / pair / "old", args.corpus / "pairs" / pair / "new"
        pw = work / pair
        pw.mkdir(parents=True, exist_ok=True)
        log(f"{pair}: tree and tar patches ...")
        patches = measure_patches(pair, old_dir, new_dir, pw, args.repeat, problems)
        log(f"{pair}: publishing 1.0 and 2.0 ...")
        pub_dir, pub_line, builds, pub_info = publish(pair, old_dir, new_dir, pw, problems)
        if pub_info["tree_patch"] is None:
            problems.append(f"{pair}: the 2.0 build published no tree patch from 1.0")
        scs, old_lst, want = scenarios(old_dir, new_dir)
        changed = {p for p in want if p in old_lst and old_lst[p] != want[p]}
        server, url = start_server(pub_dir)
        updates = []
        try:
            for sc in scs:
                for flags in ([[], ["--prefer-full"]] if sc[2] is not None else [[]]):
                    updates.append(repeated(args.repeat, lambda rep: measure_update(
                        pair, sc, flags, rep, server, url, pub_line, old_dir, want, changed, pw, problems)))
        finally:
            server.shutdown()
            server.server_close()
        for u in updates:
            if u["downloaded"] is not None and u["downloaded"] != u["server_body_bytes"] - u["server_manifest_sig_bytes"]:
                notes.append(f"{pair} {u['scenario']} {' '.join(u['flags'])}: `result.downloaded` "
                             f"{u['downloaded']:,} != server body bytes {u['server_body_bytes'] - u['server_manifest_sig_bytes']:,}")
            if u["plan_download_size"] is not None and u["downloaded"] is not None \
                    and u["plan_download_size"] != u["downloaded"]:
                notes.append(f"{pair} {u['scenario']} {' '.join(u['flags'])}: `plan.download_size` "
                             f"{u['plan_download_size']:,} != `result.downloaded` {u['downloaded']:,}")
        pub_info = {k: v for k, v in pub_info.items() if k != "entries"}
        results.append({"pair": pair, "patches": patches, "publish": pub_info, "builds": builds,
                        "updates": updates, "url": url, "key": pub_line})
        if not args.keep:
            for p in ("publish", "run", "tree", "tar"):
                rmtree(pw / p)

    problems[:] = list(dict.fromkeys(problems))
    report = {"header": header, "repeat": args.repeat, "corpus": str(args.corpus), "work": str(work),
              "bins": {k: str(v) for k, v in BIN.items()}, "pairs": results,
              "problems": problems, "notes": list(dict.fromkeys(notes))}
    report["notes"] = list(dict.fromkeys(notes))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    md = render(report)
    args.out.write_text(md)
    print(md)
    for p in problems:
        log(f"PROBLEM: {p}")
    log(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted")
