#!/usr/bin/env python3
"""Benchmark deltapack/deltaapply against peer delta tools on the shared corpus.

    python3 benches/compare.py [--corpus DIR] [--pairs a,b] [--tools t1,t2]
                               [--skip-peers | --only-ours] [--skip-ours]
                               [--timeout SECS] [--out FILE] [--work DIR] [--keep] [--no-build]

For every pair DIR/pairs/<name>/{old,new} (a `*-tree` pair's sides are first packed into
deterministic tars, as PEERS.md prescribes) and every tool, it makes a patch, applies it
right away, and compares the output with `new` byte for byte. Diff and apply each run
under GNU time (`/usr/bin/time -f '%e %U %S %M'`) with a per-command timeout. Results go
to a markdown table (--out, default benches/results/latest.md, also printed) and a JSON
file beside it. Exit status 1 if any output mismatched or any tool errored, else 0.
Python 3.11 stdlib only. See benches/README.md.
"""

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FETCH = ROOT.parent / "shared" / "corpus" / "fetch.sh"
MiB = 1 << 20
TAR = ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "--format=gnu"]

# RECORDED, not measured by this script: patch bytes from /work/shared/corpus/PEERS.md
# (2026-11-21, 2 cores). HDiffPatch 4.12 `hdiffz -m-6 -SD -c-zstd-21-24` is not packaged in
# Debian, so its figure is only ever this copy. The peer columns are used only as a
# fallback (marked †) when the peers are not run, e.g. with --only-ours. None = did not finish.
RECORDED = {  # pair: (bsdiff, xdelta3, zstd, hdiffz -m)
    "cryptography-so": (1_017_305, 1_526_483, 1_177_411, 901_366),
    "cryptography-tree": (1_019_017, 1_600_750, 1_177_957, 902_066),
    "cryptography-whl": (3_752_705, 3_715_909, 3_710_001, 3_714_704),
    "esbuild-exe": (256_922, 829_845, 528_479, 251_603),
    "polars-so": (10_658_828, 15_000_997, 13_005_104, 8_687_357),
    "prettier-tree": (221_698, 284_004, 159_000, 173_061),
    "synthetic-img": (None, 6_507_732, 7_030_160, 6_502_886),
    "uv-exe": (4_326_055, 5_421_128, 4_177_138, 3_499_108),
}
PEERS = ("bsdiff", "xdelta3", "zstd")
OURS = ("auto", "bsdiff", "zstd")  # deltapack --method values
TOOLS = (*PEERS, *(f"ours-{m}" for m in OURS))
PEER_BINS = {"bsdiff": ("bsdiff", "bspatch"), "xdelta3": ("xdelta3",), "zstd": ("zstd",)}
DP = ROOT / "target" / "release" / "deltapack"
DA = ROOT / "target" / "applier" / "deltaapply"
BIN = {"deltapack": DP, "deltaapply": DA}  # main() points these at snapshot copies


def xdelta_window(old):
    """Smallest 64 MiB * 2^k that holds the whole old file (xdelta3 -B)."""
    b = 64 * MiB
    while b < os.path.getsize(old):
        b *= 2
    return str(b)


def peer_cmds(tool, old, new, patch, out):
    """(diff argv, apply argv) for a peer tool."""
    if tool == "bsdiff":
        return ["bsdiff", old, new, patch], ["bspatch", old, out, patch]
    if tool == "xdelta3":
        b = xdelta_window(old)
        return (["xdelta3", "-f", "-e", "-9", "-S", "lzma", "-B", b, "-s", old, new, patch],
                ["xdelta3", "-f", "-d", "-B", b, "-s", old, patch, out])
    return (["zstd", "-q", "-f", "-19", "--long=31", f"--patch-from={old}", new, "-o", patch],
            ["zstd", "-q", "-f", "-d", "--long=31", f"--patch-from={old}", patch, "-o", out])


def our_cmds(method, old, new, patch, out):
    """(diff argv, apply argv) for deltapack --method METHOD and deltaapply."""
    extra = ["--max-apply-memory", "8GiB"] if method == "zstd" else []
    return ([str(BIN["deltapack"]), "diff", old, new, "-o", patch, "--method", method, "--json", *extra],
            [str(BIN["deltaapply"]), "apply", old, patch, "-o", out, "--max-memory", "8GiB", "--json"])


