#!/usr/bin/env python3
"""Stateless builds into an S3 bucket, and one build spread over shards.

    python3 benches/fanout.py [--corpus DIR] [--window BYTES] [--out FILE]

Answers, for a release of 20 artifacts x 4 bases made from the corpus: how long does a
single-job build take against `--plan` + N shards + `--merge` with N = 2 and 4 (run
together as processes on this machine, and projected with one CI runner per shard:
plan + the slowest shard run alone + merge), how many bytes does a stateless build
download (only the bases it needs, against the bucket's size), and how does build time
grow with bases x artifacts (measured at 5x1, 10x2 and 20x4).

Artifacts: artifact j (0..19) is a window of --window bytes (default 512 KiB) at offset
(j // 3 + 1) * window of one of the pairs cryptography-so, esbuild-exe, uv-exe (j mod
3), old and new side alike. Release k of B+1 (k = 1..B+1) of an artifact is
new[:o] + old[o:] with o = floor(len * (k-1) / B), as benches/release_build.py does: every
release differs, each newer one is closer to new. Releases 1..B are published first
(untimed) into a bucket of a fresh s3s-fs on 127.0.0.1 (target/tools/bin/s3s-fs, as
`scripts/test.sh` installs it); release B+1 is then built by each method from a fresh
"runner" directory (empty cache, own TMPDIR), each into its own copy of the bucket
state. `--jobs 2` everywhere (the machine's two cores): a shard is what one 2-core CI
runner does. Every method's published bytes are compared: they must be identical.
"""

