#!/usr/bin/env python3
"""Time `deltapack build` of a release with 5 older releases to patch from.

    python3 benches/release_build.py [--pair NAME] [--corpus DIR] [--work DIR]
                                     [--jobs N] [--prep-jobs N] [--reuse-base] [--keep]
                                     [--out FILE] [--no-build]

Answers: how long, and how much memory, does publishing a release of a corpus pair take
when the five releases before it are still supported, and how big is the publish
directory compared with shipping full images only?

Six releases of one artifact are made from the pair DIR/pairs/NAME/{old,new} (a `*-tree`
pair's sides are first packed into deterministic tars, as benches/compare.py does):

    release 1 = old,  release 6 = new,
    release k (k = 2..5) = new[:o_k] + old[o_k:]  with  o_k = floor(len(new) * (k-1) / 5)

That is, the differences between old and new land front to back over the releases, as
if each release had shipped another fifth of the work: every release differs from the
others, each newer one is closer to new, and the splice point is one more shift, like
the inserts and deletes the pair already has. It is deterministic and needs no model
of the file format. Its limits: real intermediate releases also hold changes that
neither old nor new has (so real patches from older bases are somewhat larger), and in
a compiled binary a change moves addresses everywhere after it, so patch size does not
fall with the base's age as evenly as here. One artefact goes the other way: a block
that new moved from before a cut to after it is in neither part of that release, so
the patch from it carries the block as literal bytes (synthetic-img moves 8 blocks of
64 KiB-2 MiB of mostly random data; its patches from releases 2 and 3 come out about as
large as the one from old). The script refuses to run if two of the six files are equal.

Releases 1..5 are built one after another into a fresh publish directory with the
default settings except `--jobs` (`--prep-jobs`, default 2, to bound memory while
preparing), with `--created` times one day apart (release k at 2026-11-(15+k)
10:00:00Z) and a secret key kept in the work directory, so every run publishes the same
bytes. Then only the build of release 6 (5 bases) is measured, with the default
settings (or `--jobs N`), under `/usr/bin/time -f '%e %U %S %M'`: wall seconds,
user+sys CPU seconds, peak RSS. While it runs, the script timestamps its stderr lines
(the "making N patch(es)" line, one line per patch done, and the `[timing]` lines that
`DELTAPACK_TIMINGS=1` adds for the suffix index and matching) and samples its RSS every
0.2 s, which splits the time and memory into phases: set-up (read the manifest, rebuild
the bases from their full images, compress the new full image), patches, and writing.

Afterwards: `deltapack verify` on the publish directory (at release 6's creation time,
so the result does not depend on the clock) must pass; every published patch is applied
with `deltaapply apply --in-place` to a copy of its base release under GNU time, and the
result must equal new byte for byte; the manifest, the build's own summary and the
files on disk must agree. Exit status 1 if anything failed.

The report (markdown table printed and written to --out, default
benches/results/release-build-<pair>[-jobsN].md, and JSON beside it) holds the measured
build's wall/CPU/peak RSS and phases, per base the method, patch size, share of the
full image and the download a client on that base saves, and the publish directory's
referenced bytes against full images only, plus `du` of the directory (which also
counts patches that earlier builds published for releases that are no longer current:
the build never deletes files).

Large files (the six releases, the publish directory: about 12x the pair's size) go to
--work (default DIR/release-build/<pair>, outside the repository) and are removed at the
end unless --keep. With --keep, a later run with --reuse-base skips preparing releases
1..5 when the saved state matches (same release files, deltapack binary, key, times):
use it to measure the build again, e.g. with --jobs 1.

Python 3.11 stdlib only; needs GNU time (`apt-get install -y time`) and openssl (for the
key). See benches/README.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

from compare import last_json, same  # benches/compare.py: the same checks, one copy

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
TAR = ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "--format=gnu"]
RELEASES = 6
CREATED = [f"2026-11-{15 + k:02d}T10:00:00Z" for k in range(1, RELEASES + 1)]
BIN = {"deltapack": ROOT / "target/release/deltapack", "deltaapply": ROOT / "target/release/deltaapply"}
# One line per patch done, as `deltapack build` prints it when not --json (cmd/build.rs).
PATCH_LINE = re.compile(r"^(\S+) (\S+) -> (\S+): (\S+) (\d+) bytes \(([^)]*) of the full image\)(?:, omitted: (.*))?$")
SUMMARY_LINE = re.compile(r"publish directory: .* referenced \((\d+) bytes\); full images only would be .* \((\d+) bytes\)")
TIMING_LINE = re.compile(r"^\[timing\] (.+): ([\d.]+) s$")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(argv, **kw):
    """Run quietly; return CompletedProcess (never raises on a non-zero exit)."""
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def child_pid(pid):
    """The (only) child of pid: the tool that /usr/bin/time runs."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def machine_busy():
    """CPU seconds all processes have used since boot (/proc/stat; iowait counts as idle)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


def timed(argv, tfile, env=None, watch=False):
    """Run argv under GNU time. Returns rc, wall, cpu, user, sys, rss_kib, stdout, stderr;
    with watch, also `lines` (seconds since start, stderr line), `samples` (seconds,
    RSS KiB of the tool, sampled every 0.2 s) and `others_cpu` (CPU seconds the rest of
    the machine used meanwhile: a busy machine skews the timings)."""
    busy = machine_busy()
    start = time.monotonic()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile, *map(str, argv)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         errors="replace", env=env, start_new_session=True)
    lines, samples, out = [], [], []
    readers = [threading.Thread(target=lambda: out.append(p.stdout.read())),
               threading.Thread(target=lambda: lines.extend(
                   (time.monotonic() - start, l.rstrip("\n")) for l in p.stderr))]
    for t in readers:
        t.start()
    try:
        tool = None
        while p.poll() is None:
            if watch:
                tool = tool or child_pid(p.pid)
                if tool and (r := rss_kib(tool)) is not None:
                    samples.append((round(time.monotonic() - start, 2), r))
            time.sleep(0.2)
    except BaseException:  # Ctrl-C: the child has its own session, kill it
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise
    for t in readers:
        t.join()
    # GNU time may prefix "Command exited with non-zero status N": the figures are last.
    e, u, s, m = Path(tfile).read_text().split("\n")[-2].split()
    res = {"rc": p.returncode, "wall": float(e), "user": float(u), "sys": float(s),
           "cpu": round(float(u) + float(s), 2), "rss_kib": int(m),
           "stdout": "".join(out), "stderr": "\n".join(l for _, l in lines)}
    if watch:
        res.update(lines=[(round(t, 2), l) for t, l in lines], samples=samples,
                   others_cpu=round(max(0.0, machine_busy() - busy - res["cpu"]), 1))
    return res


def fail(msg, res=None):
    if res is not None:
        log(res["stderr"][-3000:])
        log(res["stdout"][-3000:])
    sys.exit(f"error: {msg}")


# --- preparing --------------------------------------------------------------------

def build_tools(no_build):
    if not no_build:
        argv = ["cargo", "build", "--release", "-p", "deltapack", "-p", "deltaapply-cli"]
        log("$ " + " ".join(argv))
        if subprocess.run(argv, cwd=ROOT).returncode != 0:
            sys.exit("error: cargo build failed")
    for name, exe in BIN.items():
        if not exe.exists():
            sys.exit(f"error: {exe} missing (run without --no-build)")
    p = run([BIN["deltapack"], "build", "--help"])
    if p.returncode != 0 or "--max-patch-share" not in p.stdout:
        sys.exit("error: this deltapack has no `build` command")


def side_file(pair_dir, side, work):
    """The pair's side as a file; a directory becomes a deterministic tar."""
    src = pair_dir / side
    if src.is_dir():
        tar = work / f"{side}.tar"
        subprocess.run([*TAR, "-C", str(src), "-cf", str(tar), "."], check=True)
        return tar
    return src