def run(argv, **kw):
    """Run quietly; return CompletedProcess (never raises on a non-zero exit)."""
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def timed(argv, timeout, tfile):
    """Run argv under GNU time. Returns a dict: rc, wall, cpu, rss_kib, stdout, stderr;
    or {'timeout': True} after killing the whole process group."""
    p = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile, *argv],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         errors="replace", start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException as e:  # timeout or Ctrl-C: the child has its own session, kill it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            return {"timeout": True}
        raise
    # GNU time may prefix "Command exited with non-zero status N": the figures are last.
    e, u, s, m = Path(tfile).read_text().split("\n")[-2].split()
    return {"rc": p.returncode, "wall": float(e), "cpu": float(u) + float(s),
            "rss_kib": int(m), "stdout": out, "stderr": err}


def same(a, b):
    """Byte-for-byte file comparison."""
    with open(a, "rb") as f, open(b, "rb") as g:
        while True:
            x, y = f.read(MiB), g.read(MiB)
            if x != y:
                return False
            if not x:
                return True


def last_json(text):
    """The JSON object a tool printed on stdout (whole text, else its last JSON line)."""
    for cand in [text] + text.strip().splitlines()[::-1]:
        try:
            obj = json.loads(cand)
            if isinstance(obj, dict):
                return obj
        except ValueError:
            pass
    return None


def why(res, *paths):
    """Short reason a command failed: its JSON "error", else the end of stderr/stdout,
    with our temp paths shortened to file names."""
    err = (last_json(res["stdout"]) or {}).get("error")
    text = str(err) if err else res["stderr"].strip() or res["stdout"].strip()
    for p in paths:
        text = text.replace(p, os.path.basename(p))
    return " | ".join(text.splitlines()[-3:])[:300]


def bench_one(tool, old, new, wd, timeout, keep):
    """Diff, apply and verify one (pair, tool). Returns a result dict."""
    patch, out = str(wd / f"{tool}.patch"), str(wd / f"{tool}.out")
    try:
        return diff_apply_verify(tool, old, new, patch, out, str(wd / "time.txt"), timeout)
    finally:
        if not keep:
            for f in (patch, out):
                Path(f).unlink(missing_ok=True)


def diff_apply_verify(tool, old, new, patch, out, tf, timeout):
    ours = tool.startswith("ours-")
    name = tool.removeprefix("ours-")
    diff_cmd, apply_cmd = (our_cmds if ours else peer_cmds)(name, old, new, patch, out)
    r = {"status": "ok", "verified": None, "diff_cmd": diff_cmd, "apply_cmd": apply_cmd}
    d = timed(diff_cmd, timeout, tf)
    if d.get("timeout"):
        r["status"] = "diff timeout"
        return r
    r.update(diff_wall=d["wall"], diff_cpu=d["cpu"], diff_rss_kib=d["rss_kib"])
    if d["rc"] != 0 or not os.path.exists(patch):
        r.update(status="diff error", verified=False, note=f"exit {d['rc']}: {why(d, patch, out) or 'no patch written'}")
        return r
    r["patch_bytes"] = os.path.getsize(patch)
    if ours:
        info = last_json(d["stdout"])
        r["diff_json"] = info
        notes = []
        if info is None:
            notes.append("no JSON on stdout")
        else:
            r["method"] = info.get("method")
            if info.get("patch_size") != r["patch_bytes"]:
                notes.append(f"JSON patch_size {info.get('patch_size')} != file size")
            if name != "auto" and r["method"] != name:
                notes.append(f"asked for {name}, JSON says {r['method']}")
        if notes:
            r["note"] = "; ".join(notes)
    a = timed(apply_cmd, timeout, tf)
    if a.get("timeout"):
        r["status"] = "apply timeout"
    else:
        r.update(apply_wall=a["wall"], apply_cpu=a["cpu"], apply_rss_kib=a["rss_kib"])
        if ours:
            r["apply_json"] = last_json(a["stdout"])
        if a["rc"] != 0 or not os.path.exists(out):
            r.update(status="apply error", verified=False, note="; ".join(
                filter(None, [r.get("note"), f"apply exit {a['rc']}: {why(a, patch, out)}"])))
        else:
            r["verified"] = same(out, new)
            if not r["verified"]:
                r.update(status="MISMATCH", note="output differs from new")
    return r


