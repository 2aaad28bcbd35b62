"""benchmark.py's sections on the time to a good model (issue 21): whole commands, bf16, parallel jobs, step parts.

fast      `python -m mnist_runner experiment=mnist_fast seed=S` (start-up to exit, plots on) against
          `python benchmarks/bare_fast.py --seed S` (the same recipe as a bare PyTorch loop), both whole
          processes, seeds 0..--fast-seeds-1 interleaved: wall seconds and test accuracy per seed.
bf16      Each of --bf16-runs with trainer.amp=true and false, seeds 0..--bf16-seeds-1 interleaved (plots
          off): the median epoch seconds and the final test accuracy of every run.
parallel  A 4-job sweep (`-m seed=0,1,2,3`) of each of --parallel-runs, one job after another with every
          core (the basic launcher) against jobs side by side with one thread each (joblib, n_jobs =
          the cores): wall seconds of the whole command, interleaved.
steps     One training step of LeNet-5 (the default run) and of the fast preset, as the runner builds it
          (mnist_runner.run.build), timed part by part (data, forward with the loss, backward, optimizer
          with its schedule) over --steps steps, against the floor the CPU's peak gives for its FLOPs;
          variants: 1 thread, NCHW layout, bf16 on or off, and torch.compile into an empty cache (a
          machine's first compile) and with the cache that filled (every later one): its first steps' cost
          against what it gains per step, and how many steps repay it.

Each section writes its own block of BENCHMARKS.md (<!-- benchmark:NAME:begin --> ... end), with the
time, the machine, its load and the command, so that sections measured at different times say so.
"""

import os
import statistics
import sys
import time
from pathlib import Path

from mnist_runner import cpu

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("fast", "bf16", "parallel", "steps")


def add_arguments(p) -> None:
    p.add_argument("--fast-seeds", type=int, default=5, help="fast: seeds of the preset and of the bare loop")
    p.add_argument(
        "--bf16-runs",
        default="model=lenet_full,experiment=mnist_fast,experiment=cnn3_fashion",
        help="bf16: comma-separated runs (space-separated overrides each) timed with and without bf16",
    )
    p.add_argument("--bf16-seeds", type=int, default=3, help="bf16: seeds of each run")
    p.add_argument(
        "--parallel-runs",
        default="model=lenet_full trainer.epochs=2,experiment=mnist_fast",
        help="parallel: comma-separated runs (space-separated overrides each) swept over 4 seeds",
    )
    p.add_argument("--step-variants", default="", help=argparse_help_variants())


def argparse_help_variants() -> str:
    return "steps: comma-separated variant names (default: all): " + ", ".join(VARIANTS)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def runner(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "mnist_runner", *overrides]


def run_summary(folder: Path) -> dict:
    from mnist_runner.run_folder import RunFolder

    summary = RunFolder(folder).summary()
    if summary["status"] != "completed":
        raise RuntimeError(f"{folder}: the run ended {summary['status']}: {summary.get('error')}")
    return summary


def epoch_seconds(folder: Path) -> list[float]:
    from mnist_runner.run_folder import RunFolder

    return [float(row["epoch_seconds"]) for row in RunFolder(folder).metrics()]


# --- fast -------------------------------------------------------------------------------------