def copy_range(src, dst, start, end):
    with open(src, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0 and (chunk := f.read(min(left, 4 * MiB))):
            dst.write(chunk)
            left -= len(chunk)


def make_releases(old, new, rdir):
    """Writes releases 1..6 (see the module doc); returns their paths and SHA-256s."""
    rdir.mkdir(parents=True, exist_ok=True)
    n_old, n_new = os.path.getsize(old), os.path.getsize(new)
    paths, shas, offsets = [], [], []
    for k in range(1, RELEASES + 1):
        path = rdir / f"release-{k}"
        if k == 1:
            shutil.copyfile(old, path)
            cut = 0
        elif k == RELEASES:
            shutil.copyfile(new, path)
            cut = n_new
        else:
            cut = n_new * (k - 1) // (RELEASES - 1)
            with open(path, "wb") as f:
                copy_range(new, f, 0, cut)
                copy_range(old, f, min(cut, n_old), n_old)
        paths.append(path)
        offsets.append(cut)
        shas.append(sha256_file(path))
    if len(set(shas)) != RELEASES:
        dup = [k + 1 for k in range(RELEASES) if shas.count(shas[k]) > 1]
        sys.exit(f"error: releases {dup} are identical for this pair; pick another pair")
    return paths, shas, offsets


def ensure_key(work):
    """A secret key kept in the work directory (so runs publish the same bytes) and its
    one-line public key."""
    key = work / "bench-key.pem"
    if not key.exists():
        p = run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key])
        if p.returncode != 0:
            sys.exit(f"error: openssl genpkey failed: {p.stderr.strip()}")
    key.chmod(0o600)
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return key, "ed25519:" + der[-32:].hex()