def prepare(pair_dir, wd):
    """(old, new) file paths; a *-tree pair's directories become deterministic tars."""
    sides = []
    for side in ("old", "new"):
        src = pair_dir / side
        if src.is_dir():
            tar = wd / f"{side}.tar"
            subprocess.run([*TAR, "-C", str(src), "-cf", str(tar), "."], check=True)
            src = tar
        sides.append(str(src))
    return sides


def build_ours():
    """Build both binaries; return None if they are usable, else why not."""
    for argv in (["cargo", "build", "--release", "-p", "deltapack"],
                 ["cargo", "build", "--profile", "applier", "-p", "deltaapply-cli"]):
        log("$ " + " ".join(argv))
        p = run(argv, cwd=ROOT)
        if p.returncode != 0:
            log(p.stderr[-3000:])
            return f"`{' '.join(argv[:4])}` failed"
    return probe_ours()


def probe_ours():
    for exe, sub, flag in ((DP, "diff", "--method"), (DA, "apply", "--max-memory")):
        if not exe.exists():
            return f"{exe.relative_to(ROOT)} missing"
        p = run([str(exe), sub, "--help"])
        if p.returncode != 0 or flag not in p.stdout + p.stderr:
            return f"`{exe.name} {sub}` lacks {flag}"
    return None


def first_line(argv):
    """First output line of a version command, without banner decoration."""
    try:
        p = run(argv)
    except OSError:
        return "not installed"
    line = ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]
    return line.strip("* ").split(", by ")[0].split(", Copyright")[0]


def header_info(args):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    rev = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip() or "?"
    if run(["git", "status", "--porcelain", "--", ".", ":!benches"], cwd=ROOT).stdout.strip():
        rev += " (uncommitted changes)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"nproc {first_line(['nproc'])}, {cpu}, {mem / 2**20:.1f} GiB RAM, "
                   f"load average {os.getloadavg()[0]:.2f} at start (timings need an idle machine)",
        "versions": {
            "zstd": first_line(["zstd", "--version"]),
            "xdelta3": first_line(["xdelta3", "-V"]),
            "bsdiff": "Debian bsdiff " + (run(["dpkg-query", "-W", "-f", "${Version}", "bsdiff"]).stdout or "?"),
            "deltapack": f"git {rev}, {first_line(['rustc', '--version'])}",
        },
        "corpus": str(args.corpus),
        "timeout_s": args.timeout,
        "command": " ".join(["python3", "benches/compare.py", *sys.argv[1:]]),
    }


def label(tool, r=None):
    if not tool.startswith("ours-"):
        return tool
    name, method = tool.removeprefix("ours-"), (r or {}).get("method")
    return f"deltapack {name}" + (f" → {method}" if name == "auto" and method else "")


def fnum(x, fmt="{:,}"):
    return "—" if x is None else fmt.format(x)


def table_rows(rows, timeout):
    dnf = f"did not finish (>{timeout:g} s)"
    yield ("| pair | tool | new bytes | patch bytes | % of new | diff CPU s | diff peak RSS MiB "
           "| apply wall s | apply peak RSS MiB | verified |")
    yield "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for r in rows:
        st, pb = r["status"], r.get("patch_bytes")
        patch = {"not available": "not available", "diff timeout": dnf, "diff error": "**error**"}.get(st, fnum(pb))
        pct = fnum(100 * pb / r["new_bytes"] if pb is not None else None, "{:.2f}")
        rss = lambda k: fnum(r[k] / 1024 if k in r else None, "{:.1f}")
        wall = dnf if st == "apply timeout" else fnum(r.get("apply_wall"), "{:.2f}")
        ver = {True: "ok", False: "**FAIL**"}.get(r["verified"], "—")
        note = f" ({r['note']})" if r.get("note") else ""
        yield (f"| {r['pair']} | {r['label']} | {r['new_bytes']:,} | {patch} | {pct} "
               f"| {fnum(r.get('diff_cpu'), '{:.2f}')} | {rss('diff_rss_kib')} | {wall} "
               f"| {rss('apply_rss_kib')} | {ver}{note} |")


