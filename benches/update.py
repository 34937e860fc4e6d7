#!/usr/bin/env python3
"""Time `deltaapply update` over loopback HTTP for each route: patch, chain, full image, fallback.

    python3 benches/update.py [--pair NAME] [--corpus DIR] [--work DIR] [--cut FRACTION]
                              [--repeat N] [--keep] [--reuse] [--out FILE] [--no-build]

Answers: what does a device pay, in bytes downloaded, time and memory, to update an
installed file with the shipped applier, for each route the planner can take?

Three releases of one artifact are made from the pair DIR/pairs/NAME/{old,new} (a
`*-tree` pair's sides are first packed into deterministic tars, as benches/compare.py
does):

    1.0 = old,   1.1 = new[:c] + old[c:]  with  c = floor(len(new) * 4/5),   1.2 = new

which is release 5 of benches/release_build.py's scheme (see its docstring for the
limits): the first four fifths of the changes land in 1.1, the rest in 1.2, so 1.1 -> 1.2
is the small patch of a typical next release (on synthetic-img the very patch that
release_build.py measures from release 5). `--cut 1/2` (any fraction) puts the cut
elsewhere; the half splice does not work on synthetic-img: blocks that new moved across
the cut are in neither half of 1.1, so its patch to 1.2 (7,534,946 bytes) comes out
larger than the direct patch 1.0 -> 1.2 (6,501,670) and no chain can be made to win. They are
published one after another into a fresh publish directory with `deltapack build` (the
release binary), product `bench`, `--created` 2026-11-01/02/03 10:00:00Z, `--valid-days
36500` (so the fixed times never expire) and a secret key kept in the work directory:
every run publishes the same bytes. 1.1 gets a patch from 1.0. 1.2 is built with
`--keep 2`, so 1.1 and 1.0 stay listed with 1.1's patch from 1.0 (`--keep 1` would drop
1.0 and that patch: a kept release keeps only the patches from releases still kept).
A client on 1.0 must take the chain 1.0 -> 1.1 -> 1.2, so the direct patch 1.0 -> 1.2
must not win: if the first build of 1.2 publishes a direct patch no larger than the
chain, 1.2 is built again from 1.1's publish directory with `--max-patch-share` halfway
between the two patches' shares of the full image, which omits the direct patch (as a
publisher would when it is large) and keeps everything else.

The publish directory is served by a small threaded HTTP/1.1 server inside this script,
bound to 127.0.0.1 only, on a free port: GET and HEAD, `Range: bytes=N-` (206 with
Content-Range; If-Range against its ETag), 416 past the end; it counts the body bytes
it sends per request. Each measurement copies the installed file into a fresh
directory and flushes it with sync (not timed; the copy leaves it in the page cache, and
without the sync the kernel writes the copy back while the update runs, which added up
to a second of system time on synthetic-img) and runs the size-optimised
applier (`cargo build --profile applier -p deltaapply-cli`, target/applier/deltaapply, what
ships) under `/usr/bin/time -f '%e %U %S %M'`:

    patch      target = 1.1                      update (a direct patch 1.1 -> 1.2)
    chain      target = 1.0                      update (1.0 -> 1.1 -> 1.2)
    full       target = 1.1 with one byte flipped (matches no release): the full image
    prefer     target = 1.1, --prefer-full       the full image although a patch exists
    fallback   target = 1.1, served from a copy of the publish directory whose 1.1 -> 1.2
               patch has one byte flipped: the patch is downloaded, fails its hash, and
               the update falls back to the full image
    check      target = 1.1, `deltaapply check`  (fetch and verify the manifest, hash the
               target, plan; nothing is written)

each as `deltaapply update --from http://127.0.0.1:PORT/ --key ed25519:... --target
DIR/NAME --json` (+ the flag). For each: the route and fallback reason from the JSON,
`result.downloaded`, the server's count of body bytes sent (all requests, and the
manifest + signature among them), the download as a share of the full image, wall and
CPU seconds, peak RSS (and the RSS sampled every 0.2 s, in the JSON), and the CPU the
rest of the machine used meanwhile (/proc/stat: a busy machine inflates wall time).
Every measurement runs --repeat times (default 3; system time in particular varies by
up to a second between identical runs) and the table shows the run with the median wall
time, and every run's wall time. The
target must then equal new byte for byte (SHA-256), the route must be the expected one
and nothing but the target and its state file may be left in its directory; anything
else is a problem and the exit status is 1. When `result.downloaded` differs from the
bytes of patches and images the server sent, that is listed as an accounting
difference, not a failure. For reference, the same applier also runs `deltaapply apply
--in-place` of the 1.1 -> 1.2 patch and of the full image, from the publish directory, on
a fresh copy of 1.1: the same write, verify and rename as an update, without the manifest,
the download, and the update's own hash of the installed file (to identify it) before the
patch's check of its source hashes it again.

Also recorded: the size of target/applier/deltaapply as built (the profile strips it)
and after `strip --strip-all` of a copy.

The report (markdown table printed and written to --out, default
benches/results/update-<pair>.md, and JSON beside it) notes the commands and the
machine. Large files (releases, publish directories, installed copies: about 6x the
pair's size) go to --work (default DIR/update-bench/<pair>, outside the repository) and
are removed at the end unless --keep; with --keep, a later --reuse run skips building
the releases when the saved stamp (release hashes, deltapack binary, key, settings)
matches.

Python 3.11 stdlib only; needs GNU time (`apt-get install -y time`), openssl (for the
key) and, optionally, strip (binutils). Helpers come from benches/release_build.py and
benches/compare.py. See benches/README.md.
"""

