#!/usr/bin/env python3
"""Benchmark deltapack/deltaapply against peer delta tools on the shared corpus.

    python3 benches/compare.py [--corpus DIR] [--pairs a,b] [--tools t1,t2]
                               [--skip-peers | --only-ours] [--skip-ours]
                               [--timeout SECS] [--out FILE] [--work DIR] [--keep] [--no-build]
    python3 benches/compare.py --vcdiff [--pairs a,b] [--out benches/results/vcdiff.md] ...
    python3 benches/compare.py --bsdiff40 [--pairs a,b] [--out benches/results/bsdiff40.md] ...

--vcdiff compares the two VCDIFF encoders instead, in the same run: `deltapack diff
--format vcdiff` (its default LZMA secondary compression) beside `xdelta3 -e -9 -s`
(Debian's 3.0.11, whose default secondary compressor is LZMA), and applies each patch
with `deltaapply apply` and `xdelta3 -d` (the interop matrix), each output compared
with `new`. --bsdiff40 does the same for BSDIFF40: `deltapack diff --format bsdiff40`
beside Debian's `bsdiff`, each patch applied by `deltaapply apply` and Debian's `bspatch`.

For every pair DIR/pairs/<name>/{old,new} (a `*-tree` pair's sides are first packed into
deterministic tars, as PEERS.md prescribes) and every tool, it makes a patch, applies it
right away, and compares the output with `new` byte for byte. Diff and apply each run
under GNU time (`/usr/bin/time -f '%e %U %S %M'`) with a per-command timeout. Results go
to a markdown table (--out, default benches/results/latest.md, also printed) and a JSON
file beside it. Exit status 1 if any output mismatched or any tool errored, else 0.

HDiffPatch (`hdiffz -m-6 -SD -c-zstd-21-24`, not packaged in Debian) runs beside the others
when HDIFFPATCH_SRC names a source checkout: it is built in a copy under
~/.cache/deltapack-bench (or $XDG_CACHE_HOME). Without it, its cells say "not measured".
Python 3.11 stdlib only. See benches/README.md.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import math
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

PEERS = ("bsdiff", "xdelta3", "zstd")  # the Debian peers
OURS = ("auto", "bsdiff", "zstd")  # deltapack --method values
TOOLS = (*PEERS, "hdiffz", *(f"ours-{m}" for m in OURS))
PEER_BINS = {"bsdiff": ("bsdiff", "bspatch"), "xdelta3": ("xdelta3",), "zstd": ("zstd",)}
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
DP = TARGET / "release" / "deltapack"
DA = TARGET / "applier" / "deltaapply"
# main() points these at snapshot copies; hdiffz/hpatchz only when HDIFFPATCH_SRC builds.
BIN = {"deltapack": DP, "deltaapply": DA}
# HDiffPatch (not packaged in Debian) is built from a source checkout named by
# HDIFFPATCH_SRC, in a copy under a cache directory (never in the checkout or the repo).
HDP_MAKE = ["make", "LDEF=0", "ZLIB=2", "LZMA=0", "ZSTD=2", "MD5=0", "XXH=0", "BZIP2=2"]
HDP_HEADERS = {"zstd.h": "libzstd-dev", "bzlib.h": "libbz2-dev", "zlib.h": "zlib1g-dev"}
HDIFFZ_OPTS = ["-m-6", "-SD", "-c-zstd-21-24"]  # its best-size mode (PEERS.md)


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
    if tool == "hdiffz":
        return ([str(BIN["hdiffz"]), *HDIFFZ_OPTS, "-d", "-f", old, new, patch],
                [str(BIN["hpatchz"]), "-f", old, patch, out])
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


def hdp_cache_root():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deltapack-bench"


def build_hdiffz(src):
    """Build hdiffz and hpatchz from the HDiffPatch checkout SRC (HDIFFPATCH_SRC) in a copy
    under the cache directory, keyed by the checkout's file names, sizes and mtimes and the
    make flags, so an unchanged checkout is built once. Returns (directory holding both
    binaries, None) or (None, why not)."""
    if not src:
        return None, "HDIFFPATCH_SRC not set"
    src = Path(src).expanduser().resolve()
    if not (src / "hdiffz.cpp").is_file() or not (src / "Makefile").is_file():
        return None, f"HDIFFPATCH_SRC={src} is not an HDiffPatch checkout (no hdiffz.cpp, Makefile)"
    if lacking := [pkg for h, pkg in HDP_HEADERS.items() if not Path("/usr/include", h).exists()]:
        return None, f"cannot build hdiffz: install {' '.join(lacking)} (apt-get install -y {' '.join(lacking)})"
    key = hashlib.sha256(" ".join(HDP_MAKE).encode())
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if rel.parts[0] != ".git" and f.is_file():
            st = f.stat()
            key.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    dest = hdp_cache_root() / f"hdiffpatch-{key.hexdigest()[:16]}"
    if ROOT in dest.parents:
        return None, f"refusing to build HDiffPatch inside the repository ({dest})"
    if (dest / "hdiffz").is_file() and (dest / "hpatchz").is_file():
        log(f"hdiffz: using the build cached in {dest}")
        return dest, None
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".git"))
    argv = [*HDP_MAKE, f"-j{os.cpu_count() or 1}"]
    log(f"$ (cd {tmp} && {' '.join(argv)})  # HDiffPatch from {src}, ~40 s")
    p = run(argv, cwd=tmp)
    if p.returncode != 0 or not (tmp / "hdiffz").is_file() or not (tmp / "hpatchz").is_file():
        log(p.stdout[-2000:] + p.stderr[-3000:])
        last = (p.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return None, f"HDiffPatch build failed (make exit {p.returncode}: {last})"
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest, None


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


def hdiffz_version(hdp, why_not):
    if why_not:
        return f"hdiffz: not measured ({why_not})"
    v = first_line([str(hdp / "hdiffz"), "-v"])
    src = Path(os.environ["HDIFFPATCH_SRC"]).expanduser()
    commit = run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"]).stdout.strip()
    return f"{v} (built from {src}" + (f" at {commit}" if commit else "") + ")"


def header_info(args, hdp, hdp_missing):
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
            "hdiffz": hdiffz_version(hdp, hdp_missing),
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


def cell(r):
    """Patch bytes of a verified run, else why there is no figure ("not run": not selected)."""
    if r is None:
        return "not run"
    if r["verified"]:
        return r["patch_bytes"]
    if r["status"] == "not measured":
        return f"not measured ({r['note']})"
    return {"diff timeout": "did not finish", "not available": "not available"}.get(r["status"], "FAIL")


def references(rows, pair):
    """(hdiffz patch bytes or why none, (best Debian peer bytes, its name) or why none)."""
    rs = {r["tool"]: r for r in rows if r["pair"] == pair}
    hd = cell(rs.get("hdiffz"))
    peers = [(cell(rs[p]), p) for p in PEERS if p in rs and isinstance(cell(rs[p]), int)]
    if peers:
        best = min(peers)
    elif any(p in rs for p in PEERS):
        best = "no verified Debian peer"
    else:
        best = "Debian peers not run"
    return hd, best


def ratio(x, ref):
    """x / ref when both are figures, else the reason there is none."""
    if not isinstance(x, int):
        return None
    if isinstance(ref, tuple):
        ref = ref[0]
    if isinstance(ref, int):
        return x / ref
    return "not measured" if ref.startswith("not measured") else ref


def fratio(x):
    return x if isinstance(x, str) else fnum(x, "{:.3f}")


def table_rows(rows, timeout):
    dnf = f"did not finish (>{timeout:g} s)"
    yield ("| pair | tool | new bytes | patch bytes | % of new | / hdiffz | / best Debian peer "
           "| diff CPU s | diff peak RSS MiB | apply wall s | apply peak RSS MiB | verified |")
    yield "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for r in rows:
        st, pb = r["status"], r.get("patch_bytes")
        if st == "not measured":
            yield (f"| {r['pair']} | {r['label']} | {r['new_bytes']:,} | not measured ({r['note']}) "
                   "| — | — | — | — | — | — | — | — |")
            continue
        patch = {"not available": "not available", "diff timeout": dnf, "diff error": "**error**"}.get(st, fnum(pb))
        pct = fnum(100 * pb / r["new_bytes"] if pb is not None else None, "{:.2f}")
        hd, best = references(rows, r["pair"])
        mine = pb if r["verified"] else None
        rss = lambda k: fnum(r[k] / 1024 if k in r else None, "{:.1f}")
        wall = dnf if st == "apply timeout" else fnum(r.get("apply_wall"), "{:.2f}")
        ver = {True: "ok", False: "**FAIL**"}.get(r["verified"], "—")
        note = f" ({r['note']})" if r.get("note") else ""
        yield (f"| {r['pair']} | {r['label']} | {r['new_bytes']:,} | {patch} | {pct} "
               f"| {fratio(ratio(mine, hd))} | {fratio(ratio(mine, best))} "
               f"| {fnum(r.get('diff_cpu'), '{:.2f}')} | {rss('diff_rss_kib')} | {wall} "
               f"| {rss('apply_rss_kib')} | {ver}{note} |")


def geomean(xs):
    xs = [x for x in xs if isinstance(x, float)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def summary(rows, pairs):
    """Per pair: every tool's patch bytes (verified only) and our auto patch against hdiffz
    and against the best Debian peer, all measured in this run."""
    out = []
    for pair in pairs:
        rs = {r["tool"]: r for r in rows if r["pair"] == pair}
        if not rs:
            continue
        s = {"pair": pair, "new_bytes": next(iter(rs.values()))["new_bytes"]}
        for t in (*PEERS, "hdiffz"):
            s[t] = cell(rs.get(t))
        for m in OURS:
            s[f"deltapack {m}"] = cell(rs.get(f"ours-{m}"))
        hd, best = references(rows, pair)
        s["best Debian peer"] = best[0] if isinstance(best, tuple) else best
        s["best Debian peer tool"] = best[1] if isinstance(best, tuple) else None
        s["auto / hdiffz"] = ratio(s["deltapack auto"], hd)
        s["auto / best Debian peer"] = ratio(s["deltapack auto"], best)
        out.append(s)
    return out


def summary_table(summ):
    cols = [*PEERS, "hdiffz", *(f"deltapack {m}" for m in OURS)]
    yield ("| pair | new bytes | " + " | ".join(cols)
           + " | best Debian peer | auto / hdiffz | auto / best Debian peer |")
    yield "|---|" + "---:|" * (len(cols) + 4)
    for s in summ:
        cells = [fnum(s[c]) if not isinstance(s[c], str) else s[c].replace("FAIL", "**FAIL**") for c in cols]
        best = fnum(s["best Debian peer"]) if isinstance(s["best Debian peer"], int) else s["best Debian peer"]
        if s["best Debian peer tool"]:
            best += f" ({s['best Debian peer tool']})"
        yield (f"| {s['pair']} | {s['new_bytes']:,} | " + " | ".join(cells)
               + f" | {best} | {fratio(s['auto / hdiffz'])} | {fratio(s['auto / best Debian peer'])} |")
    gm = {}
    for k in ("auto / hdiffz", "auto / best Debian peer"):
        vals = [s[k] for s in summ]
        n = sum(isinstance(v, float) for v in vals)
        g = geomean(vals)
        if g is not None:
            gm[k] = f"**{g:.3f}** ({n} of {len(vals)} pairs)"
        else:
            gm[k] = next((v for v in vals if isinstance(v, str)), "—")
    yield ("| **geometric mean** | | " + " | ".join("" for _ in cols) + " | "
           + f" | {gm['auto / hdiffz']} | {gm['auto / best Debian peer']} |")


def summary_geomeans(summ):
    return {k: geomean([s[k] for s in summ]) for k in ("auto / hdiffz", "auto / best Debian peer")}


def render(head, rows, summ, progress):
    v = head["versions"]
    lines = [
        "# deltapack benchmark", "",
        f"- date: {head['date']}{progress}",
        f"- machine: {head['machine']}",
        f"- tools: {v['zstd']}; {v['xdelta3']}; {v['bsdiff']}; {v['hdiffz']}; deltapack {v['deltapack']}",
        f"- corpus: `{head['corpus']}`; per-command timeout {head['timeout_s']:g} s",
        f"- command: `{head['command']}`",
        "", "Every figure below was measured in this run, on this machine; none is copied from "
        "elsewhere.",
        "", "## Every run", "",
        "Diff: CPU seconds (user+sys) and peak RSS. Apply: wall seconds and peak RSS, run "
        "right after the diff (warm cache). verified = output equals `new` byte for byte. "
        "/ hdiffz and / best Debian peer: this patch's bytes divided by hdiffz's and by the "
        "smallest verified of bsdiff, xdelta3 and zstd for the same pair (below 1: smaller).",
        "", *table_rows(rows, head["timeout_s"]),
        "", "## Patch bytes side by side", "",
        "Only verified patches are counted. best Debian peer = the smallest of bsdiff, xdelta3 "
        f"and zstd; hdiffz = HDiffPatch `hdiffz {' '.join(HDIFFZ_OPTS)}`, built from "
        "HDIFFPATCH_SRC. auto / X = our auto patch divided by X (below 1 means ours is smaller); "
        "the geometric mean is over the pairs where both figures exist.",
        "", *summary_table(summ), "",
    ]
    return "\n".join(lines)


# --vcdiff / --bsdiff40: our encoder of a standard format beside the peer that defines
# it, and who applies whose patches.
FOREIGN = {
    "vcdiff": {
        "title": "VCDIFF: deltapack vs xdelta3 -9", "peer": "xdelta3", "peer_label": "xdelta3 -9",
        "peer_applier": "xdelta3", "peer_apply_label": "xdelta3 -d",
        "ours_doc": "`deltapack diff --format vcdiff OLD NEW -o P` (LZMA secondary compression)",
        "peer_doc": "`xdelta3 -e -9 -s OLD NEW P` (its default secondary compression, LZMA)",
        "apply_doc": "`xdelta3 -d -s OLD P OUT`",
    },
    "bsdiff40": {
        "title": "BSDIFF40: deltapack vs Debian bsdiff", "peer": "bsdiff", "peer_label": "bsdiff",
        "peer_applier": "bspatch", "peer_apply_label": "bspatch",
        "ours_doc": "`deltapack diff --format bsdiff40 OLD NEW -o P` (our matcher, bzip2 streams)",
        "peer_doc": "`bsdiff OLD NEW P` (Debian's bsdiff 4.3)",
        "apply_doc": "`bspatch OLD OUT P`",
    },
}


def foreign_cmds(fmt, maker, applier, old, new, patch, out):
    """(diff argv, apply argv) of a maker and an applier of format `fmt`."""
    f = FOREIGN[fmt]
    if maker == "ours":
        diff = [str(BIN["deltapack"]), "diff", "--format", fmt, old, new, "-o", patch, "--json"]
    elif fmt == "vcdiff":
        diff = ["xdelta3", "-f", "-e", "-9", "-s", old, new, patch]
    else:
        diff = ["bsdiff", old, new, patch]
    if applier == "deltaapply":
        digest = hashlib.sha256(Path(new).read_bytes()).hexdigest()
        apply = [str(BIN["deltaapply"]), "apply", old, patch, "-o", out, "--expect-sha256", digest,
                 "--max-memory", "1GiB", "--json"]
    elif f["peer_applier"] == "xdelta3":
        apply = ["xdelta3", "-f", "-d", "-s", old, patch, out]
    else:
        apply = ["bspatch", old, out, patch]
    return diff, apply


def foreign_pair(fmt, old, new, wd, timeout):
    """Rows for one pair: each maker's patch, applied by each applier."""
    rows, tf = [], str(wd / "time.txt")
    appliers = ("deltaapply", FOREIGN[fmt]["peer_applier"])
    for maker in ("ours", FOREIGN[fmt]["peer"]):
        patch = str(wd / f"{maker}.{fmt}")
        diff_cmd = foreign_cmds(fmt, maker, appliers[1], old, new, patch, "")[0]
        d = timed(diff_cmd, timeout, tf)
        r = {"maker": maker, "diff_cmd": diff_cmd}
        if d.get("timeout") or d["rc"] != 0 or not os.path.exists(patch):
            r.update(status="diff timeout" if d.get("timeout") else f"diff exit {d['rc']}: {why(d, patch)}")
            rows.append(r)
            continue
        r.update(status="ok", patch_bytes=os.path.getsize(patch), diff_wall=d["wall"],
                 diff_rss_kib=d["rss_kib"], applied={})
        for applier in appliers:
            out = str(wd / f"{maker}-{applier}.out")
            a = timed(foreign_cmds(fmt, maker, applier, old, new, patch, out)[1], timeout, tf)
            if a.get("timeout"):
                cellr = {"status": "timeout", "verified": False}
            elif a["rc"] != 0 or not os.path.exists(out):
                cellr = {"status": f"exit {a['rc']}: {why(a, patch, out)}", "verified": False}
            else:
                cellr = {"status": "ok", "verified": same(out, new), "wall": a["wall"],
                         "rss_kib": a["rss_kib"]}
            r["applied"][applier] = cellr
            Path(out).unlink(missing_ok=True)
        rows.append(r)
        Path(patch).unlink(missing_ok=True)
    return rows


