#!/usr/bin/env python3
"""Paired rounds of a few commands, for A/B checks between full benchmark runs.

    python3 examples/bench/paired.py --dir /mnt/scratch --rounds 7 \\
        'plain=zipdeploy --url URL --sha256 HEX --dest {D}' \\
        'sync=zipdeploy --url URL --sha256 HEX --dest {D} --sync'

Each round runs every command once, the order rotated by one each round, after a warm-up round. Before
each run everything in --dir is removed and `sync` is called (untimed); `{D}` in a command is `DIR/D`
(zipdeploy's state directory `DIR/.D.zipdeploy` sits beside it and is removed too). The machine is shared:
read the per-round ratios to the first command (same round), not absolute times. Printed per command:
median wall time, the median per-round ratio, and two CPU figures per run: the command's own (user + sys
of it and its children) and the kernel threads' (writeback, the loop device, the journal), which is where
the cost of putting data on disk shows on a machine whose cores the command already keeps busy.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def kernel_threads_cpu():
    """User + sys seconds of all kernel threads (children of kthreadd) so far."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if pid == "2" or fields[1] == "2":
            total += int(fields[11]) + int(fields[12])
    return total / HZ


def children_cpu():
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def clean(base):
    for name in os.listdir(base):
        subprocess.run(["rm", "-rf", os.path.join(base, name)], check=True)
    subprocess.run(["sync"], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="a scratch directory of its own (emptied before every run)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("commands", nargs="+", metavar="LABEL=COMMAND")
    args = ap.parse_args()
    commands = [c.split("=", 1) for c in args.commands]
    os.makedirs(args.dir, exist_ok=True)
    dest = os.path.join(args.dir, "D")
    wall = {label: [] for label, _ in commands}
    own = {label: [] for label, _ in commands}
    kthreads = {label: [] for label, _ in commands}
    print("load", open("/proc/loadavg").read().strip(), flush=True)
    for rnd in range(args.rounds + 1):
        k = rnd % len(commands)
        for label, command in commands[k:] + commands[:k]:
            clean(args.dir)
            c0, k0, t0 = children_cpu(), kernel_threads_cpu(), time.perf_counter()
            p = subprocess.run(command.replace("{D}", dest), shell=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            t1, k1, c1 = time.perf_counter(), kernel_threads_cpu(), children_cpu()
            if p.returncode:
                sys.exit(f"{label} failed: {p.stderr.decode(errors='replace')[-500:]}")
            if rnd:  # round 0 warms up
                wall[label].append(t1 - t0)
                own[label].append(c1 - c0)
                kthreads[label].append(k1 - k0)
        if rnd:
            print(f"round {rnd}: " + "  ".join(f"{label} {wall[label][-1]:.3f}" for label, _ in commands),
                  flush=True)
    clean(args.dir)
    first = commands[0][0]
    for label, _ in commands:
        ratios = [a / b for a, b in zip(wall[label], wall[first])]
        print(f"{label}: wall median {statistics.median(wall[label]):.3f} s, / {first} per round median "
              f"{statistics.median(ratios):.3f} ({' '.join(f'{r:.2f}' for r in ratios)}); CPU of the command "
              f"{statistics.median(own[label]):.2f} s, of kernel threads {statistics.median(kthreads[label]):.2f} s")
    print("load", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