import argparse
import datetime
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import urllib.parse
from email.utils import formatdate
from fractions import Fraction
from pathlib import Path

from compare import last_json
from release_build import (copy_range, ensure_key, hardlink_copy, log, per_second, run, sha256_file,
                           side_file, timed)

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
VERSIONS = ["1.0", "1.1", "1.2"]
CREATED = ["2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z"]
VALID_DAYS = "36500"
BIN = {"deltapack": ROOT / "target/release/deltapack", "deltaapply": ROOT / "target/applier/deltaapply"}
BUILDS = [["cargo", "build", "--release", "-p", "deltapack"],
          ["cargo", "build", "--profile", "applier", "-p", "deltaapply-cli"]]


# --- the HTTP server ---------------------------------------------------------------

class Server(http.server.ThreadingHTTPServer):
    """Serves `root` (changeable between runs) on 127.0.0.1 and records every request."""
    daemon_threads = True

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.requests = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def take_requests(self):
        with self.lock:
            out, self.requests = self.requests, []
        return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the applier's client expects

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.serve(body=True)

    def do_HEAD(self):
        self.serve(body=False)

    def record(self, rel, status, start, sent):
        with self.server.lock:
            self.server.requests.append({"method": self.command, "path": rel, "status": status,
                                         "range": self.headers.get("Range"), "start": start,
                                         "body_bytes": sent})

    def serve(self, body):
        root = self.server.root
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.record(rel, 404, 0, 0)
        st = path.stat()
        size = st.st_size
        etag = f'"{st.st_ino:x}-{size:x}-{st.st_mtime_ns:x}"'
        start, status = 0, 200
        rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        m = rng and re.fullmatch(r"bytes=(\d+)-", rng.strip())
        if m and (if_range is None or if_range == etag):  # other range forms: the whole file
            start, status = int(m.group(1)), 206
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self.record(rel, 416, start, 0)
        length = size - start
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", formatdate(st.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        sent = 0
        try:
            if body:
                with open(path, "rb") as f:
                    out, offset = self.connection.fileno(), start
                    while sent < length:
                        n = os.sendfile(out, f.fileno(), offset, min(length - sent, 8 * MiB))
                        if n == 0:
                            break
                        sent += n
                        offset += n
        except OSError:  # the client went away
            self.close_connection = True
        self.record(rel, status, start, sent)


def start_server(root):
    server = Server(root)
    host, port = server.server_address
    assert host == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}/"


# --- preparing --------------------------------------------------------------------

def build_tools(no_build):
    if not no_build:
        for argv in BUILDS:
            log("$ " + " ".join(argv))
            if subprocess.run(argv, cwd=ROOT).returncode != 0:
                sys.exit("error: cargo build failed")
    for exe in BIN.values():
        if not exe.exists():
            sys.exit(f"error: {exe} missing (run without --no-build)")
    p = run([BIN["deltaapply"], "update", "--help"])
    if p.returncode != 0 or "--prefer-full" not in p.stdout:
        sys.exit("error: this deltaapply has no `update --prefer-full`")


