"""Cost of threat tagging at ingest: the same log ingested with tagging off (security.paranoia 0)
and on (paranoia 1, then 2), interleaved; medians and the overhead, in wall time and in CPU time
(user + system of the ingest process). On a shared machine the CPU time is the steadier of the
two: another process's load stretches the wall time of a run, not the work it does.

Usage: bench_tagging.py BINARY LOG LINES THREADS RUNS WORKDIR
"""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd):
    """Runs `cmd`: its wall time, its CPU time and its output."""
    cpu = cpu_of_children()
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{out.stderr.decode()}")
    return elapsed, cpu_of_children() - cpu, out.stdout.decode()


def main():
    binary, log, lines, threads, runs, work = sys.argv[1:7]
    lines, runs = int(lines), int(runs)
    size = os.path.getsize(log)
    os.makedirs(work, exist_ok=True)
    levels = {"tagging off": 0, "paranoia 1": 1, "paranoia 2": 2}
    configs = {}
    for name, level in levels.items():
        path = os.path.join(work, f"paranoia-{level}.yaml")
        with open(path, "w") as f:
            f.write(f"security:\n  paranoia: {level}\nlogging:\n  file: null\n")
        configs[name] = path
    times = {name: [] for name in levels}
    cpus = {name: [] for name in levels}
    tagged = {}
    for i in range(runs):
        for name, level in levels.items():
            ds = os.path.join(work, f"tag-{level}")
            shutil.rmtree(ds, ignore_errors=True)
            elapsed, cpu, out = run([binary, "--config", configs[name], "ingest", "--json", "--format", "nginx_timed",
                                "--threads", threads, "--dataset", ds, log])
            assert json.loads(out)["rows"] == lines
            times[name].append(elapsed)
            cpus[name].append(cpu)
            if i == 0:
                _, _, q = run([binary, "query", "--dataset", ds, "--format", "json",
                            "SELECT count(*) FILTER (WHERE threats <> 0) AS n FROM logs"])
                tagged[name] = json.loads(q)[0]["n"]
            print(f"  run {i + 1}/{runs} {name:12s} {elapsed:7.2f} s  {size / 1e6 / elapsed:7.1f} MB/s  cpu {cpu:7.2f} s",
                  flush=True)
            shutil.rmtree(ds, ignore_errors=True)
    print()
    print(f"input: {log}: {size / 1e6:.1f} MB, {lines:,} lines; threads {threads}; median of {runs} runs")
    print(f"{'ingest':12s} {'median s':>9s} {'MB/s':>8s} {'tagged rows':>12s} {'vs off':>8s} {'cpu s':>8s} {'cpu vs off':>11s}")
    base = statistics.median(times["tagging off"])
    cpu_base = statistics.median(cpus["tagging off"])
    for name, ts in times.items():
        med = statistics.median(ts)
        cpu = statistics.median(cpus[name])
        print(f"{name:12s} {med:9.2f} {size / 1e6 / med:8.1f} {tagged[name]:12,d} {100 * (med / base - 1):+7.1f}%"
              f" {cpu:8.2f} {100 * (cpu / cpu_base - 1):+10.1f}%")


if __name__ == "__main__":
    main()
