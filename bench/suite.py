"""suite.py: what `make bench` measures, against which baseline, and the bar each row must meet.

    python3 bench/suite.py BUILD_DIR

Environment:
  BENCH_SIZES    checkpoint sizes in GiB, space-separated (default "2 8"; "1" for a quick run;
                 fractions such as 0.25 work for trying the harness)
  GROWTH_SIZES   sizes of the growth table (default "1 2 4 8"; only those up to the largest of
                 BENCH_SIZES run, the others are left out)
  BENCH_DIR      where the data is generated (default $TMPDIR or /var/tmp, then ckpt-bench);
                 needs about 3.5x the largest size free; removed at the end
  RUNS           runs of each pair (default 5, at least 5)
  BENCH_JOBS     --jobs for ckpt (default: ckpt's own, one per core)
  BENCH_OUT      the markdown file (default bench/results/<UTC date>.md)
  BENCH_ONLY     some of the rows, by group: convert verify bin inspect bundle growth (default all)

Every row pairs a ckpt command with a baseline on the same bytes (pairs.py: alternated, from a
warm page cache after a sync): `cp -r SRC COPY && sync` for commands that write (convert fsyncs
what it writes), `cat FILES > /dev/null` for commands that only read.
"""
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pairs import fmt, run_pair, spread  # noqa: E402

MIB = 1 << 20
LARGEST = 4096 * 4096 * 2   # gen_checkpoint's, gen_torch's and gen_weights's matrices
RSS_BAR_MIB = (LARGEST >> 20) + 64

# the bars of issues 19 and 20: (what, bound); wall ratios are baseline / command (>=),
# CPU ratios command / baseline (<=), rss peak MiB (<=), seconds the command's median wall (<)
WRITER = [("wall", 0.9), ("cpu", 1.2), ("rss", RSS_BAR_MIB)]
BARS = {
    "convert": WRITER,
    "bin": [("wall", 0.8), ("rss", RSS_BAR_MIB)],
    "verify": [("wall", 0.9), ("cpu", 1.5), ("rss", RSS_BAR_MIB)],
    "against": [("wall", 0.6), ("rss", RSS_BAR_MIB)],
    "inspect": [("seconds", 1.0)],
    "pack": [("wall", 1.0), ("rss", RSS_BAR_MIB)],
    "from_bundle": [("wall", 0.8), ("rss", RSS_BAR_MIB)],
    "unpack": [("wall", 0.9), ("rss", RSS_BAR_MIB)],
}
SIZE_BARS = {"bf16": 1.40, "f32": 1.15, "widened": 1.9}   # and bf16 at least 10% smaller than zstd -19


def sh(*args, **kw):
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL, **kw)