def make_releases(old, new, rdir, fraction):
    """Writes releases 1.0, 1.1, 1.2 (see the module doc); returns paths, SHA-256s, cut."""
    rdir.mkdir(parents=True, exist_ok=True)
    n_old, n_new = os.path.getsize(old), os.path.getsize(new)
    cut = n_new * fraction.numerator // fraction.denominator
    paths = [rdir / f"release-{v}" for v in VERSIONS]
    shutil.copyfile(old, paths[0])
    with open(paths[1], "wb") as f:
        copy_range(new, f, 0, cut)
        copy_range(old, f, min(cut, n_old), n_old)
    shutil.copyfile(new, paths[2])
    shas = [sha256_file(p) for p in paths]
    if len(set(shas)) != 3:
        sys.exit("error: two of the three releases are identical for this pair; pick another pair")
    return paths, shas, cut


def build_argv(publish, key, i, artifact, path, extra=()):
    argv = [BIN["deltapack"], "build", "--out", publish, "--secret-key", key, "--version", VERSIONS[i],
            "--artifact", f"{artifact}={path}", "--created", CREATED[i], "--valid-days", VALID_DAYS,
            *extra, "--json"]
    if i == 0:
        argv += ["--product", "bench"]
    return argv


def build(argv, work, what):
    log(f"building {what} ...")
    res = timed(argv, work / "time.txt")
    info = last_json(res["stdout"])
    if res["rc"] != 0 or not info or not info.get("ok"):
        log(res["stderr"][-3000:])
        sys.exit(f"error: deltapack build of {what} failed (exit {res['rc']})")
    log(f"  {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, {res['rss_kib'] / 1024:.0f} MiB peak RSS")
    return {"what": what, "argv": [str(a) for a in argv], "wall": res["wall"], "cpu": res["cpu"],
            "rss_kib": res["rss_kib"],
            "patches": [{"base": p["base_version"], "size": p["size"], "share": p["share"],
                         "method": p["method"], "omitted": p.get("omitted")} for p in info.get("patches", [])]}


def patch_entries(manifest):
    """{(from, to): entry} for every patch the manifest lists."""
    out = {}
    for a in manifest["artifact"]:
        for p in a.get("patch", []):
            out[(p["base_version"], manifest["version"])] = p
    for rel in manifest.get("previous", []):
        for a in rel["artifact"]:
            for p in a.get("patch", []):
                out[(p["base_version"], rel["version"])] = p
    return out


def publish_releases(args, work, key, artifact, releases, stamp):
    """The publish directory with 1.0, 1.1, 1.2 (see the module doc). Returns its path,
    the builds' figures, and what was decided about the direct patch 1.0 -> 1.2."""
    publish, base, stamp_file = work / "publish", work / "publish-1.1", work / "publish.json"
    if args.reuse and publish.is_dir() and stamp_file.exists():
        saved = json.loads(stamp_file.read_text())
        if saved.get("stamp") == stamp:
            log(f"reusing {publish} (stamp matches)")
            return publish, saved["builds"], saved["chain"], True
        log(f"not reusing {publish}: its stamp differs")
    for d in (publish, base):
        shutil.rmtree(d, ignore_errors=True)
    stamp_file.unlink(missing_ok=True)
    builds = [build(build_argv(base, key, 0, artifact, releases[0]), work, "1.0"),
              build(build_argv(base, key, 1, artifact, releases[1]), work, "1.1 (patch from 1.0)")]
    hardlink_copy(base, publish)  # safe: deltapack build never rewrites a file in place
    builds.append(build(build_argv(publish, key, 2, artifact, releases[2], ["--keep", "2"]), work,
                        "1.2 (--keep 2: patches from 1.1 and 1.0)"))
    manifest = tomllib.loads((publish / "manifest.toml").read_text())
    pe = patch_entries(manifest)
    full = manifest["artifact"][0]["full"]["size"]
    first, second = pe.get(("1.0", "1.1")), pe.get(("1.1", "1.2"))
    if not first or not second:
        sys.exit(f"error: the manifest lacks the patch 1.0 -> 1.1 or 1.1 -> 1.2: {sorted(pe)}")
    chain_size = first["size"] + second["size"]
    direct = pe.get(("1.0", "1.2"))
    chain = {"patch_1.0_1.1": first["size"], "patch_1.1_1.2": second["size"], "chain_bytes": chain_size,
             "direct_1.0_1.2": direct and direct["size"], "full_image": full, "max_patch_share": None}
    if direct and direct["size"] <= chain_size:
        lo, hi = second["size"] / full, direct["size"] / full
        if not lo < hi:
            sys.exit(f"error: the patch 1.1 -> 1.2 ({second['size']} bytes) is not smaller than the direct "
                     f"patch 1.0 -> 1.2 ({direct['size']}); no --max-patch-share keeps one and omits the "
                     "other, so no chain can be measured: try another --cut")
        share = f"{(lo + hi) / 2:.6f}"
        log(f"the direct patch 1.0 -> 1.2 ({direct['size']:,} bytes) beats the chain ({chain_size:,}); "
            f"building 1.2 again with --max-patch-share {share} to omit it")
        chain["max_patch_share"] = share
        hardlink_copy(base, publish)
        builds.append(build(build_argv(publish, key, 2, artifact, releases[2],
                                       ["--keep", "2", "--max-patch-share", share]), work,
                            f"1.2 again (--keep 2 --max-patch-share {share}: the direct patch omitted)"))
        pe = patch_entries(tomllib.loads((publish / "manifest.toml").read_text()))
        if ("1.0", "1.2") in pe or ("1.1", "1.2") not in pe or ("1.0", "1.1") not in pe:
            sys.exit(f"error: the second build of 1.2 did not give the expected patches: {sorted(pe)}")
    shutil.rmtree(base, ignore_errors=True)
    stamp_file.write_text(json.dumps({"stamp": stamp, "builds": builds, "chain": chain}, indent=1) + "\n")
    return publish, builds, chain, False