def build_argv(publish, key, k, artifact, path, jobs):
    argv = [BIN["deltapack"], "build", "--out", publish, "--secret-key", key, "--version", str(k),
            "--artifact", f"{artifact}={path}", "--created", CREATED[k - 1]]
    if k == 1:
        argv += ["--product", "bench"]
    if jobs:
        argv += ["--jobs", str(jobs)]
    return argv


def prepare_base(args, work, key, artifact, releases, stamp):
    """The publish directory holding releases 1..5 (built fresh, or reused with
    --reuse-base when its stamp matches). Returns the preparation builds' figures."""
    base = work / "publish-1-to-5"
    stamp_file = work / "publish-1-to-5.json"
    if args.reuse_base and base.is_dir() and stamp_file.exists():
        saved = json.loads(stamp_file.read_text())
        if saved.get("stamp") == stamp:
            log(f"reusing {base} (stamp matches)")
            return saved["prep"], True
        log(f"not reusing {base}: its stamp differs; rebuilding releases 1..5")
    shutil.rmtree(base, ignore_errors=True)
    stamp_file.unlink(missing_ok=True)
    prep = []
    for k in range(1, RELEASES):
        log(f"preparing: build release {k} ({k - 1} base(s), --jobs {args.prep_jobs}) ...")
        res = timed([*build_argv(base, key, k, artifact, releases[k - 1], args.prep_jobs), "--json"],
                    work / "time.txt")
        info = last_json(res["stdout"])
        if res["rc"] != 0 or not info or not info.get("ok"):
            fail(f"deltapack build of release {k} failed (exit {res['rc']})", res)
        prep.append({"release": k, "bases": k - 1, "wall": res["wall"], "cpu": res["cpu"],
                     "rss_kib": res["rss_kib"],
                     "patches": [{"base": p["base_version"], "method": p["method"], "size": p["size"],
                                  "omitted": p.get("omitted")} for p in info["patches"]]})
        log(f"  release {k}: {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, "
            f"{res['rss_kib'] / 1024:.0f} MiB peak RSS, {len(info['patches'])} patch(es)")
    stamp_file.write_text(json.dumps({"stamp": stamp, "prep": prep}, indent=1) + "\n")
    return prep, False