def fast(args, work: Path, run_process) -> dict:
    """Per seed: wall seconds and accuracy of the whole preset command and of the bare loop."""
    data = str(Path(args.data_root).resolve())
    rows = []
    for seed in range(args.fast_seeds):
        bare_cmd = [sys.executable, str(ROOT / "benchmarks" / "bare_fast.py"), f"--seed={seed}", f"--data-root={data}"]
        bare_wall, out = run_process(bare_cmd, work, ROOT, env=cpu.SETTINGS)  # the runner's OpenMP setting
        line = next(line for line in out.splitlines() if "test accuracy" in line)
        bare_acc, bare_loop = float(line.split()[4]), float(line.split()[6])
        folder = work / f"fast_{seed}"
        runner_wall = run_process(
            runner("experiment=mnist_fast", f"seed={seed}", f"dataset.root={data}", f"hydra.run.dir={folder}"),
            work,
            ROOT,
        )[0]
        summary = run_summary(folder)
        rows.append(
            {
                "seed": seed,
                "bare_s": bare_wall,
                "bare_loop_s": bare_loop,
                "bare_acc": bare_acc,
                "runner_s": runner_wall,
                "runner_epoch_s": epoch_seconds(folder)[0],
                "runner_acc": summary["final"]["test_acc"],
                "threads": summary["speed"]["threads"],
                "bf16": summary["speed"].get("bf16"),
            }
        )
        r = rows[-1]
        print(f"fast seed {seed}: bare {bare_wall:.2f} s {bare_acc:.4f}, runner {runner_wall:.2f} s "
              f"{r['runner_acc']:.4f}", flush=True)  # fmt: skip
    return {"rows": rows}


def fast_lines(result: dict) -> tuple[list[str], list[str]]:
    rows = result["rows"]
    lines = [
        f"**The fast preset**: `python -m mnist_runner experiment=mnist_fast seed=S` (plots on, "
        f"{rows[0]['threads']} threads, bf16 on {rows[0]['bf16']}) against the same recipe as a bare loop, "
        "`python benchmarks/bare_fast.py --seed S` (with the runner's OpenMP setting, "
        f"{' '.join(f'{k}={v}' for k, v in cpu.SETTINGS.items())}); both are whole processes, timed from start "
        "to exit (the bare loop's own training and test pass in brackets; the runner's epoch with its test pass). "
        "The ratio is the median of the seeds' ratios.",
        "",
        "| seed | bare loop: s (loop) | test acc | runner: s (epoch) | test acc | runner / bare |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['bare_s']:.2f} ({r['bare_loop_s']:.2f}) | {100 * r['bare_acc']:.2f}% | "
            f"{r['runner_s']:.2f} ({r['runner_epoch_s']:.2f}) | {100 * r['runner_acc']:.2f}% | "
            f"{r['runner_s'] / r['bare_s']:.2f}x |"
        )
    accs = [r["runner_acc"] for r in rows]
    bare, ours = statistics.median(r["bare_s"] for r in rows), statistics.median(r["runner_s"] for r in rows)
    ratio = statistics.median(r["runner_s"] / r["bare_s"] for r in rows)
    lines += [
        f"| median | {bare:.2f} | mean {100 * statistics.mean(r['bare_acc'] for r in rows):.2f}% | {ours:.2f} | "
        f"mean {100 * statistics.mean(accs):.2f}%, min {100 * min(accs):.2f}% | {ratio:.2f}x |",
    ]
    targets = [
        f"| mnist_fast, whole command vs the bare loop | | {ratio:.2f}x | {'yes' if ratio <= 1.3 else 'NO'} |",
        f"| mnist_fast, mean test accuracy over {len(rows)} seeds (>= 99.0%) | | {100 * statistics.mean(accs):.2f}% | "
        f"{'yes' if statistics.mean(accs) >= 0.99 else 'NO'} |",
        f"| mnist_fast, lowest seed (>= 98.8%) | | {100 * min(accs):.2f}% | {'yes' if min(accs) >= 0.988 else 'NO'} |",
    ]
    return lines, targets


# --- bf16 -------------------------------------------------------------------------------------