def corrupt_copy(publish, dst, rel):
    """A hard-linked copy of the publish directory whose file `rel` differs in one byte
    (in the middle; written as a new file, so the original is untouched)."""
    hardlink_copy(publish, dst)
    target = dst / rel
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.unlink()
    target.write_bytes(data)


# --- measuring ---------------------------------------------------------------------

SCENARIOS = [
    # name, installed release (index), what is done to the copy, extra flags, expected route,
    # fallback expected, served directory ("publish" or "corrupt"), command
    ("patch", 1, None, [], "patch", False, "publish", "update"),
    ("chain", 0, None, [], "chain", False, "publish", "update"),
    ("full", 1, "flip", [], "full", False, "publish", "update"),
    ("prefer-full", 1, None, ["--prefer-full"], "full", False, "publish", "update"),
    ("fallback", 1, None, [], "full", True, "corrupt", "update"),
    ("check", 1, None, [], "patch", False, "publish", "check"),
]
INSTALLED_WORDS = {"flip": "1.1 with one byte flipped"}


def flip_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 3)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))


TIMING_KEYS = ("wall", "cpu", "user", "sys", "rss_kib", "others_cpu")


def repeated(n, once):
    """Runs once(i) for i = 1..n; returns the run with the median wall time (the lower
    one for even n), with every run's figures under "runs"."""
    rows = [once(i) for i in range(1, n + 1)]
    pick = dict(sorted(rows, key=lambda r: r["wall"])[(n - 1) // 2])
    pick["runs"] = [{k: r[k] for k in TIMING_KEYS} for r in rows]
    pick["verified"] = all(r["verified"] for r in rows)
    return pick


def measure(sc, rep, server, url, dirs, releases, new_sha, key_line, artifact, work, full_size, problems, notes):
    name, idx, change, flags, want_route, want_fallback, served, command = sc
    rundir = work / "run" / name
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    target = rundir / artifact
    installed_copy(releases[idx], target)
    if change == "flip":
        flip_byte(target)
        os.sync()
    before_sha = sha256_file(target)
    server.root = dirs[served]
    server.take_requests()
    argv = [BIN["deltaapply"], command, "--from", url, "--key", key_line, "--target", target, *flags, "--json"]
    log(f"measuring {name}, run {rep}: deltaapply {command} {' '.join(flags)} (installed: "
        f"{INSTALLED_WORDS.get(change, VERSIONS[idx])}) ...")
    res = timed(argv, work / "time.txt", watch=True)
    reqs = server.take_requests()
    out = last_json(res["stdout"]) or {}
    result = out.get("result") or {}
    meta = sum(r["body_bytes"] for r in reqs if r["path"] in ("manifest.toml", "manifest.toml.sig"))
    served_bytes = sum(r["body_bytes"] for r in reqs)
    after_sha = sha256_file(target)
    leftover = sorted(p.name for p in rundir.iterdir() if p.name not in (artifact, f".{artifact}.deltaapply-state"))
    row = {
        "scenario": name, "command": command, "installed": INSTALLED_WORDS.get(change, VERSIONS[idx]),
        "flags": flags, "argv": [str(a) for a in argv], "served": served,
        "rc": res["rc"], "wall": res["wall"], "cpu": res["cpu"], "user": res["user"], "sys": res["sys"],
        "rss_kib": res["rss_kib"], "others_cpu": res["others_cpu"],
        "rss_samples_per_second": per_second(res["samples"]),
        "route": result.get("route") if command == "update" else (out.get("plan") or {}).get("route"),
        "steps": [f"{s.get('from_version') or '(full)'}->{s['to_version']} {s['path']} {s['file']['size']}"
                  for s in (result.get("steps") if command == "update" else (out.get("plan") or {}).get("steps")) or []],
        "fallback": result.get("fallback"), "downloaded": result.get("downloaded"),
        "plan_download_size": (out.get("plan") or {}).get("download_size"),
        "server_body_bytes": served_bytes, "server_manifest_sig_bytes": meta, "requests": reqs,
        "full_size": full_size, "json": out, "stderr": res["stderr"][-3000:], "leftover": leftover,
    }
    bad = []
    if res["rc"] != 0 or not out.get("ok"):
        bad.append(f"exit {res['rc']}: {(out.get('error') or res['stdout'][-800:] or res['stderr'][-800:]).strip()}")
    if row["route"] != want_route:
        bad.append(f"route {row['route']!r}, expected {want_route!r}")
    if command == "update":
        if bool(row["fallback"]) != want_fallback:
            bad.append(f"fallback {row['fallback']!r}, expected {'one' if want_fallback else 'none'}")
        if after_sha != new_sha:
            bad.append("the target is not new byte for byte afterwards")
        if leftover:
            bad.append(f"left in the target's directory: {leftover}")
        if row["downloaded"] is not None and row["downloaded"] != served_bytes - meta:
            notes.append(f"{name}: `result.downloaded` is {row['downloaded']:,} bytes, but the server sent "
                         f"{served_bytes - meta:,} bytes of patches and images ("
                         + ", ".join(f"{r['path']} {r['body_bytes']:,}" for r in reqs if r["body_bytes"]
                                     and r["path"] not in ("manifest.toml", "manifest.toml.sig")) + ")")
    elif after_sha != before_sha:
        bad.append("check changed the target")
    row["verified"] = not bad
    for b in bad:
        problems.append(f"{name} (run {rep}): {b}")
    log(f"  {row['route']}, {fnum(row['downloaded'])} bytes downloaded, server sent {served_bytes:,}; "
        f"{res['wall']:.2f} s wall, {res['cpu']:.2f} s CPU, {res['rss_kib'] / 1024:.1f} MiB peak RSS"
        + ("" if not bad else "; PROBLEM: " + "; ".join(bad)))
    shutil.rmtree(rundir, ignore_errors=True)
    return row


def installed_copy(src, dst):
    """Copies an installed file into place and flushes it to disk, so that writing back
    the copy's dirty pages is not charged to the command measured next (it cost the
    update up to ~1 s of system time on synthetic-img)."""
    shutil.copyfile(src, dst)
    os.sync()


def reference_apply(name, installed, patch, new_sha, key_line, artifact, work, problems):
    """`deltaapply apply --in-place` of a local patch (or full image) on a fresh copy of
    the installed file, for comparison: the same write, verify and rename as an update."""
    rundir = work / "run" / "apply"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    target = rundir / artifact
    installed_copy(installed, target)
    argv = [BIN["deltaapply"], "apply", "--key", key_line, "--in-place", target, patch, "--json"]
    res = timed(argv, work / "time.txt", watch=True)
    ok = res["rc"] == 0 and sha256_file(target) == new_sha
    if not ok:
        problems.append(f"reference {name}: exit {res['rc']} {res['stdout'][-500:]}")
    shutil.rmtree(rundir, ignore_errors=True)
    log(f"reference {name}: {res['wall']:.2f} s wall, {res['cpu']:.2f} s CPU, {res['rss_kib'] / 1024:.1f} MiB")
    return {"what": name, "argv": [str(a) for a in argv], "wall": res["wall"], "cpu": res["cpu"],
            "user": res["user"], "sys": res["sys"], "rss_kib": res["rss_kib"], "others_cpu": res["others_cpu"],
            "verified": ok, "rss_samples_per_second": per_second(res["samples"])}


def binary_size(exe, work):
    size = exe.stat().st_size
    stripped = None
    if shutil.which("strip"):
        tmp = work / "bin" / "deltaapply.stripped"
        if run(["strip", "--strip-all", "-o", tmp, exe]).returncode == 0:
            stripped = tmp.stat().st_size
            tmp.unlink()
    return {"as_built": size, "strip_all": stripped}


# --- reporting ---------------------------------------------------------------------

def fnum(x, fmt="{:,}"):
    return "—" if x is None else fmt.format(x)


def header_info(args, sizes, cut):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    rev = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip() or "?"
    if run(["git", "status", "--porcelain", "--", ".", ":!benches"], cwd=ROOT).stdout.strip():
        rev += " (uncommitted changes)"
    rustc = run(["rustc", "--version"]).stdout.strip() or "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"nproc {os.cpu_count()}, {cpu}, {mem / 2**20:.1f} GiB RAM, "
                   f"load average {os.getloadavg()[0]:.2f} at start",
        "build": f"git {rev}, {rustc}",
        "pair": args.pair, "old_bytes": sizes[0], "new_bytes": sizes[1], "cut": cut, "cut_fraction": str(args.cut),
        "command": " ".join(["python3", "benches/update.py", *sys.argv[1:]]),
    }


def short(argv, work, url, key_line):
    s = " ".join(argv).replace(str(work) + "/", "$WORK/").replace(url, "http://127.0.0.1:$PORT/")
    return s.replace(key_line, "$KEY").replace(str(BIN["deltaapply"]), "deltaapply")


def walls(x):
    return ", ".join(f"{run['wall']:.2f}" for run in x["runs"])


def render(r):
    h, rows, ch = r["header"], r["rows"], r["chain"]
    full = r["full_size"]
    pct = lambda a: "—" if a is None else f"{100 * a / full:.2f}%"
    busy = max(run["others_cpu"] for x in rows + r["reference"] for run in x["runs"])
    lines = [
        f"# deltaapply update over loopback HTTP: {h['pair']}", "",
        f"- date: {h['date']}",
        f"- machine: {h['machine']}",
        f"- binaries: {h['build']}; deltapack from target/release, deltaapply from target/applier "
        f"(`cargo build --profile applier -p deltaapply-cli`): {r['binary']['as_built']:,} bytes as built"
        + (f", {r['binary']['strip_all']:,} after `strip --strip-all`" if r["binary"]["strip_all"] else ""),
        f"- pair: `{h['pair']}`, old {h['old_bytes']:,} bytes, new {h['new_bytes']:,} bytes; releases "
        f"1.0 = old, 1.1 = new[:{h['cut']:,}] + old[{h['cut']:,}:] (cut at {h['cut_fraction']} of new), 1.2 = new; "
        f"full image of 1.2: {full:,} bytes",
        f"- patches published: 1.0 -> 1.1 {ch['patch_1.0_1.1']:,} bytes, 1.1 -> 1.2 {ch['patch_1.1_1.2']:,} bytes "
        f"(chain {ch['chain_bytes']:,}); direct 1.0 -> 1.2: "
        + (f"{ch['direct_1.0_1.2']:,} bytes, not larger than the chain, so 1.2 was built again with "
           f"`--max-patch-share {ch['max_patch_share']}` to omit it" if ch["max_patch_share"]
           else (f"{ch['direct_1.0_1.2']:,} bytes, larger than the chain" if ch["direct_1.0_1.2"] else "none")),
        f"- command: `{h['command']}`",
        f"- server: this script's threaded HTTP/1.1 server on {r['url']} (127.0.0.1 only; Range `bytes=N-`), "
        "in the script's process, so its CPU is not in the figures below",
        "- each run: `/usr/bin/time -f '%e %U %S %M'` around the command; the installed file was copied into "
        "a fresh directory just before and flushed with sync (not timed; it is in the page cache). "
        f"Every measurement ran {r['repeat']} times; the figures are those of the run with the median wall time",
        "- `check` is the part of an update before anything is downloaded: fetch and verify the manifest, "
        "hash the installed file to identify it, plan",
        "", "| run | installed | route (`result.route`) | fallback | `result.downloaded` | server body bytes "
        "(of which manifest + sig) | patch/image bytes sent / full image | wall s | wall s, all runs "
        "| CPU s (user + sys) | peak RSS MiB | other processes' CPU s | verified |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for x in rows:
        label = f"{x['scenario']}: `{x['command']}{''.join(' ' + f for f in x['flags'])}`"
        fb = "—" if not x["fallback"] else "yes (see below)"
        dl = x["downloaded"] if x["command"] == "update" else None
        route = x["route"] or "—"
        if x["command"] == "check":
            route = f"(plan: {route}, {fnum(x['plan_download_size'])} bytes)"
        lines.append(
            f"| {label} | {x['installed']} | {route} | {fb} | {fnum(dl)} "
            f"| {x['server_body_bytes']:,} ({x['server_manifest_sig_bytes']:,}) "
            f"| {pct(x['server_body_bytes'] - x['server_manifest_sig_bytes']) if x['command'] == 'update' else '—'} "
            f"| {x['wall']:.2f} | {walls(x)} | {x['cpu']:.2f} ({x['user']:.2f} + {x['sys']:.2f}) | {x['rss_kib'] / 1024:.1f} "
            f"| {x['others_cpu']:.1f} "
            f"| {'ok' if x['verified'] else '**FAIL**'} |")
    lines += ["", "Reference: the same applier, `deltaapply apply --in-place` of the local file on a fresh copy "
              "of 1.1 (no manifest, no download, and no hashing of the installed file before the patch's own "
              "check of its source):", "",
              "| apply --in-place | wall s | wall s, all runs | CPU s (user + sys) | peak RSS MiB "
              "| other processes' CPU s | verified |",
              "|---|---:|---:|---:|---:|---:|---|",
              *(f"| {a['what']} | {a['wall']:.2f} | {walls(a)} | {a['cpu']:.2f} ({a['user']:.2f} + {a['sys']:.2f}) "
                f"| {a['rss_kib'] / 1024:.1f} | {a['others_cpu']:.1f} | {'ok' if a['verified'] else '**FAIL**'} |"
                for a in r["reference"])]
    if busy > 1.0:
        lines += ["", f"**Measured under load**: other processes used up to {busy:.1f} CPU s during a run "
                  f"on this {os.cpu_count()}-core machine (builds and tests of other people); wall times "
                  "are inflated accordingly."]
    fb = [x for x in rows if x["fallback"]]
    if fb:
        lines += ["", "Fallback reason (`result.fallback`): " + "; ".join(f"`{x['fallback']}`" for x in fb)]
    lines += ["", "Commands (`$WORK` = " + r["work"] + ", `$KEY` = `" + r["key"] + "`):", ""]
    lines += [f"- {x['scenario']}: `{short(x['argv'], Path(r['work']), r['url'], r['key'])}`" for x in rows]
    lines += [f"- reference {a['what']}: `{short(a['argv'], Path(r['work']), r['url'], r['key'])}`"
              for a in r["reference"]]
    lines += ["", "Releases built with (deltapack, target/release"
              + ("; the publish directory was reused from an earlier --keep run with the same stamp, so these "
                 "are that run's figures" if r["publish_reused"] else "") + "):", ""]
    lines += [f"- {b['what']}: `{' '.join(b['argv']).replace(r['work'] + '/', '$WORK/')}` — {b['wall']:.1f} s wall, "
              f"{b['rss_kib'] / 1024:.0f} MiB peak RSS" for b in r["builds"]]
    if r["notes"]:
        lines += ["", "## Accounting differences (reported, not failures)", "", *(f"- {n}" for n in r["notes"])]
    if r["problems"]:
        lines += ["", "## PROBLEMS", "", *(f"- {p}" for p in r["problems"])]
    return "\n".join(lines) + "\n"


def fraction(text):
    f = Fraction(text)
    if not 0 < f < 1:
        raise argparse.ArgumentTypeError("the cut must be a fraction strictly between 0 and 1, e.g. 4/5")
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("DELTA_CORPUS", Path.home() / ".cache/delta-corpus")))
    ap.add_argument("--pair", default="synthetic-img", help="corpus pair (default synthetic-img)")
    ap.add_argument("--work", type=Path, help="work directory (default CORPUS/update-bench/PAIR)")
    ap.add_argument("--cut", type=fraction, default=Fraction(4, 5),
                    help="1.1 = new[:c] + old[c:] with c = floor(len(new) * FRACTION) (default 4/5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each measurement; the table shows the run with the median wall time (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory's large files")
    ap.add_argument("--reuse", action="store_true", help="reuse the publish directory of an earlier --keep run if it matches")
    ap.add_argument("--out", type=Path, help="markdown output (default benches/results/update-PAIR.md)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries in target/ as they are")
    args = ap.parse_args()

    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    pair_dir = args.corpus / "pairs" / args.pair
    if not (pair_dir / "old").exists() or not (pair_dir / "new").exists():
        sys.exit(f"error: no pair {pair_dir}/{{old,new}} (build the corpus with ../shared/corpus/fetch.sh)")
    if lacking := [n for n in ("/usr/bin/time", "openssl", "tar") if not shutil.which(n)]:
        sys.exit(f"error: missing {', '.join(lacking)}; install with: apt-get install -y time openssl")
    out = args.out or ROOT / "benches/results" / f"update-{args.pair}.md"
    work = (args.work or args.corpus / "update-bench" / args.pair).resolve()
    if work.is_relative_to(ROOT):
        sys.exit(f"error: the work directory {work} is inside the repository; choose another --work")
    work.mkdir(parents=True, exist_ok=True)

    build_tools(args.no_build)
    (work / "bin").mkdir(exist_ok=True)
    for name, exe in BIN.items():  # run copies, so a rebuild during the run cannot mix versions
        BIN[name] = Path(shutil.copy2(exe, work / "bin" / name))

    server = None
    problems, notes = [], []
    try:
        old, new = (side_file(pair_dir, s, work) for s in ("old", "new"))
        log(f"writing releases {', '.join(VERSIONS)} into {work / 'releases'} ...")
        releases, shas, cut = make_releases(old, new, work / "releases", args.cut)
        key, key_line = ensure_key(work)
        artifact = args.pair
        stamp = {"pair": args.pair, "cut": str(args.cut), "releases": shas, "deltapack": sha256_file(BIN["deltapack"]),
                 "key": key_line, "created": CREATED, "valid_days": VALID_DAYS}
        publish, builds, chain, reused = publish_releases(args, work, key, artifact, releases, stamp)
        manifest = tomllib.loads((publish / "manifest.toml").read_text())
        full_size = manifest["artifact"][0]["full"]["size"]
        patch = patch_entries(manifest)[("1.1", "1.2")]
        corrupt = work / "publish-corrupt"
        corrupt_copy(publish, corrupt, patch["path"])
        dirs = {"publish": publish, "corrupt": corrupt}

        server, url = start_server(publish)
        log(f"serving {publish} on {url}")
        new_sha = shas[2]
        rows = [repeated(args.repeat, lambda rep: measure(sc, rep, server, url, dirs, releases, new_sha, key_line,
                                                           artifact, work, full_size, problems, notes))
                for sc in SCENARIOS]
        full_path = publish / manifest["artifact"][0]["full"]["path"]
        reference = [
            repeated(args.repeat, lambda rep: reference_apply("patch 1.1 -> 1.2 on 1.1", releases[1],
                                                              publish / patch["path"], new_sha, key_line,
                                                              artifact, work, problems)),
            repeated(args.repeat, lambda rep: reference_apply("full image of 1.2 on 1.1", releases[1], full_path,
                                                              new_sha, key_line, artifact, work, problems)),
        ]
        notes[:] = list(dict.fromkeys(notes))
        report = {
            "header": header_info(args, (os.path.getsize(old), os.path.getsize(new)), cut),
            "binary": binary_size(BIN["deltaapply"], work),
            "releases": {"versions": VERSIONS, "sha256": shas, "created": CREATED},
            "builds": builds, "publish_reused": reused, "chain": chain, "full_size": full_size,
            "url": url, "work": str(work), "key": key_line, "repeat": args.repeat,
            "rows": rows, "reference": reference, "problems": problems, "notes": notes,
        }
        md = render(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    finally:
        if server:
            server.shutdown()
            server.server_close()
        if not args.keep:
            for p in ("releases", "publish", "publish-1.1", "publish.json", "publish-corrupt", "run",
                      "old.tar", "new.tar"):
                q = work / p
                shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)
        else:
            shutil.rmtree(work / "publish-corrupt", ignore_errors=True)
    print(md)
    for n in notes:
        log(f"NOTE: {n}")
    for p in problems:
        log(f"PROBLEM: {p}")
    log(f"wrote {out} and {out.with_suffix('.json')}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted")
