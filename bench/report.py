"""report.py: the markdown tables of one `make bench` run (bench/results/<date>.md), for the README."""
import datetime
import os
import platform
import subprocess

from pairs import fmt, spread

GROWTH_SLACK = 1.25   # linear: CPU seconds per GiB at any size within this of the smallest size's


def machine():
    cores = os.cpu_count()
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) >> 20
    return f"{cores} cores, {mem} GiB RAM, Linux {platform.release()}"


def revision():
    done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def growth_table(suite):
    rows = sorted(suite.growth_rows, key=lambda r: r[0])
    if not rows:
        return [], True
    smallest = spread(rows[0][1].cmd.cpu)[0] / rows[0][0]
    out = ["| size | wall s | CPU s | CPU s per GiB | cp -r + sync wall s | peak RSS MiB | verdict |",
           "|---|---|---|---|---|---|---|"]
    all_ok = True
    for size, p in rows:
        per = spread(p.cmd.cpu)[0] / size
        rss = max(p.cmd.rss) // 1024
        ok = per <= GROWTH_SLACK * smallest and rss <= suite.rss_bar
        all_ok &= ok
        out.append(f"| {size:g} GiB | {fmt(p.cmd.wall)} | {fmt(p.cmd.cpu)} | {per:.2f} | {fmt(p.base.wall)} | "
                   f"{rss} | {'PASS' if ok else 'MISS'} |")
    return out, all_ok


def write(suite, started):
    day = started.strftime("%Y-%m-%d")
    path = os.environ.get("BENCH_OUT") or os.path.join("bench", "results", f"{day}.md")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sizes = " ".join(f"{s:g}" for s in suite.sizes)
    finished = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"# `make bench`, {started.strftime('%Y-%m-%d %H:%M')} UTC",
        "",
        f"`make bench BENCH_SIZES=\"{sizes}\"` at {revision()}, on {machine()}, {suite.runs} runs per pair, "
        f"{(finished - started).total_seconds() / 60:.0f} minutes. A generated bf16 checkpoint "
        "(bench/gen_checkpoint.c: 4 safetensors shards of 4096 x 4096 matrices; largest tensor 32 MiB). "
        "Each command is timed alternated with its baseline on the same bytes (hyperfine, one run of each "
        "per invocation, order flipped every run), each run from a warm page cache after a `sync`. "
        "Figures: median [min, max] of the runs. Wall ratio: the baseline's wall time over the command's, "
        "per pair (above 1 is faster than the baseline); CPU ratio: the command's CPU time (user + system) "
        "over the baseline's, per pair (above 1 is more work per byte). Peak RSS: the largest of the runs.",
        "",
        "| command | size | baseline | wall s | baseline wall s | wall ratio | CPU s | baseline CPU s | "
        "CPU ratio | peak RSS MiB | bars | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in suite.rows:
        p = r["pair"]
        bars = "; ".join(t for t, _ in r["verdicts"])
        lines.append(f"| `{r['label']}` | {r['size']} | `{r['base_label']}` | {fmt(p.cmd.wall)} | "
                     f"{fmt(p.base.wall)} | {fmt(p.wall_ratios())}x | {fmt(p.cmd.cpu)} | {fmt(p.base.cpu)} | "
                     f"{fmt(p.cpu_ratios())}x | {max(p.cmd.rss) // 1024} | {bars} | {r['verdict']} |")
    if suite.size_rows:
        lines += ["", "Bundle sizes (bench/gen_weights.c: bell-curve weights, as trained ones are), "
                  "original size over compressed size:", "",
                  "| checkpoint | bytes | ckpt pack | zstd -19 -T0 | bar | verdict |", "|---|---|---|---|---|---|"]
        for kind, raw, ours, z19, bar, verdict in suite.size_rows:
            lines.append(f"| {kind} | {raw} | {ours:.3f}x | {z19:.3f}x | {bar} | {verdict} |")
    growth, ok = growth_table(suite)
    if growth:
        lines += ["", "Growth, `convert --target ascend-310p` (linear time: CPU s per GiB at every size within "
                  f"{GROWTH_SLACK}x of the smallest's; flat memory: peak RSS <= {suite.rss_bar} MiB at every "
                  f"size): {'PASS' if ok else 'MISS'}", ""] + growth
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    return path, ok