def hardlink_copy(src, dst):
    """A copy sharing file data: safe because deltapack never rewrites a file in place
    (it writes a new file and renames it over the old one)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=os.link)


# --- measuring ---------------------------------------------------------------------

def phases(res):
    """Splits the measured build by its stderr lines into set-up, patches, writing;
    with each phase's peak sampled RSS."""
    lines = res["lines"]
    planned = next((t for t, l in lines if l.startswith("making ")), None)
    done = [t for t, l in lines if PATCH_LINE.match(l)]
    end = res["wall"]
    bounds = [("set-up: read manifest, rebuild bases, compress and check the new full image", 0.0, planned),
              ("patches: make, sign, apply to base and check", planned, done[-1] if done else None),
              ("write files, manifest, signature; exit", done[-1] if done else planned, end)]
    out = []
    for name, a, b in bounds:
        if a is None or b is None:
            continue
        rss = [r for t, r in res["samples"] if a <= t <= b]
        out.append({"phase": name, "from_s": round(a, 1), "to_s": round(b, 1),
                    "seconds": round(b - a, 1), "peak_rss_sampled_kib": max(rss) if rss else None})
    timings = {}
    for _, l in lines:
        if m := TIMING_LINE.match(l):
            timings.setdefault(m.group(1), []).append(float(m.group(2)))
    return out, timings


def per_base_timings(lines):
    """The `[timing]` lines attributed to the patch they belong to. Lines carry no base,
    so the attribution follows their order: each job prints its suffix-index line, its
    match line, then its patch line; a patch gets the last unattributed match line
    before it, and the suffix-index line printed when that match started."""
    pending, out = [], {}
    for t, l in lines:
        if m := TIMING_LINE.match(l):
            pending.append((t, m.group(1), float(m.group(2))))
        elif m := PATCH_LINE.match(l):
            match = next((e for e in reversed(pending) if e[1].startswith("bsdiff match")), None)
            if match is None:
                continue
            pending.remove(match)
            start = match[0] - match[2]
            suffix = min((e for e in pending if e[1] == "suffix index" and abs(e[0] - start) < 0.5),
                         key=lambda e: abs(e[0] - start), default=None)
            if suffix:
                pending.remove(suffix)
            out[m.group(2)] = {"suffix_s": suffix and suffix[2], "match_s": match[2],
                               "started_s": round((suffix[0] - suffix[2]) if suffix else start, 1),
                               "done_s": t}
    return out


def per_second(samples):
    """The highest sampled RSS (KiB) in each second, to keep the JSON small."""
    peak = {}
    for t, r in samples:
        peak[int(t)] = max(peak.get(int(t), 0), r)
    return sorted(peak.items())


def patch_lines(res):
    rows = []
    for t, l in res["lines"]:
        if m := PATCH_LINE.match(l):
            rows.append({"at_s": t, "base": m.group(2), "method": m.group(4), "size": int(m.group(5)),
                         "omitted": m.group(7)})
    return rows


def du(path):
    """(apparent bytes, bytes on disk) of a directory tree."""
    apparent = int(run(["du", "-sb", path]).stdout.split()[0])
    disk = int(run(["du", "-sk", path]).stdout.split()[0]) * 1024
    return apparent, disk


def check_publish(publish, manifest, key_line, releases, new, work, problems):
    """deltapack verify, then every patch applied in place to a copy of its base."""
    res = timed([BIN["deltapack"], "verify", publish, "--key", key_line, "--at", CREATED[-1], "--json"],
                work / "time.txt")
    verify = {"rc": res["rc"], "wall": res["wall"], "rss_kib": res["rss_kib"], "json": last_json(res["stdout"])}
    if res["rc"] != 0:
        problems.append(f"deltapack verify failed (exit {res['rc']}): {res['stdout'][-1500:]} {res['stderr'][-1500:]}")
    applies = {}
    scratch = work / "apply-check"
    scratch.mkdir(exist_ok=True)
    for art in manifest["artifact"]:
        for pe in art.get("patch", []):
            base = pe["base_version"]
            copy = scratch / f"base-{base}"
            shutil.copyfile(releases[int(base) - 1], copy)
            res = timed([BIN["deltaapply"], "apply", "--in-place", copy, publish / pe["path"], "--json"],
                        work / "time.txt")
            ok = res["rc"] == 0 and same(copy, new)
            applies[base] = {"rc": res["rc"], "wall": res["wall"], "cpu": res["cpu"],
                             "rss_kib": res["rss_kib"], "verified": ok}
            if not ok:
                problems.append(f"applying the patch from {base}: exit {res['rc']}"
                                + (f": {res['stdout'][-500:]}" if res["rc"] else ", but the output differs from new"))
            copy.unlink()
    return verify, applies


