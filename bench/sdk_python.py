#!/usr/bin/python3
"""Python SDK benchmark (issue 13): what the SDK adds to an exec of `true`.

On one running box, in rounds whose turns are interleaved (the order rotates each
round) so the shared machine's noise hits every variant alike:
  capi         the C API on one open handle (examples/exec_many latency: cocoon_box_run,
               no process start-up in the timed part);
  sdk          cocoon.Box.exec(["true"]) through the embedded transport (libcocoon via
               ctypes) on one open Box, in this process;
  rest-raw     POST /v1/boxes/{id}/run {"command":"true"} with a bare http.client on a
               kept-alive unix-socket connection to `cocoon serve`;
  sdk-remote   cocoon.Box.exec(["true"]) through the remote transport to the same server;
  ctypes       cocoon_box_run called through ctypes from this process with the minimal
               options exec_many uses (no SDK code in the timed part): sdk / ctypes is
               what the SDK's own code costs, ctypes / capi what a Python process costs.
Goal: sdk / capi <= 1.1 (medians); sdk-remote / rest-raw is reported beside it.

Usage: bench/sdk_python.py [--build build] [--rounds 15] [--per-round 20] [--results bench/RESULTS.md]
--results replaces the "Python SDK" section of that file.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
sys.path.insert(0, os.path.join(REPO, "sdk", "python"))

from serve_bench import UnixHTTP, pct  # noqa: E402 (after the path is set)

TITLE = "## Python SDK (exec `true`: SDK vs C API, remote SDK vs raw REST)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--results")
    args = ap.parse_args()
    build = os.path.abspath(os.path.join(REPO, args.build))
    os.environ["COCOON_LIB"] = os.path.join(build, "lib", "libcocoon.so")
    import cocoon

    home = tempfile.mkdtemp(prefix="cocoon-sdk-bench.")
    os.chmod(home, 0o700)
    env = dict(os.environ, COCOON_HOME=home)
    sock = os.path.join(home, "cocoon.sock")
    ex_dir = tempfile.mkdtemp(prefix="cocoon-exmany.")
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "examples"), f"BUILD={build}", f"OUT={ex_dir}"],
                   check=True, capture_output=True)
    cli = os.path.join(build, "bin", "cocoon")
    server = subprocess.Popen([cli, "serve", "--socket", sock, "--log-file", "none"], env=env,
                              stderr=subprocess.DEVNULL)
    load0 = os.getloadavg()[0]
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        subprocess.run([cli, "create", "--name", "bench", "--memory", "512"], env=env, check=True,
                       capture_output=True)
        subprocess.run([cli, "start", "bench"], env=env, check=True, capture_output=True)
        emb = cocoon.Box.get("bench", client=cocoon.Client(home=home))
        rem = cocoon.Box.get("bench", client=cocoon.Client(socket=sock))
        conn = UnixHTTP(sock)
        body = json.dumps({"command": "true"}).encode()

        def capi():
            r = subprocess.run([os.path.join(ex_dir, "exec_many"), "bench", "latency", str(args.per_round)],
                               env=env, check=True, capture_output=True)
            return json.loads(r.stdout.decode())["samples_ms"]

        def sdk_loop(box):
            def run():
                out = []
                for _ in range(args.per_round):
                    t = time.perf_counter()
                    r = box.exec(["true"])
                    out.append((time.perf_counter() - t) * 1e3)
                    assert r.exit_code == 0
                return out
            return run

        import ctypes
        from cocoon import _capi as C
        lib = emb._h.lib
        raw_opts = C.init_struct(C.ExecOptions, lib.exec_options_init)
        raw_argv = C.cstr_array(["true"])
        raw_opts.argv = raw_argv

        def ctypes_raw():
            out = []
            for _ in range(args.per_round):
                st, err = C.ExitStatus(), C.Error()
                t = time.perf_counter()
                rc = lib.box_run(emb._h.ptr, ctypes.byref(raw_opts), ctypes.byref(st), ctypes.byref(err))
                out.append((time.perf_counter() - t) * 1e3)
                assert rc == 0 and st.exit_code == 0, err.message
            return out

        def rest_raw():
            out = []
            for _ in range(args.per_round):
                t = time.perf_counter()
                conn.request("POST", "/v1/boxes/bench/run", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                d = json.loads(resp.read())
                out.append((time.perf_counter() - t) * 1e3)
                assert resp.status == 200 and d["exit_code"] == 0, d
            return out

        variants = {"capi": capi, "sdk": sdk_loop(emb), "rest-raw": rest_raw, "sdk-remote": sdk_loop(rem),
                    "ctypes": ctypes_raw}
        names = list(variants)
        for fn in variants.values():  # warm every path once
            fn()
        samples = {k: [] for k in names}
        rounds = {k: [] for k in names}
        for i in range(args.rounds):
            order = names[i % len(names):] + names[:i % len(names)]
            for k in order:
                got = variants[k]()
                samples[k] += got
                rounds[k].append(statistics.median(got))
        emb.close()
        rem.close()
        conn.close()
    finally:
        server.terminate()
        server.wait()
        subprocess.run([cli, "rm", "-f", "bench"], env=env, capture_output=True)
    load1 = os.getloadavg()[0]

    def ratio(a, b):
        per_round = [x / y for x, y in zip(rounds[a], rounds[b])]
        return (statistics.median(samples[a]) / statistics.median(samples[b]),
                pct(samples[a], 0.25) / pct(samples[b], 0.25), min(per_round), max(per_round),
                statistics.median(per_round))

    def row(k, what):
        s = samples[k]
        return f"| {k} | {what} | {statistics.median(s):.2f} ({pct(s, .25):.2f}–{pct(s, .75):.2f}) |"

    r1, r2 = ratio("sdk", "capi"), ratio("sdk-remote", "rest-raw")
    r3, r4 = ratio("sdk", "ctypes"), ratio("ctypes", "capi")
    n = args.rounds * args.per_round
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join([
        f"{args.rounds} rounds of {args.per_round} execs of each variant, their turns interleaved (the order rotates "
        f"each round); medians and quartiles of all {n} execs. One box (default image, 1 vCPU, 512 MiB).",
        "",
        "| variant | what | exec `true`: median (p25–p75), ms |",
        "|---|---|---|",
        row("capi", "cocoon_box_run on one open handle (examples/exec_many latency)"),
        row("sdk", "`Box.exec([\"true\"])`, embedded transport (ctypes over libcocoon.so)"),
        row("rest-raw", "POST /run with a bare http.client, kept-alive unix socket"),
        row("sdk-remote", "`Box.exec([\"true\"])`, remote transport (same server)"),
        row("ctypes", "cocoon_box_run through ctypes from the same Python process, exec_many's options"),
        "",
        "| ratio | medians | p25s | per round: median (min–max) | goal |",
        "|---|---|---|---|---|",
        f"| sdk / capi | **{r1[0]:.2f}** | {r1[1]:.2f} | {r1[4]:.2f} ({r1[2]:.2f}–{r1[3]:.2f}) | ≤ 1.1 |",
        f"| sdk-remote / rest-raw | **{r2[0]:.2f}** | {r2[1]:.2f} | {r2[4]:.2f} ({r2[2]:.2f}–{r2[3]:.2f}) | — |",
        f"| sdk / ctypes (the SDK's code) | {r3[0]:.2f} | {r3[1]:.2f} | {r3[4]:.2f} ({r3[2]:.2f}–{r3[3]:.2f}) | — |",
        f"| ctypes / capi (a Python process) | {r4[0]:.2f} | {r4[1]:.2f} | {r4[4]:.2f} ({r4[2]:.2f}–{r4[3]:.2f}) | — |",
        "",
        f"Command: `bench/sdk_python.py --build {args.build} --rounds {args.rounds} --per-round {args.per_round} "
        f"--results bench/RESULTS.md`. Date: {when}; load average {load0:.2f} at the start, {load1:.2f} at the end "
        "(2 shared cores, qemu backend under TCG: absolute numbers are noisy, the ratios less so).",
    ])
    print(TITLE + "\n\n" + text)
    if args.results:
        from report import replace_section
        replace_section(args.results, TITLE, text)


if __name__ == "__main__":
    main()