def cell(r):
    """Patch bytes of a verified run, else why there is no figure (None: not run)."""
    if r is None or r["verified"]:
        return r and r["patch_bytes"]
    return {"diff timeout": "did not finish", "not available": "not available"}.get(r["status"], "FAIL")


def summary(rows, pairs):
    """Per pair: each tool's patch bytes, the recorded hdiffz figure, and ratios."""
    out = []
    for pair in pairs:
        rs = {r["tool"]: r for r in rows if r["pair"] == pair}
        if not rs:
            continue
        rec = RECORDED.get(pair, (None,) * 4)
        s = {"pair": pair, "new_bytes": next(iter(rs.values()))["new_bytes"], "recorded": [],
             "hdiffz -m (recorded)": rec[3]}
        for i, p in enumerate(PEERS):
            if p in rs:
                s[p] = cell(rs[p])
            else:  # peer not run: fall back to the PEERS.md figure
                s[p] = rec[i] or "did not finish"
                s["recorded"].append(p)
        for m in OURS:
            s[f"deltapack {m}"] = cell(rs.get(f"ours-{m}"))
        peers = [s[p] for p in PEERS if isinstance(s[p], int)]
        s["best peer"] = min(peers) if peers else None
        auto = s["deltapack auto"] if isinstance(s["deltapack auto"], int) else None
        s["auto / best peer"] = auto / s["best peer"] if auto and s["best peer"] else None
        s["auto / hdiffz"] = auto / rec[3] if auto and rec[3] else None
        out.append(s)
    return out


def summary_table(summ):
    cols = [*PEERS, "hdiffz -m (recorded)", *(f"deltapack {m}" for m in OURS)]
    yield "| pair | new bytes | " + " | ".join(cols) + " | auto / best peer | auto / hdiffz |"
    yield "|---|" + "---:|" * (len(cols) + 3)
    for s in summ:
        cells = [(fnum(s[c]) if not isinstance(s[c], str) else s[c].replace("FAIL", "**FAIL**"))
                 + ("†" if c in s["recorded"] else "") for c in cols]
        ratio = fnum(s["auto / best peer"], "{:.3f}") + ("†" if s["recorded"] and s["auto / best peer"] else "")
        yield (f"| {s['pair']} | {s['new_bytes']:,} | " + " | ".join(cells)
               + f" | {ratio} | {fnum(s['auto / hdiffz'], '{:.3f}')} |")