def referenced(publish, manifest):
    """Files the manifest references (relative paths) and their bytes on disk."""
    files = {}
    for art in manifest["artifact"]:
        files[art["full"]["path"]] = art["full"]["size"]
        for pe in art.get("patch", []):
            files[pe["path"]] = pe["size"]
    for rel in manifest.get("previous", []):
        for art in rel["artifact"]:
            files[art["full"]["path"]] = art["full"]["size"]
    return files


def publish_figures(publish, manifest, summary_line, problems):
    files = referenced(publish, manifest)
    for rel, size in files.items():
        if (publish / rel).stat().st_size != size:
            problems.append(f"{rel}: {(publish / rel).stat().st_size} bytes on disk, manifest says {size}")
    meta = sum((publish / n).stat().st_size for n in ("manifest.toml", "manifest.toml.sig"))
    fulls = [a["full"]["size"] for a in manifest["artifact"]]
    fulls += [a["full"]["size"] for r in manifest.get("previous", []) for a in r["artifact"]]
    patches = sum(pe["size"] for a in manifest["artifact"] for pe in a.get("patch", []))
    on_disk = {str(p.relative_to(publish)): p.stat().st_size for p in publish.rglob("*") if p.is_file()}
    stray = {p: s for p, s in on_disk.items()
             if p not in files and p not in ("manifest.toml", "manifest.toml.sig")}
    fig = {"referenced_bytes": sum(files.values()) + meta, "full_only_bytes": sum(fulls),
           "full_images": len(fulls), "patch_bytes": patches, "manifest_and_sig_bytes": meta,
           "unreferenced_files": len(stray), "unreferenced_bytes": sum(stray.values()),
           "unreferenced_dirs": sorted({p.split("/")[0] for p in stray})}
    fig["du_apparent_bytes"], fig["du_disk_bytes"] = du(publish)
    fig["referenced_over_full_only"] = fig["referenced_bytes"] / fig["full_only_bytes"]
    if summary_line:
        fig["build_said_publish_bytes"], fig["build_said_full_only_bytes"] = summary_line
        if summary_line != (fig["referenced_bytes"], fig["full_only_bytes"]):
            problems.append(f"the build's summary says publish {summary_line[0]} / full only "
                            f"{summary_line[1]} bytes; the manifest and files give "
                            f"{fig['referenced_bytes']} / {fig['full_only_bytes']}")
    else:
        problems.append("the build's summary has no 'publish directory:' line")
    return fig


# --- reporting ---------------------------------------------------------------------

def header_info(args, pair, sizes):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    rev = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip() or "?"
    if run(["git", "status", "--porcelain", "--", ".", ":!benches"], cwd=ROOT).stdout.strip():
        rev += " (uncommitted changes)"
    rustc = (run(["rustc", "--version"]).stdout.strip() or "?")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"nproc {os.cpu_count()}, {cpu}, {mem / 2**20:.1f} GiB RAM, "
                   f"load average {os.getloadavg()[0]:.2f} at start (timings need an idle machine)",
        "deltapack": f"git {rev}, {rustc}, target/release",
        "pair": pair, "old_bytes": sizes[0], "new_bytes": sizes[1],
        "command": " ".join(["python3", "benches/release_build.py", *sys.argv[1:]]),
    }


def fnum(x, fmt="{:,}"):
    return "—" if x is None else fmt.format(x)


def mib(kib):
    return fnum(kib / 1024 if kib is not None else None, "{:,.0f}")