def foreign_render(fmt, head, results, progress):
    f = FOREIGN[fmt]
    peer, pa = f["peer"], f["peer_applier"]

    def applied(r, who):
        c = (r.get("applied") or {}).get(who)
        if not c:
            return "-"
        if not c.get("verified"):
            return f"FAILED ({c['status']})"
        return f"{c['wall']:.2f} s, {c['rss_kib'] / 1024:.0f} MiB"

    def made(r):
        if r.get("status") != "ok":
            return "-"
        return f"{r['diff_wall']:.1f} s, {r['diff_rss_kib'] / 1024:.0f} MiB"
    version = head["versions"].get(peer, peer)
    lines = [f"# {f['title']}{progress}", "",
             f"- date: {head['date']}; machine: {head['machine']}",
             f"- tools: {version}; deltapack {head['versions']['deltapack']}",
             f"- ours: {f['ours_doc']}; {peer}: {f['peer_doc']}. "
             "`*-tree` pairs are compared on deterministic tars of each side.",
             "- apply: `deltaapply apply OLD P -o OUT --expect-sha256 HEX` (the `applier` build) and "
             f"{f['apply_doc']}; wall time and peak RSS under GNU time; every output is "
             "compared with `new` byte for byte.", "",
             f"| pair | new bytes | ours bytes | {f['peer_label']} bytes | ours / {peer} | ours: diff "
             f"| {peer}: diff | ours → deltaapply | ours → {f['peer_apply_label']} "
             f"| {peer} → deltaapply | {peer} → {f['peer_apply_label']} |",
             "|---|---:|---:|---:|---:|---|---|---|---|---|---|"]
    for pair, (new_bytes, rows) in results.items():
        by = {r["maker"]: r for r in rows}
        o, x = by.get("ours", {}), by.get(peer, {})
        ob, xb = o.get("patch_bytes"), x.get("patch_bytes")
        rt = f"{ob / xb:.3f}" if ob and xb else "-"
        lines.append(f"| {pair} | {new_bytes:,} | {fnum(ob)} | {fnum(xb)} | {rt} | {made(o)} | "
                     f"{made(x)} | {applied(o, 'deltaapply')} | {applied(o, pa)} | "
                     f"{applied(x, 'deltaapply')} | {applied(x, pa)} |")
    lines += ["", "Interop matrix (verified = output equals `new`):", "",
              f"| patch made by | applied by deltaapply | applied by {f['peer_apply_label']} |",
              "|---|---|---|"]
    for maker in ("ours", peer):
        cells = []
        for who in ("deltaapply", pa):
            vs = [((r.get("applied") or {}).get(who) or {}).get("verified")
                  for _, rows in results.values() for r in rows if r["maker"] == maker]
            cells.append(f"{sum(1 for v in vs if v)}/{len(vs)} pairs verified")
        lines.append(f"| {maker} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def foreign_main(fmt, args, pairs, head):
    """--vcdiff / --bsdiff40: the format's table (benches/results/FORMAT.md and .json)."""
    out = args.out if args.out != ROOT / "benches/results/latest.md" else ROOT / f"benches/results/{fmt}.md"
    work = args.work or Path(tempfile.mkdtemp(prefix=f"deltabench-{fmt}-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "bin").mkdir(exist_ok=True)
    for name, exe in BIN.items():
        BIN[name] = Path(shutil.copy2(exe, work / "bin" / name))
    results, failed, md = {}, False, ""
    try:
        for i, pair in enumerate(pairs, 1):
            wd = work / pair
            wd.mkdir(exist_ok=True)
            old, new = prepare(args.corpus / "pairs" / pair, wd)
            log(f"[{pair}] {fmt} ...")
            rows = foreign_pair(fmt, old, new, wd, args.timeout)
            results[pair] = (os.path.getsize(new), rows)
            for r in rows:
                log(f"[{pair}] {r['maker']}: {r['status']}, {fnum(r.get('patch_bytes'))} B, "
                    f"applied: {json.dumps(r.get('applied'))}")
                failed |= r["status"] != "ok" or not all(
                    c.get("verified") for c in r["applied"].values())
            if not args.keep:
                shutil.rmtree(wd)
            progress = "" if i == len(pairs) else f" (partial: {i}/{len(pairs)} pairs done)"
            md = foreign_render(fmt, head, results, progress)
            out.write_text(md)
            out.with_suffix(".json").write_text(json.dumps(
                {"header": head, "partial": bool(progress),
                 "pairs": {p: {"new_bytes": n, "rows": rs} for p, (n, rs) in results.items()}},
                indent=1) + "\n")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(md)
    log(f"wrote {out} and {out.with_suffix('.json')}")
    sys.exit(1 if failed else 0)


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
    ap.add_argument("--vcdiff", action="store_true",
                    help="compare VCDIFF encoders and appliers (writes benches/results/vcdiff.md)")
    ap.add_argument("--bsdiff40", action="store_true",
                    help="compare BSDIFF40 encoders and appliers (writes benches/results/bsdiff40.md)")
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

    for fmt, tools_needed in (("vcdiff", ("xdelta3",)), ("bsdiff40", ("bsdiff", "bspatch"))):
        if not getattr(args, fmt):
            continue
        if lacking := [t for t in tools_needed if not shutil.which(t)]:
            sys.exit(f"error: --{fmt} needs {', '.join(lacking)}: apt-get install -y {tools_needed[0]}")
        if why_not := (probe_ours() if args.no_build else build_ours()):
            sys.exit(f"error: our tools are not available ({why_not})")
        foreign_main(fmt, args, pairs, header_info(args, None, f"not used by --{fmt}"))

    ours_missing = None
    if any(t.startswith("ours-") for t in tools):
        ours_missing = probe_ours() if args.no_build else build_ours()
        if ours_missing:
            log(f"our tools not available ({ours_missing}); running the rest")

    hdp, hdp_missing = None, None
    if "hdiffz" in tools:
        hdp, hdp_missing = build_hdiffz(os.environ.get("HDIFFPATCH_SRC"))
        if hdp_missing:
            log(f"hdiffz: not measured ({hdp_missing}); running the rest")

    head = header_info(args, hdp, hdp_missing)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="deltabench-"))
    work.mkdir(parents=True, exist_ok=True)
    if not ours_missing:  # run copies, so a rebuild during the run cannot mix versions
        (work / "bin").mkdir(exist_ok=True)
        for name, exe in BIN.items():
            BIN[name] = Path(shutil.copy2(exe, work / "bin" / name))
    if hdp:
        (work / "bin").mkdir(exist_ok=True)
        for name in ("hdiffz", "hpatchz"):
            BIN[name] = Path(shutil.copy2(hdp / name, work / "bin" / name))
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
                elif tool == "hdiffz" and hdp_missing:
                    r = {"status": "not measured", "verified": None, "note": hdp_missing}
                else:
                    r = bench_one(tool, old, new, wd, args.timeout, args.keep)
                r.update(pair=pair, tool=tool, label=label(tool, r), new_bytes=os.path.getsize(new))
                rows.append(r)
                if r["status"] in ("not available", "not measured"):
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
                {"header": head, "partial": bool(progress), "rows": rows, "summary": summ,
                 "geometric_means": summary_geomeans(summ)}, indent=1) + "\n")
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