def render(head, rows, summ, progress):
    v = head["versions"]
    lines = [
        "# deltapack benchmark", "",
        f"- date: {head['date']}{progress}",
        f"- machine: {head['machine']}",
        f"- tools: {v['zstd']}; {v['xdelta3']}; {v['bsdiff']}; deltapack {v['deltapack']}",
        f"- corpus: `{head['corpus']}`; per-command timeout {head['timeout_s']:g} s",
        f"- command: `{head['command']}`",
        "", "## Every run", "",
        "Diff: CPU seconds (user+sys) and peak RSS. Apply: wall seconds and peak RSS, run "
        "right after the diff (warm cache). verified = output equals `new` byte for byte.",
        "", *table_rows(rows, head["timeout_s"]),
        "", "## Patch bytes side by side", "",
        "Only verified patches are counted. auto / best peer = our auto patch divided by the "
        "smallest of bsdiff, xdelta3 and zstd (below 1 means ours is smaller). hdiffz -m is "
        "RECORDED from /work/shared/corpus/PEERS.md (not packaged, not measured here); "
        "† = peer not run this time, figure recorded from PEERS.md.",
        "", *summary_table(summ), "",
    ]
    return "\n".join(lines)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("DELTA_CORPUS", Path.home() / ".cache/delta-corpus")))
    ap.add_argument("--pairs", help="comma-separated pair names (default: all)")
    ap.add_argument("--tools", help="comma-separated subset of: " + ",".join(TOOLS))
    ap.add_argument("--skip-peers", "--only-ours", dest="skip_peers", action="store_true")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--timeout", type=float, default=330, help="seconds per command (default 330)")
    ap.add_argument("--out", type=Path, default=ROOT / "benches/results/latest.md")
    ap.add_argument("--work", type=Path, help="work directory (default: a temp dir under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep tars, patches and outputs")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in target/")
    args = ap.parse_args()

    want = {t.strip() for t in args.tools.split(",")} if args.tools else set(TOOLS)
    if bad := want - set(TOOLS):
        ap.error(f"unknown tools: {', '.join(sorted(bad))}")
    tools = [t for t in TOOLS if t in want and not (args.skip_ours if t.startswith("ours-") else args.skip_peers)]

    if not (args.corpus / "pairs").is_dir():
        log(f"Corpus not found at {args.corpus}: building it with `bash {FETCH} {args.corpus}` "
            "(pip/npm downloads plus a generated 2 x 512 MiB image; takes several minutes).")
        if not FETCH.exists():
            sys.exit(f"error: {FETCH} not found; cannot build the corpus")
        if subprocess.run(["bash", str(FETCH), str(args.corpus)]).returncode != 0:
            sys.exit(f"error: {FETCH} failed; see its messages above")
    all_pairs = sorted(p.name for p in (args.corpus / "pairs").iterdir() if (p / "new").exists())
    pairs = [p.strip() for p in args.pairs.split(",")] if args.pairs else all_pairs
    if not pairs or not tools:
        sys.exit("error: nothing to run (no pairs or no tools selected)")
    if missing := [p for p in pairs if p not in all_pairs]:
        sys.exit(f"error: no such pair(s) in {args.corpus}/pairs: {', '.join(missing)}")

    need = ["tar", "/usr/bin/time", *(b for t in tools for b in PEER_BINS.get(t, ()))]
    if lacking := [n for n in need if not shutil.which(n)]:
        sys.exit(f"error: missing {', '.join(lacking)}; install with: apt-get install -y bsdiff xdelta3 zstd time")

    ours_missing = None
    if any(t.startswith("ours-") for t in tools):
        ours_missing = probe_ours() if args.no_build else build_ours()
        if ours_missing:
            log(f"our tools not available ({ours_missing}); running the rest")

    head = header_info(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="deltabench-"))
    work.mkdir(parents=True, exist_ok=True)
    if not ours_missing:  # run copies, so a rebuild during the run cannot mix versions
        (work / "bin").mkdir(exist_ok=True)
        for name, exe in BIN.items():
            BIN[name] = Path(shutil.copy2(exe, work / "bin" / name))
    rows = []
    try:
        for i, pair in enumerate(pairs, 1):
            wd = work / pair
            wd.mkdir(exist_ok=True)
            old, new = prepare(args.corpus / "pairs" / pair, wd)
            for tool in tools:
                log(f"[{pair}] {label(tool)} ...")
                if tool.startswith("ours-") and ours_missing:
                    r = {"status": "not available", "verified": None, "note": ours_missing}
                else:
                    r = bench_one(tool, old, new, wd, args.timeout, args.keep)
                r.update(pair=pair, tool=tool, label=label(tool, r), new_bytes=os.path.getsize(new))
                rows.append(r)
                if r["status"] == "not available":
                    continue
                log(f"[{pair}] {r['label']}: {r['status']}, patch {fnum(r.get('patch_bytes'))} B, "
                    f"diff {fnum(r.get('diff_cpu'), '{:.2f}')} s CPU, apply {fnum(r.get('apply_wall'), '{:.2f}')} s, "
                    f"verified {r['verified']}" + (f" ({r['note']})" if r.get("note") else ""))
            if not args.keep:
                shutil.rmtree(wd)
            summ = summary(rows, pairs)
            progress = "" if i == len(pairs) else f" (partial: {i}/{len(pairs)} pairs done)"
            md = render(head, rows, summ, progress)
            args.out.write_text(md)
            args.out.with_suffix(".json").write_text(json.dumps(
                {"header": head, "partial": bool(progress), "rows": rows, "summary": summ}, indent=1) + "\n")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(md)
    failures = [r for r in rows if r["verified"] is False]
    for r in failures:
        log(f"FAIL: {r['pair']} {r['label']}: {r['status']}" + (f" ({r['note']})" if r.get("note") else ""))
    log(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (tables hold the pairs finished so far)")