def render(r):
    h, m, pub = r["header"], r["measured"], r["publish"]
    pct = lambda a, b: f"{100 * a / b:.2f}%"
    lines = [
        f"# Release build: {h['pair']}, release 6 with 5 bases", "",
        f"- date: {h['date']}",
        f"- machine: {h['machine']}",
        f"- deltapack: {h['deltapack']}",
        f"- pair: `{h['pair']}`, old {h['old_bytes']:,} bytes, new {h['new_bytes']:,} bytes; "
        f"releases 2..5 = new[:o] + old[o:] at o = {', '.join(f'{o:,}' for o in r['releases']['offsets'][1:-1])}",
        f"- command: `{h['command']}`",
        f"- measured: `{' '.join(m['argv'])}` (plus `DELTAPACK_TIMINGS=1`), "
        f"jobs = {m['jobs']}; the 5 older releases were built beforehand"
        + (" (state reused from an earlier run with --reuse-base)" if r["prep_reused"] else ""),
        "", "## The measured build", "",
        "| wall s | CPU s (user+sys) | CPU / wall | peak RSS MiB | patches made | published "
        "| other processes' CPU s meanwhile |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {m['wall']:.1f} | {m['cpu']:.1f} | {m['cpu'] / m['wall']:.2f} | {mib(m['rss_kib'])} "
        f"| {len(r['bases'])} | {sum(1 for b in r['bases'] if not b['omitted'])} | {m['others_cpu']:.1f} |",
        "", "The last column is CPU time the rest of the machine used during the build (from "
        "/proc/stat): well above 0 means the machine was not idle and wall time is inflated.",
        "", "Where the time and memory went (from the build's stderr lines, timestamped, and its RSS "
        "sampled every 0.2 s; the sampled peak can miss a short spike that GNU time's figure catches):", "",
        "| phase | from s | to s | seconds | peak RSS MiB (sampled) |", "|---|---:|---:|---:|---:|",
        *(f"| {p['phase']} | {p['from_s']:.1f} | {p['to_s']:.1f} | {p['seconds']:.1f} "
          f"| {mib(p['peak_rss_sampled_kib'])} |" for p in m["phases"]),
        "", "## Per base: what a client on that release downloads", "",
        "| base | method | patch bytes | % of full image | % of new | full image bytes | full / patch "
        "| apply wall s | apply peak RSS MiB | verified |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    bases = sorted(r["bases"], key=lambda b: -int(b["base"]) if b["base"].isdigit() else 0)
    for b in bases:
        a = b.get("apply") or {}
        ver = "omitted: " + b["omitted"] if b["omitted"] else {True: "ok", False: "**FAIL**"}.get(a.get("verified"), "—")
        lines.append(
            f"| release {b['base']} | {b['method']} | {b['size']:,} | {pct(b['size'], b['full_size'])} "
            f"| {pct(b['size'], h['new_bytes'])} | {b['full_size']:,} | {b['full_size'] / b['size']:.1f}× "
            f"| {fnum(a.get('wall'), '{:.2f}')} | {mib(a.get('rss_kib'))} | {ver} |")
    pt = per_base_timings(m["stderr"])
    if pt:
        lines += [
            "", "Each patch in the measured build (from the `DELTAPACK_TIMINGS=1` lines, attributed "
            "to bases by their order; seconds since the build started):", "",
            "| base | started at s | suffix index s | bsdiff match + compress s | done at s "
            "(applied to its base and checked) |", "|---|---:|---:|---:|---:|",
            *(f"| release {b['base']} | {pt[b['base']]['started_s']:.1f} | {fnum(pt[b['base']]['suffix_s'], '{:.1f}')} "
              f"| {pt[b['base']]['match_s']:.1f} | {pt[b['base']]['done_s']:.1f} |" for b in bases if b["base"] in pt),
        ]
    lines += [
        "", "## Publish directory after release 6", "",
        "| | bytes | MiB |", "|---|---:|---:|",
        f"| referenced by the manifest ({pub['full_images']} full images, {len([b for b in r['bases'] if not b['omitted']])} patches, manifest + signature) "
        f"| {pub['referenced_bytes']:,} | {pub['referenced_bytes'] / MiB:,.1f} |",
        f"| full images only (the same {pub['full_images']} releases) | {pub['full_only_bytes']:,} | {pub['full_only_bytes'] / MiB:,.1f} |",
        f"| of which patches | {pub['patch_bytes']:,} | {pub['patch_bytes'] / MiB:,.1f} |",
        f"| `du -sb` of the directory | {pub['du_apparent_bytes']:,} | {pub['du_apparent_bytes'] / MiB:,.1f} |",
        f"| `du -sk` of the directory (on disk) | {pub['du_disk_bytes']:,} | {pub['du_disk_bytes'] / MiB:,.1f} |",
        f"| unreferenced files ({pub['unreferenced_files']}, in {', '.join(pub['unreferenced_dirs']) or '—'}) "
        f"| {pub['unreferenced_bytes']:,} | {pub['unreferenced_bytes'] / MiB:,.1f} |",
        "",
        f"Referenced / full images only = {pub['referenced_over_full_only']:.4f} "
        f"(+{pub['referenced_bytes'] - pub['full_only_bytes']:,} bytes). The unreferenced files are patches "
        "earlier builds published to releases that are no longer the newest: `deltapack build` never "
        "deletes, so `du` counts them until someone prunes the directory.",
        "",
        f"Checks: `deltapack verify --at {CREATED[-1]}` {'passed' if r['verify']['rc'] == 0 else '**FAILED**'} "
        f"({r['verify']['wall']:.1f} s); every published patch applied in place to a copy of its base "
        f"gives new byte for byte: {'yes' if all((b.get('apply') or {}).get('verified') for b in r['bases'] if not b['omitted']) else '**NO**'}.",
        "", "## Preparing releases 1..5 (not the measurement; --jobs " + str(r["prep_jobs"]) + ")", "",
        "| release | bases | wall s | CPU s | peak RSS MiB | patch bytes (base: size) |", "|---:|---:|---:|---:|---:|---|",
        *(f"| {p['release']} | {p['bases']} | {p['wall']:.1f} | {p['cpu']:.1f} | {mib(p['rss_kib'])} | "
          + (", ".join(f"{q['base']}: {q['size']:,}" + (" (omitted)" if q["omitted"] else "") for q in p["patches"]) or "—")
          + " |" for p in r["prep"]),
    ]
    if r["problems"]:
        lines += ["", "## PROBLEMS", "", *(f"- {p}" for p in r["problems"])]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("DELTA_CORPUS", Path.home() / ".cache/delta-corpus")))
    ap.add_argument("--pair", default="synthetic-img", help="corpus pair (default synthetic-img)")
    ap.add_argument("--work", type=Path, help="work directory (default CORPUS/release-build/PAIR)")
    ap.add_argument("--jobs", type=int, help="pass --jobs N to the measured build (default: deltapack's, = cores)")
    ap.add_argument("--prep-jobs", type=int, default=2, help="--jobs for building releases 1..5 (default 2)")
    ap.add_argument("--reuse-base", action="store_true", help="reuse releases 1..5 from an earlier --keep run if they match")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (releases, publish directories)")
    ap.add_argument("--out", type=Path, help="markdown output (default benches/results/release-build-PAIR[-jobsN].md)")
    ap.add_argument("--no-build", action="store_true", help="use target/release binaries as they are")
    args = ap.parse_args()

    pair_dir = args.corpus / "pairs" / args.pair
    if not (pair_dir / "old").exists() or not (pair_dir / "new").exists():
        sys.exit(f"error: no pair {pair_dir}/{{old,new}} (build the corpus with ../shared/corpus/fetch.sh)")
    if lacking := [n for n in ("/usr/bin/time", "openssl", "du", "tar") if not shutil.which(n)]:
        sys.exit(f"error: missing {', '.join(lacking)}; install with: apt-get install -y time openssl")
    out = args.out or ROOT / "benches/results" / (f"release-build-{args.pair}" + (f"-jobs{args.jobs}" if args.jobs else "") + ".md")
    work = (args.work or args.corpus / "release-build" / args.pair).resolve()
    if work.is_relative_to(ROOT):
        sys.exit(f"error: the work directory {work} is inside the repository; choose another --work")
    work.mkdir(parents=True, exist_ok=True)

    build_tools(args.no_build)
    (work / "bin").mkdir(exist_ok=True)
    for name, exe in BIN.items():  # run copies, so a rebuild during the run cannot mix versions
        BIN[name] = Path(shutil.copy2(exe, work / "bin" / name))

    try:
        old, new = (side_file(pair_dir, s, work) for s in ("old", "new"))
        log(f"writing releases 1..{RELEASES} into {work / 'releases'} ...")
        releases, shas, offsets = make_releases(old, new, work / "releases")
        key, key_line = ensure_key(work)
        artifact = args.pair
        stamp = {"pair": args.pair, "releases": shas[:-1], "deltapack": sha256_file(BIN["deltapack"]),
                 "key": key_line, "created": CREATED[:-1]}
        prep, reused = prepare_base(args, work, key, artifact, releases, stamp)

        publish = work / "publish"
        hardlink_copy(work / "publish-1-to-5", publish)
        argv = build_argv(publish, key, RELEASES, artifact, releases[-1], args.jobs)
        log(f"measuring: build release {RELEASES} with {RELEASES - 1} bases ...")
        env = {**os.environ, "DELTAPACK_TIMINGS": "1"}
        res = timed(argv, work / "time.txt", env=env, watch=True)
        (work / "measured-stderr.txt").write_text("".join(f"{t:8.2f} {l}\n" for t, l in res["lines"]))
        if res["rc"] != 0:
            fail(f"the measured build failed (exit {res['rc']})", res)
        log(f"  {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, {res['rss_kib'] / 1024:.0f} MiB peak RSS")
        problems = []
        manifest = tomllib.loads((publish / "manifest.toml").read_text())
        m = SUMMARY_LINE.search(res["stdout"])
        pub = publish_figures(publish, manifest, m and (int(m.group(1)), int(m.group(2))), problems)
        log("checking: deltapack verify and applying every patch ...")
        verify, applies = check_publish(publish, manifest, key_line, releases, releases[-1], work, problems)

        full_size = manifest["artifact"][0]["full"]["size"]
        entries = {pe["base_version"]: pe for a in manifest["artifact"] for pe in a.get("patch", [])}
        bases = []
        for pl in patch_lines(res):
            b = {**pl, "full_size": full_size, "apply": applies.get(pl["base"])}
            pe = entries.get(pl["base"])
            if pl["omitted"] is None and (pe is None or pe["size"] != pl["size"] or pe["method"] != pl["method"]):
                problems.append(f"patch from {pl['base']}: the build printed {pl['method']} {pl['size']} bytes, "
                                f"the manifest has {pe and (pe['method'], pe['size'])}")
            if pe:
                b.update(apply_memory=pe["apply_memory"], path=pe["path"])
            bases.append(b)
        if len(bases) != RELEASES - 1:
            problems.append(f"the build reported {len(bases)} patches, expected {RELEASES - 1}")
        if missing := set(entries) - {b["base"] for b in bases}:
            problems.append(f"manifest patches from {sorted(missing)} were not reported by the build")
        ph, timings = phases(res)
        report = {
            "header": header_info(args, args.pair, (os.path.getsize(old), os.path.getsize(new))),
            "releases": {"sha256": shas, "offsets": offsets, "created": CREATED},
            "prep_jobs": args.prep_jobs, "prep_reused": reused, "prep": prep,
            "measured": {"argv": [a.replace(f"{work}/", "").replace(str(BIN["deltapack"]), "deltapack")
                                  for a in map(str, argv)],
                         "jobs": args.jobs or os.cpu_count(), "wall": res["wall"], "cpu": res["cpu"],
                         "user": res["user"], "sys": res["sys"], "rss_kib": res["rss_kib"],
                         "others_cpu": res["others_cpu"],
                         "phases": ph, "timings": timings, "stderr": res["lines"],
                         "stdout": res["stdout"], "rss_samples_per_second": per_second(res["samples"])},
            "bases": bases, "publish": pub, "verify": verify, "problems": problems,
        }
        md = render(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    finally:
        if not args.keep:
            for p in ("releases", "publish", "publish-1-to-5", "publish-1-to-5.json", "apply-check",
                      "old.tar", "new.tar"):
                q = work / p
                shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)
    print(md)
    for p in problems:
        log(f"PROBLEM: {p}")
    log(f"wrote {out} and {out.with_suffix('.json')}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted")
