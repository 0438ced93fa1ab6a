"""pairs.py: a command timed against its baseline, alternated, by hyperfine.

Each run is one hyperfine invocation that times the command once and the
baseline once (the order flips every run, so neither always follows the
other's writeback), each after the same --prepare (rm the outputs, sync, warm
the inputs). hyperfine gives wall, user and system time of the child and all
it waited for; GNU time around the child gives its peak RSS, which
hyperfine 1.15 does not report. Durable wall times on a shared disk swing
by 2-3x from run to run, so a row's figure is the median of per-pair
ratios, shown with its min and max, never a single run.
"""
import json
import os
import shlex
import statistics
import subprocess
import sys


class Side:
    """The runs of one command: wall seconds, CPU seconds (user + system), peak RSS KiB."""

    def __init__(self):
        self.wall, self.cpu, self.rss = [], [], []

    def add(self, wall, cpu, rss):
        self.wall.append(wall)
        self.cpu.append(cpu)
        self.rss.append(rss)


def spread(values):
    """(median, min, max) of a list."""
    return statistics.median(values), min(values), max(values)


def fmt(values, digits=2):
    med, lo, hi = spread(values)
    return f"{med:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


class Pair:
    def __init__(self, cmd, base):
        self.cmd, self.base = cmd, base

    def wall_ratios(self):
        """Baseline wall over command wall, per run: 1.00 is as fast as the baseline, above is faster."""
        return [b / c if c > 0 else 0.0 for c, b in zip(self.cmd.wall, self.base.wall)]

    def cpu_ratios(self):
        """Command CPU over baseline CPU, per run: 1.00 is the same work per byte, above is more."""
        return [c / b if b > 0 else float("inf") for c, b in zip(self.cmd.cpu, self.base.cpu)]

    def as_json(self):
        return {k: vars(getattr(self, k)) for k in ("cmd", "base")}


def _argv_text(argv, rss_file):
    return " ".join(shlex.quote(a) for a in ["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv)


def run_pair(work, name, cmd, base, prepare, runs):
    """Runs argv lists `cmd` and `base` `runs` times alternated, `prepare` (a shell script) before each."""
    prep = os.path.join(work, "prepare.sh")
    with open(prep, "w") as f:
        f.write("set -e\n" + prepare + "\n")
    out = os.path.join(work, "hyperfine.json")
    pair = Pair(Side(), Side())
    sides = {"cmd": (cmd, pair.cmd), "base": (base, pair.base)}
    for i in range(runs):
        order = ["cmd", "base"] if i % 2 == 0 else ["base", "cmd"]
        args = ["hyperfine", "-N", "--runs", "1", "--style", "none", "--export-json", out, "--prepare", "sh " + prep]
        for key in order:
            args += ["-n", key, _argv_text(sides[key][0], os.path.join(work, "rss." + key))]
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            # hyperfine hides the child's output: run the failing side once more to show it
            sys.stderr.write(f"bench: {name}: hyperfine failed: {done.stderr.strip()}\n")
            for key in order:
                again = subprocess.run(sides[key][0], capture_output=True, text=True)
                if again.returncode != 0:
                    sys.stderr.write(f"bench: {shlex.join(sides[key][0])}: exit {again.returncode}\n"
                                     f"{again.stdout}{again.stderr}")
            raise SystemExit(1)
        with open(out) as f:
            results = json.load(f)["results"]
        for r in results:
            with open(os.path.join(work, "rss." + r["command"])) as f:
                rss = int(f.read().split()[-1])
            sides[r["command"]][1].add(r["times"][0], r["user"] + r["system"], rss)
    return pair