class Suite:
    def __init__(self, build):
        self.ckpt = os.path.join(build, "ckpt")
        self.gen = lambda name: os.path.join(build, "bench", name)
        self.sizes = [float(s) for s in os.environ.get("BENCH_SIZES", "2 8").split()]
        top = max(self.sizes)
        self.growth = sorted(set([float(s) for s in os.environ.get("GROWTH_SIZES", "1 2 4 8").split()
                                  if float(s) <= top] + self.sizes))
        self.runs = int(os.environ.get("RUNS", "5"))
        if self.runs < 5:
            raise SystemExit("bench: RUNS must be at least 5")
        jobs = os.environ.get("BENCH_JOBS")
        self.jobs = ["--jobs", jobs] if jobs else []
        base = os.environ.get("BENCH_DIR") or os.path.join(os.environ.get("TMPDIR", "/var/tmp"), "ckpt-bench")
        self.dir = base
        self.rss_bar = RSS_BAR_MIB
        groups = {"convert", "verify", "bin", "inspect", "bundle", "growth"}
        only = set(os.environ.get("BENCH_ONLY", "").replace(",", " ").split()) or groups
        if only - groups:
            raise SystemExit(f"bench: BENCH_ONLY: no group {' '.join(sorted(only - groups))} "
                             f"(groups: {' '.join(sorted(groups))})")
        self.want = only.__contains__
        self.rows, self.growth_rows, self.size_rows, self.raw = [], [], [], []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def check_space(self):
        os.makedirs(self.dir, exist_ok=True)
        need = int(3.5 * max(self.sizes) * 1024 + 1024) * MIB
        free = shutil.disk_usage(self.dir).free
        if free < need:
            raise SystemExit(f"bench: {self.dir} has {free >> 30} GiB free, needs {need >> 30} GiB "
                             "(set BENCH_DIR to a folder on a larger disk)")
        fs = subprocess.run(["stat", "-f", "-c", "%T", self.dir], capture_output=True, text=True).stdout.strip()
        if fs == "tmpfs":
            raise SystemExit(f"bench: {self.dir} is on tmpfs: its writes never reach a disk, so no sync "
                             "baseline means anything (set BENCH_DIR)")

    # ---- one row ----
    def pair(self, kind, label, size, cmd, base, prepare, base_label):
        print(f"-- {label} ({size}) ...", flush=True)
        p = run_pair(self.dir, label, cmd, base, prepare, self.runs)
        row = {"kind": kind, "label": label, "size": size, "base_label": base_label, "pair": p}
        row["verdicts"] = [self.judge(p, what, bound) for what, bound in BARS[kind]]
        row["verdict"] = "PASS" if all(v[1] for v in row["verdicts"]) else "MISS"
        self.rows.append(row)
        self.raw.append({"label": label, "size": size, "base": base_label, **p.as_json()})
        print(self.line(row), flush=True)
        return row

    @staticmethod
    def judge(p, what, bound):
        if what == "wall":
            v = spread(p.wall_ratios())[0]
            return (f"wall >= {bound}x ({v:.2f}x)", v >= bound)
        if what == "cpu":
            v = spread(p.cpu_ratios())[0]
            return (f"CPU <= {bound}x ({v:.2f}x)", v <= bound)
        if what == "rss":
            v = max(p.cmd.rss) / 1024
            return (f"RSS <= {bound} MiB ({v:.0f})", v <= bound)
        v = spread(p.cmd.wall)[0]
        return (f"< {bound} s ({v:.2f} s)", v < bound)

    @staticmethod
    def line(row):
        p = row["pair"]
        bars = "; ".join(f"{t} {'ok' if ok else 'MISSED'}" for t, ok in row["verdicts"])
        return (f"   {row['verdict']}  wall {fmt(p.cmd.wall)} s vs {fmt(p.base.wall)} s, "
                f"ratio {fmt(p.wall_ratios())}x; CPU {fmt(p.cmd.cpu)} s vs {fmt(p.base.cpu)} s, "
                f"ratio {fmt(p.cpu_ratios())}x; peak RSS {max(p.cmd.rss) // 1024} MiB -- {bars}")

    # ---- the pieces of a run ----
    def cp_base(self, src):
        return ["sh", "-c", f"cp -r {src} {self.path('copy')} && sync"], "cp -r + sync"

    def writer(self, kind, label, size, src, args, outs=("out",)):
        base, base_label = self.cp_base(src)
        rm = " ".join(self.path(o) for o in outs + ("copy",))
        prepare = f"rm -rf {rm}; sync; cat {src}/* > /dev/null"
        return self.pair(kind, label, size, args, base, prepare, base_label)

    def convert_rows(self, size):
        mib = int(size * 1024)
        label = f"{size:g} GiB"
        src = self.path("src")
        rows = [("convert --target ascend-310p", ["--target", "ascend-310p"]),
                ("convert --target ascend-910b", ["--target", "ascend-910b"]),
                ("convert --target nd", ["--target", "nd"]),
                ("convert --target ascend-910b --quant w8a8-dynamic",
                 ["--target", "ascend-910b", "--quant", "w8a8-dynamic"]),
                ("convert --target ascend-310p --nz all (device image)", ["--target", "ascend-310p", "--nz", "all"])]
        if not self.want("convert"):
            rows = rows[:1] if self.want("growth") else []
        if rows or self.want("verify"):
            sh(self.gen("gen_checkpoint"), src, str(mib), "4")
        for name, extra in rows:
            row = self.writer("convert", name, label, src,
                              [self.ckpt, "convert", src, self.path("out"), *extra, "--quiet", *self.jobs])
            if name.endswith("ascend-310p"):
                self.growth_rows.append((size, row["pair"]))
        if self.want("verify"):
            out = self.path("out")
            sh(self.ckpt, "convert", src, out, "--target", "ascend-310p", "--quiet", *self.jobs)
            sh("sync")
            self.pair("verify", "verify", label, [self.ckpt, "verify", out, *self.jobs],
                      ["sh", "-c", f"cat {out}/* > /dev/null"], f"sync; cat {out}/* > /dev/null", "cat > /dev/null")
            base, base_label = self.cp_base(src)
            self.pair("against", "verify --against", label, [self.ckpt, "verify", out, "--against", src, *self.jobs],
                      base, f"rm -rf {self.path('copy')}; sync; cat {out}/* {src}/* > /dev/null", base_label)
            shutil.rmtree(out)
        shutil.rmtree(src, ignore_errors=True)
        if self.want("bin"):
            binsrc = self.path("bin")
            sh(self.gen("gen_torch"), "bin", binsrc, str(mib), "4")
            self.writer("bin", "convert of torch.save .bin shards --target ascend-310p", label, binsrc,
                        [self.ckpt, "convert", binsrc, self.path("out"), "--target", "ascend-310p", "--quiet",
                         *self.jobs])
            shutil.rmtree(binsrc)

    def growth_only(self, size):
        src = self.path("src")
        sh(self.gen("gen_checkpoint"), src, str(int(size * 1024)), "4")
        row = self.writer("convert", "convert --target ascend-310p", f"{size:g} GiB", src,
                          [self.ckpt, "convert", src, self.path("out"), "--target", "ascend-310p", "--quiet",
                           *self.jobs])
        self.growth_rows.append((size, row["pair"]))
        shutil.rmtree(src)

    def inspect_row(self):
        # 1,000 shards of 4 matrices of 128 x 128 (and their norm vectors): the cost is per file
        many = self.path("many")
        sh(self.gen("gen_checkpoint"), many, "125", "1000", "128", "128")
        self.pair("inspect", "inspect of a 1,000-shard folder", "1000 files",
                  [self.ckpt, "inspect", many], ["sh", "-c", f"cat {many}/* > /dev/null"],
                  f"cat {many}/* > /dev/null", "cat > /dev/null")
        shutil.rmtree(many)

    def bundle_rows(self, size):
        label = f"{size:g} GiB"
        ratio_mib = os.environ.get("RATIO_MIB", "64")
        for kind in ("bf16", "f32", "widened"):
            d = self.path(kind)
            sh(self.gen("gen_weights"), d, ratio_mib, "2", kind)
            files = sorted(os.path.join(d, f) for f in os.listdir(d))
            raw = sum(os.path.getsize(f) for f in files)
            sh(self.ckpt, "pack", d, d + ".ckb", "--quiet", *self.jobs)
            packed = os.path.getsize(d + ".ckb")
            z19 = len(subprocess.run(["zstd", "-19", "-T0", "-q", "-c", *files], check=True,
                                     capture_output=True).stdout)
            ok = raw / packed >= SIZE_BARS[kind] and (kind != "bf16" or packed <= 0.9 * z19)
            bar = f">= {SIZE_BARS[kind]}x" + (", >= 10% under zstd -19" if kind == "bf16" else "")
            self.size_rows.append((kind, raw, raw / packed, raw / z19, bar, "PASS" if ok else "MISS"))
            print(f"-- bundle size {kind}: {raw / packed:.3f}x (zstd -19 {raw / z19:.3f}x) {bar}: "
                  f"{'PASS' if ok else 'MISS'}", flush=True)
            shutil.rmtree(d)
            os.remove(d + ".ckb")
        src, bundle = self.path("wsrc"), self.path("wsrc.ckb")
        sh(self.gen("gen_weights"), src, str(int(size * 1024)), "4", "bf16")
        sh(self.ckpt, "pack", src, bundle, "--quiet", *self.jobs)
        warm = f"sync; cat {src}/* {bundle} > /dev/null"
        z = self.path("z.zst")
        self.pair("pack", "pack", label, [self.ckpt, "pack", src, self.path("p.ckb"), "--quiet", *self.jobs],
                  ["sh", "-c", f"zstd -1 -T0 -q -c {src}/* > {z} && sync"],
                  f"rm -rf {self.path('p.ckb')}* {z}; {warm}", "zstd -1 -T0 + sync")
        target = ["--target", "ascend-910b", "--quiet", *self.jobs]
        self.pair("from_bundle", "convert BUNDLE --target ascend-910b", label,
                  [self.ckpt, "convert", bundle, self.path("cb"), *target],
                  [self.ckpt, "convert", src, self.path("cf"), *target],
                  f"rm -rf {self.path('cb')} {self.path('cf')}; {warm}", "convert of the folder")
        self.pair("unpack", "unpack", label, [self.ckpt, "unpack", bundle, self.path("un"), "--quiet", *self.jobs],
                  self.cp_base(src)[0], f"rm -rf {self.path('un')} {self.path('copy')}; {warm}", "cp -r + sync")
        shutil.rmtree(src)
        os.remove(bundle)

    def run(self):
        self.check_space()
        started = datetime.datetime.now(datetime.timezone.utc)
        try:
            first = True
            for size in self.sizes:
                print(f"== {size:g} GiB", flush=True)
                self.convert_rows(size)
                if first and self.want("inspect"):
                    self.inspect_row()
                if first and self.want("bundle"):
                    self.bundle_rows(size)
                first = False
            for size in self.growth:
                if size not in self.sizes and self.want("growth"):
                    print(f"== growth: {size:g} GiB", flush=True)
                    self.growth_only(size)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return started


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: suite.py BUILD_DIR")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the cleanup in Suite.run
    suite = Suite(sys.argv[1])
    started = suite.run()
    import report
    path, growth_ok = report.write(suite, started)
    print(f"\nbench: {path} (raw runs in {os.path.join(sys.argv[1], 'bench-runs.json')})")
    with open(os.path.join(sys.argv[1], "bench-runs.json"), "w") as f:
        json.dump(suite.raw, f, indent=1)
    verdicts = [r["verdict"] for r in suite.rows] + [r[5] for r in suite.size_rows]
    if suite.growth_rows:
        verdicts.append("PASS" if growth_ok else "MISS")
    print(f"bench: {verdicts.count('PASS')} rows PASS, {verdicts.count('MISS')} MISS")


if __name__ == "__main__":
    main()