def bf16(args, work: Path, run_process) -> dict:
    """Per run and seed: epoch seconds and final test accuracy with trainer.amp=true and =false."""
    data = str(Path(args.data_root).resolve())
    found = {}
    for i, run in enumerate(args.bf16_runs.split(",")):
        for seed in range(args.bf16_seeds):
            for amp in ("true", "false"):
                folder = work / f"bf16_{i}_{seed}_{amp}"
                overrides = [*run.split(), f"seed={seed}", f"trainer.amp={amp}", "report.plots=false"]
                overrides.append("trainer.progress=false")
                run_process(runner(*overrides, f"dataset.root={data}", f"hydra.run.dir={folder}"), work, ROOT)
                summary, epochs = run_summary(folder), epoch_seconds(folder)
                found.setdefault((run, amp), []).append(
                    {"epoch_s": statistics.median(epochs), "acc": summary["final"]["test_acc"], "epochs": len(epochs)}
                )
                print(f"bf16 {run} seed {seed} amp={amp}: {found[(run, amp)][-1]}", flush=True)
    return {"runs": [{"run": run, "amp": amp, "seeds": seeds} for (run, amp), seeds in found.items()]}


def bf16_lines(result: dict) -> tuple[list[str], list[str]]:
    lines = [
        "**bf16 autocast against float32** on the CPU (`trainer.amp=true` / `false`, plots off; epoch: the median "
        "over a run's epochs, then over seeds):",
        "",
        "| run | epochs | amp | epoch s | test accuracy per seed | mean | bf16 / fp32 epoch |",
        "|---|---:|---|---:|---|---:|---:|",
    ]
    by = {(r["run"], r["amp"]): r["seeds"] for r in result["runs"]}
    for (run, amp), seeds in by.items():
        epoch = statistics.median(s["epoch_s"] for s in seeds)
        fp32 = statistics.median(s["epoch_s"] for s in by[(run, "false")])
        accs = ", ".join(f"{100 * s['acc']:.2f}%" for s in seeds)
        mean = 100 * statistics.mean(s["acc"] for s in seeds)
        ratio = f"{epoch / fp32:.2f}x" if amp == "true" else ""
        lines.append(f"| `{run}` | {seeds[0]['epochs']} | {amp} | {epoch:.2f} | {accs} | {mean:.2f}% | {ratio} |")
    return lines, []


# --- parallel ---------------------------------------------------------------------------------


def parallel(args, work: Path, run_process) -> dict:
    """Per run: wall seconds of a 4-seed sweep, sequential with every core and joblib with one thread a job."""
    data = str(Path(args.data_root).resolve())
    n = cores()
    how = {
        "one after another": [],
        f"side by side (joblib n_jobs={n})": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n}"],
    }
    found = {}
    for repeat in range(args.repeats):
        for i, run in enumerate(args.parallel_runs.split(",")):
            for j, (name, launcher) in enumerate(how.items()):
                folder = work / f"parallel_{i}_{j}_{repeat}"  # a fresh sweep folder each time
                overrides = ["-m", "seed=0,1,2,3", *run.split(), *launcher, "trainer.progress=false"]
                wall = run_process(runner(*overrides, f"dataset.root={data}", f"hydra.sweep.dir={folder}"), work, ROOT)[
                    0
                ]
                jobs = sorted(p.parent for p in folder.glob("*/summary.json"))
                summaries = [run_summary(job) for job in jobs]
                if len(summaries) != 4:
                    raise RuntimeError(f"{folder}: {len(summaries)} of 4 jobs finished")
                found.setdefault((run, name), []).append(
                    {
                        "wall": wall,
                        "threads": summaries[0]["speed"]["threads"],
                        "acc": statistics.mean(s["final"]["test_acc"] for s in summaries),
                    }
                )
                print(f"parallel repeat {repeat + 1} {run} {name}: {found[(run, name)][-1]}", flush=True)
    return {"runs": [{"run": run, "how": name, "repeats": r} for (run, name), r in found.items()]}


def parallel_lines(result: dict) -> tuple[list[str], list[str]]:
    lines = [
        "**Many runs on one CPU**: a 4-job sweep `-m seed=0,1,2,3` of each run, one job after another with "
        "every core against jobs side by side with one thread each (wall seconds of the whole command, the "
        "median of interleaved repeats):",
        "",
        "| run | jobs | threads a job | wall s | vs one after another | mean test acc |",
        "|---|---|---:|---:|---:|---:|",
    ]
    first = {}
    for r in result["runs"]:
        wall = statistics.median(x["wall"] for x in r["repeats"])
        first.setdefault(r["run"], wall)
        acc = 100 * statistics.mean(x["acc"] for x in r["repeats"])
        lines.append(
            f"| `{r['run']}` | {r['how']} | {r['repeats'][0]['threads']} | {wall:.1f} | "
            f"{first[r['run']] / wall:.2f}x | {acc:.2f}% |"
        )
    return lines, []