import argparse
import json
import resource
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ["cryptography-so", "esbuild-exe", "uv-exe"]
ACCESS, SECRET = "bench", "bench-secret-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(ROOT / "target/tools/bin/s3s-fs"), "--host", "127.0.0.1", "--port",
             str(self.port), "--access-key", ACCESS, "--secret-key", SECRET, str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("s3s-fs did not start")

    def env(self, home):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.port}", AWS_REGION="us-east-1",
                   AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, HOME=str(home))
        return env

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def make_releases(corpus, work, count, bases, window):
    """Files work/r<k>/a<j> for k = 1..bases+1."""
    for j in range(count):
        pair = corpus / "pairs" / PAIRS[j % 3]
        at = (j // 3 + 1) * window
        old = (pair / "old").read_bytes()[at:at + window]
        new = (pair / "new").read_bytes()[at:at + window]
        seen = set()
        for k in range(1, bases + 2):
            o = len(new) * (k - 1) // bases
            data = new[:o] + old[o:]
            if data in seen:
                raise SystemExit(f"artifact {j}: two releases are equal")
            seen.add(data)
            d = work / f"r{k}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"a{j}").write_bytes(data)


def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


CPU = {"last": 0.0}


def deltapack(args, env, cwd):
    """Runs deltapack; returns its JSON and wall seconds (CPU seconds in CPU["last"])."""
    started, cpu0 = time.monotonic(), cpu()
    out = subprocess.run([str(BIN)] + args, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    CPU["last"] = cpu() - cpu0
    if out.returncode != 0:
        raise SystemExit(f"deltapack {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1]), seconds


def build_args(url, work, k, count, bases, extra):
    args = ["build", "--out", url, "--product", "bench", "--version", f"1.{k}",
            "--created", f"2026-11-{10 + k:02d}T10:00:00Z", "--keep", str(bases),
            "--jobs", "2", "--json"]
    for j in range(count):
        args += ["--artifact", f"a{j}={work / f'r{k}' / f'a{j}'}"]
    return args + extra


def runner(base):
    d = Path(tempfile.mkdtemp(prefix="runner-", dir=base))
    (d / "tmp").mkdir()
    return d


def bucket_bytes(root):
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def published(root, bucket):
    """The published files (by key) of one bucket of an s3s-fs root."""
    base = root / bucket
    return {str(p.relative_to(base)): p.read_bytes()
            for p in base.rglob("*") if p.is_file() and not str(p.relative_to(base)).startswith("shards")}


def scenario(corpus, scratch, count, bases, window, methods):
    work = scratch / f"in-{count}x{bases}"
    make_releases(corpus, work, count, bases, window)
    key = scratch / "release.key"
    if not key.exists():
        subprocess.run([str(BIN), "keygen", "--secret-key", str(key), "--public-key",
                        str(scratch / "release.pub")], check=True, capture_output=True)
    pub = json.loads(subprocess.run([str(BIN), "key", "show", "--secret-key", str(key), "--json"],
                                    capture_output=True, text=True, check=True).stdout)["public_key"]
    root = scratch / f"s3-{count}x{bases}"
    (root / "setup").mkdir(parents=True)
    server = Server(root)
    results = {}
    try:
        url = "s3://setup/app"
        for k in range(1, bases + 1):
            r = runner(scratch)
            deltapack(build_args(url, work, k, count, bases, ["--secret-key", str(key)]),
                      server.env(r), r)
        setup_total = bucket_bytes(root / "setup")
        k = bases + 1
        for method in methods:
            bucket = f"m-{method}"
            shutil.copytree(root / "setup", root / bucket)
            url = f"s3://{bucket}/app"
            sign = ["--secret-key", str(key)]
            if method == "single":
                r = runner(scratch)
                report, secs = deltapack(build_args(url, work, k, count, bases, sign), server.env(r), r)
                results[method] = {"wall_s": round(secs, 1), "cpu_s": round(CPU["last"], 1),
                                   "patches": len(report["patches"]),
                                   "downloaded_bytes": report["downloaded_bytes"],
                                   "bucket_bytes_before": setup_total}
                continue
            n = int(method.split("-")[1])
            together = method.endswith("together")
            plan = scratch / f"plan-{bucket}.json"
            r = runner(scratch)
            _, plan_s = deltapack(build_args(url, work, k, count, bases,
                                             ["--plan", str(plan), "--trust", pub]), server.env(r), r)
            shard_args = [build_args(url, work, k, count, bases,
                                     ["--plan", str(plan), "--shard", f"{i}/{n}", "--trust", pub])
                          for i in range(1, n + 1)]
            shard_times, shard_down, shard_cpu = [], [], []
            if together:
                started, cpu0 = time.monotonic(), cpu()
                procs = []
                for a in shard_args:
                    rr = runner(scratch)
                    procs.append(subprocess.Popen([str(BIN)] + a, env=server.env(rr), cwd=rr,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                for p in procs:
                    out, err = p.communicate()
                    if p.returncode != 0:
                        raise SystemExit(f"shard failed: {out}\n{err}")
                    shard_down.append(json.loads(out.splitlines()[-1])["downloaded_bytes"])
                shard_times.append(time.monotonic() - started)
                shard_cpu.append(cpu() - cpu0)
            else:
                for a in shard_args:
                    rr = runner(scratch)
                    rep, secs = deltapack(a, server.env(rr), rr)
                    shard_times.append(secs)
                    shard_cpu.append(CPU["last"])
                    shard_down.append(rep["downloaded_bytes"])
            r = runner(scratch)
            report, merge_s = deltapack(build_args(url, work, k, count, bases,
                                                   sign + ["--plan", str(plan), "--merge"]), server.env(r), r)
            merge_cpu = CPU["last"]
            shards_s = max(shard_times)
            results[method] = {
                "plan_s": round(plan_s, 1), "shard_s": [round(t, 1) for t in shard_times],
                "merge_s": round(merge_s, 1),
                "shard_cpu_s": [round(t, 1) for t in shard_cpu], "merge_cpu_s": round(merge_cpu, 1),
                ("wall_s" if together else "projected_wall_s"): round(plan_s + shards_s + merge_s, 1),
                "shard_downloaded_bytes": shard_down,
                "merge_downloaded_bytes": report["downloaded_bytes"],
            }
        first = published(root, f"m-{methods[0]}")
        for method in methods[1:]:
            if published(root, f"m-{method}") != first:
                raise SystemExit(f"{count}x{bases}: {method} published other bytes than {methods[0]}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path,
                    default=Path(os.environ.get("DELTA_CORPUS", Path.home() / ".cache/delta-corpus")))
    ap.add_argument("--window", type=int, default=512 * 1024)
    ap.add_argument("--out", type=Path, default=ROOT / "benches/results/fanout.json")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="deltapack-fanout-"))
    table = {}
    try:
        for count, bases in [(5, 1), (10, 2)]:
            table[f"{count}x{bases}"] = scenario(args.corpus, scratch, count, bases, args.window, ["single"])
            print(json.dumps({f"{count}x{bases}": table[f"{count}x{bases}"]}), flush=True)
        table["20x4"] = scenario(args.corpus, scratch, 20, 4, args.window,
                                 ["single", "shards-2-together", "shards-4-together",
                                  "shards-2-alone", "shards-4-alone"])
        print(json.dumps({"20x4": table["20x4"]}), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.write_text(json.dumps({"window": args.window, "results": table}, indent=1) + "\n")


BIN = ROOT / "target/release/deltapack"
if os.environ.get("CARGO_TARGET_DIR"):
    BIN = Path(os.environ["CARGO_TARGET_DIR"]) / "release/deltapack"

if __name__ == "__main__":
    main()
