#!/usr/bin/env python3
"""Export/import throughput: `cocoon export` and `cocoon import` of a stopped box against
`tar --zstd --sparse` packing and unpacking the same files (the box's disk chain: the
image base and the box's qcow2 layer), runs interleaved. cocoon does more per byte (it
flattens the qcow2 chain, hashes every member with sha256, verifies before publishing);
tar is the yardstick for "read the files, compress with zstd, write them back".
Usage: bench/export_bench.py [--runs N] [--mb M] [--bin build/bin] [--results bench/RESULTS.md]"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, env=None, **kw):
    t = time.monotonic()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.monotonic() - t


def spread(xs):
    xs = sorted(xs)
    return f"{xs[0]:.2f} / {statistics.median(xs):.2f} / {xs[-1]:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=128, help="MiB of random data the box writes")
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin"))
    ap.add_argument("--results")
    a = ap.parse_args()
    cocoon = os.path.join(os.path.abspath(a.bin), "cocoon")
    work = tempfile.mkdtemp(prefix="cocoon-export-bench-")
    env = dict(os.environ, COCOON_HOME=os.path.join(work, "home"),
               COCOON_SHARE_DIR=os.environ.get("COCOON_SHARE_DIR", os.path.join(REPO, "build", "share", "cocoon")))
    try:
        subprocess.run([cocoon, "create", "--name", "src"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cocoon, "start", "src"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cocoon, "exec", "src", "--", "sh", "-c",
                        f"head -c {a.mb}M /dev/urandom > /root/data && sync"], env=env, check=True)
        subprocess.run([cocoon, "stop", "src"], env=env, check=True, stdout=subprocess.DEVNULL)
        cfg = json.loads(subprocess.run([cocoon, "inspect", "--json", "src"], env=env, check=True,
                                        stdout=subprocess.PIPE).stdout)
        box_dir = os.path.join(env["COCOON_HOME"], "boxes", cfg["id"])
        disk = os.path.join(box_dir, "disk.qcow2")
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "--backing-chain", disk],
                                         check=True, stdout=subprocess.PIPE).stdout)
        files = [i["filename"] for i in info]
        used = sum(os.stat(f).st_blocks * 512 for f in files)
        ex, im, tc, tx = [], [], [], []
        sizes = {}
        for i in range(a.runs):
            arch = os.path.join(work, "box.cocoon")
            ex.append(run([cocoon, "export", "src", arch], env=env))
            sizes["cocoon"] = os.path.getsize(arch)
            home2 = dict(env, COCOON_HOME=os.path.join(work, f"home-{i}"))
            im.append(run([cocoon, "import", arch], env=home2))
            shutil.rmtree(home2["COCOON_HOME"])
            os.unlink(arch)
            tarf = os.path.join(work, "box.tar.zst")
            tc.append(run(["tar", "--zstd", "--sparse", "-cf", tarf, "-P", *files]))
            sizes["tar"] = os.path.getsize(tarf)
            out = os.path.join(work, "untar")
            os.makedirs(out)
            tx.append(run(["tar", "--zstd", "-xf", tarf, "-C", out]))
            shutil.rmtree(out)
            os.unlink(tarf)
        mib = used / (1 << 20)
        rows = [("pack: cocoon export", ex, sizes["cocoon"]), ("pack: tar --zstd --sparse", tc, sizes["tar"]),
                ("unpack: cocoon import", im, None), ("unpack: tar --zstd -x", tx, None)]
        lines = [f"A stopped box of the default image after writing {a.mb} MiB of random data: its disk chain "
                 f"({len(files)} files, {mib:.0f} MiB allocated on the host) packed and unpacked {a.runs} times, "
                 "interleaved. Throughput = allocated MiB / median seconds.", "",
                 "| operation | min / median / max (s) | MiB/s (median) | archive |", "|---|---|---|---|"]
        for name, xs, size in rows:
            lines.append(f"| {name} | {spread(xs)} | {mib / statistics.median(xs):.0f} | "
                         f"{'' if size is None else f'{size / (1 << 20):.0f} MiB'} |")
        lines += ["", f"Ratio cocoon / tar (median time): export {statistics.median(ex) / statistics.median(tc):.2f}x, "
                      f"import {statistics.median(im) / statistics.median(tx):.2f}x.", "",
                  f"Command: `bench/export_bench.py --runs {a.runs} --mb {a.mb}` (build/bin, 2 shared cores)."]
        body = "\n".join(lines)
        print(body)
        if a.results:
            report.replace_section(a.results, "## Export and import vs tar --zstd", body)
    finally:
        subprocess.run([cocoon, "rm", "-f", "src"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