# --- steps ------------------------------------------------------------------------------------

BASES = {"LeNet-5 (the default run)": [], "the fast preset": ["experiment=mnist_fast"]}
SAME = {"LeNet-5 (the default run)": {"bf16 off"}, "the fast preset": {"bf16 on"}}  # as the base runs: not again
VARIANTS = {
    "as the preset runs": [],
    "1 thread": ["trainer.threads=1"],
    "NCHW layout": ["trainer.channels_last=false"],
    "bf16 on": ["trainer.amp=true"],
    "bf16 off": ["trainer.amp=false"],
    "torch.compile, cold cache": ["trainer.compile=true"],  # compiled into an empty inductor cache: a first run
    "torch.compile": ["trainer.compile=true"],  # with the cache the cold run filled: every later run
}
COMPILED = ("torch.compile, cold cache", "torch.compile")


def steps(args, work: Path, spawn_worker) -> dict:
    data = str(Path(args.data_root).resolve())
    wanted = [v for v in (args.step_variants.split(",") if args.step_variants else VARIANTS) if v]
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        raise SystemExit(
            f"--step-variants: {', '.join(unknown)} is not a variant; the variants are {', '.join(VARIANTS)}"
        )
    found = {}
    for repeat in range(args.repeats):
        for i, (base, base_overrides) in enumerate(BASES.items()):
            cache = work / f"inductor_{i}_{repeat}"  # torch.compile's cache, fresh for each base and repeat
            for variant in wanted:
                if variant in SAME[base]:
                    continue
                overrides = [*base_overrides, *VARIANTS[variant]]
                params = {"overrides": overrides, "data_root": data, "steps": args.steps, "prepare": True}
                if variant in COMPILED:
                    params["inductor_cache"] = str(cache)
                    if variant == "torch.compile" and not cache.exists():  # fill it first (not timed)
                        spawn_worker(ROOT, "steps", {**params, "steps": 1}, work)
                r = spawn_worker(ROOT, "steps", params, work)
                found.setdefault((base, variant), []).append(r)
                print(f"steps repeat {repeat + 1} {base}, {variant}: {r['ms']}", flush=True)
    return {"rows": [{"base": b, "variant": v, "repeats": r} for (b, v), r in found.items()]}


PARTS = ("data", "forward and loss", "backward", "optimizer")


def steps_worker(overrides: list, data_root: str, steps: int, inductor_cache: str | None = None) -> dict:
    """One configuration's training step, part by part: ms per step (medians over `steps` timed steps).
    `inductor_cache`: the folder torch.compile caches its compiled code in (read when it compiles)."""
    if inductor_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache
    from benchmark import compose, peak_flops  # benchmarks/ is this worker's first path
    from torch.utils.flop_counter import FlopCounterMode

    from mnist_runner.run import build

    cfg = compose("lenet_full", f"dataset.root={data_root}", "device=cpu", *overrides)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    epochs = cfg.trainer.epochs
    cfg.trainer.epochs = 10_000  # a schedule over as many steps as are timed (one-cycle's ends after the run's)
    parts = build(cfg, choices)

    def endless():
        while True:  # epoch after epoch, as a long run (and small data) needs
            yield from parts.data.batches(parts.data.train, cfg.trainer.batch_size, parts.generator, parts.augmentation)

    batches = endless()
    parts.forward.train()
    times = {name: [] for name in PARTS}

    def step(timed: bool) -> None:
        t = [time.perf_counter()]
        inputs, labels = next(batches)
        t.append(time.perf_counter())
        loss = parts.loss_fn(parts.forward(inputs), labels)
        t.append(time.perf_counter())
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        parts.optimizer.step()
        loss.item()
        t.append(time.perf_counter())
        if timed:
            for name, a, b in zip(PARTS, t, t[1:]):
                times[name].append((b - a) * 1000)

    t0 = time.perf_counter()
    for _ in range(5):  # the first steps: warm-up, and torch.compile's compilation where it is on
        step(False)
    first_s = time.perf_counter() - t0
    for _ in range(steps):
        step(True)
    with FlopCounterMode(display=False) as counter:
        step(False)
    ms = {name: statistics.median(v) for name, v in times.items()}
    return {
        "ms": ms,
        "step_ms": statistics.median(sum(parts) for parts in zip(*times.values())),
        "first_s": first_s,
        "flops": counter.get_total_flops(),
        "threads": parts.speed.threads,
        "amp": parts.speed.amp,
        "channels_last": parts.speed.channels_last,
        "steps_per_epoch": parts.steps_per_epoch,
        "epochs": epochs,
        "batch": cfg.trainer.batch_size,
        "peak": peak_flops(parts.speed.threads),
    }


def steps_lines(result: dict) -> tuple[list[str], list[str]]:
    lines = [
        "**One training step, part by part** (the runner's own parts, `mnist_runner.run.build`; ms per step, "
        "medians; the floor: the step's FLOPs, counted by torch.utils.flop_counter, at the CPU's fp32 peak; "
        "first 5 steps: what a run pays before its steps run at speed, compilation included):",
        "",
        "| step | variant | threads | " + " | ".join(PARTS) + " | step | GFLOP/s (% of peak) | first 5 steps s |",
        "|---|---|---:|" + "---:|" * len(PARTS) + "---:|---:|---:|",
    ]
    eager = {}
    compile_notes = []
    for row in result["rows"]:
        r = row["repeats"]
        ms = {name: statistics.median(x["ms"][name] for x in r) for name in PARTS}
        step = statistics.median(x["step_ms"] for x in r)
        first = statistics.median(x["first_s"] for x in r)
        x = r[0]
        gflops = x["flops"] / step / 1e6
        share = 100 * gflops / x["peak"]["gflops"]
        lines.append(
            f"| {row['base']} (batch {x['batch']}) | {row['variant']} | {x['threads']} | "
            + " | ".join(f"{ms[name]:.2f}" for name in PARTS)
            + f" | {step:.2f} | {gflops:.1f} ({share:.1f}%) | {first:.2f} |"
        )
        if row["variant"] == "as the preset runs":
            eager[row["base"]] = (step, first, x)
        elif row["variant"] in COMPILED and row["base"] in eager:
            e_step, e_first, e = eager[row["base"]]
            cost = first - e_first
            run_steps = e["steps_per_epoch"] * e["epochs"]
            net = (e_step - step) / 1000 * run_steps - cost
            repaid = f"repaid after {cost / ((e_step - step) / 1000):,.0f} steps" if step < e_step else "never repaid"
            compile_notes.append(
                f"- {row['base']}, {row['variant']}: it costs {cost:.1f} s of compiling in the first steps and "
                f"then takes {step:.2f} against {e_step:.2f} ms a step; it is {repaid}, so over the run's "
                f"{run_steps:,} steps it {'saves' if net > 0 else 'loses'} {abs(net):.1f} s, compiling included."
            )
    x = result["rows"][0]["repeats"][0]
    lines += ["", f"The CPU's fp32 peak: {x['peak']['how']} per the estimate in benchmark.py.", *compile_notes]
    return lines, []


HOW = {  # how often each number of these sections was measured (the others: medians of --repeats)
    "fast": "each seed ran once, the bare loop and the runner back to back",
    "bf16": "each seed ran once with bf16 and once without, back to back",
}
LINES = {"fast": fast_lines, "bf16": bf16_lines, "parallel": parallel_lines, "steps": steps_lines}
