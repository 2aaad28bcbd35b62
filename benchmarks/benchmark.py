#!/usr/bin/env python
"""Training speed side by side: the seeds' loop, a bare tensor loop and the runner, in one process.

For each model, on the same MNIST files and in the same process:

(a) seed    the seed notebooks' loop: torchvision MNIST with transforms.ToTensor(), a DataLoader
            (batch 100, shuffle), SGD lr 0.1, cross-entropy; evaluation as they did it (batches of
            100 through a DataLoader, no torch.no_grad, .item() per batch).
            It runs with PyTorch's default intra-op threads (all cores), as the notebooks did,
            unless --seed-threads says otherwise, and again with the runner's when they differ.
(b) bare    the same model over tensors already in memory: index a batch of the uint8 images,
            scale, step. It uses the runner's model layout (trainer.channels_last etc.), so (c)/(b)
            is what the runner's own machinery costs. Evaluation in batches of 1000, inference mode.
(c) runner  `mnist_runner.run.run(cfg, folder, ...)`, the function `python -m mnist_runner` calls,
            with the config Hydra composes from conf/ (defaults, progress bar on, checkpoints,
            metrics), trainer.epochs=--runner-epochs. Its `train_one_epoch` and `evaluate` calls are
            timed by wrapping them where run() looks them up, so start-up (data loading, model
            building) and the end-of-run report are kept apart from per-epoch throughput.

(a) and (b) time --steps steps of a (partial) epoch after --warmup untimed steps; (c) times whole
epochs, its unit of work. "epoch s" is a whole epoch of training plus one evaluation of the test
split: measured for (c) between the starts of consecutive epochs (everything the runner does per
epoch, checkpoints included), computed from the two rates for (a) and (b). Repeats are interleaved
(model by model, loop by loop) and medians reported; peak RSS is the process's high-water mark
during each loop (reset between loops through /proc/self/clear_refs, so it includes what the
process already holds: torch and the dataset copies of all three loops).

Then, in subprocesses: `--help` and `--cfg job` wall time, the time from the command to the first
training step, and a whole `python -m mnist_runner` run of --full-run-epochs LeNet-5 epochs with
its peak RSS (os.wait4).

    python benchmarks/benchmark.py --data-root ../shared/data            # writes BENCHMARKS.md
    python benchmarks/benchmark.py --models lenet_full --repeats 1 --steps 20 --full-run-epochs 0 --out /tmp/b.md
"""

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
DEFAULT_MODELS = ["lenet_full", "lenet_subset", "mlp_128", "cnn_10_20"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-root",
        default=os.environ.get("MNIST_RUNNER_DATA", "data"),
        help="folder holding MNIST/raw/ (default: $MNIST_RUNNER_DATA, else ./data)",
    )
    p.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated options of the model config group (conf/model/*.yaml); missing ones are skipped",
    )
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians are reported")
    p.add_argument("--steps", type=int, default=100, help="timed training steps per repeat for (a) and (b)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before each timing of (a) and (b)")
    p.add_argument("--runner-epochs", type=int, default=2, help="epochs per runner call (>= 2 measures whole epochs)")
    p.add_argument(
        "--full-run-epochs",
        type=int,
        default=10,
        help="epochs of the whole-run subprocess measured for wall time and peak RSS (0: skip)",
    )
    p.add_argument("--startup-repeats", type=int, default=3, help="runs of each start-up measurement (0: skip)")
    p.add_argument(
        "--seed-threads",
        type=int,
        default=None,
        help="intra-op threads of (a); default: PyTorch's own default, as the notebooks ran",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (as device=...)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra runner override, also applied to (b); e.g. trainer.threads=2",
    )
    p.add_argument(
        "--out",
        default=str(ROOT / "BENCHMARKS.md"),
        help=f"markdown file whose block between {BEGIN} and {END} is replaced (created if missing)",
    )
    p.add_argument("--note", default="", help="a line added under the tables (e.g. how loaded the machine was)")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if args.repeats < 1 or args.steps < 1 or args.runner_epochs < 1:
        p.error("--repeats, --steps and --runner-epochs must be >= 1")
    return args


# --- measuring -------------------------------------------------------------------------------


def sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


class PeakRSS:
    """The process's resident-memory high-water mark over a block, in MB (Linux: reset per block)."""

    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.resettable = False  # then it is the peak since the process started
        return self

    def __exit__(self, *exc):
        self.mb = peak_rss_mb()
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def compose(args, model: str, *extra: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mnist_runner.config import config_dir

    overrides = [f"model={model}", f"dataset.root={args.data_root}", f"device={args.device}", *args.set, *extra]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def seed_loop(cfg, device, loaders, steps: int, warmup: int) -> dict:
    """(a): the seeds' DataLoader loop and evaluation."""
    import torch

    from mnist_runner.models import build_model

    train_loader, test_loader = loaders
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), 10).to(device)
    loss_function = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)

    def batches():
        while True:
            yield from train_loader

    stream = batches()

    def train(n):
        for _ in range(n):
            images, labels = next(stream)
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            train_loss = loss_function(model(images), labels)
            train_loss.backward()
            optimizer.step()

    train(warmup)
    sync(device)
    t0 = time.perf_counter()
    train(steps)
    sync(device)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    test_loss, correct, total = 0, 0, 0
    for images, labels in test_loader:
        images, labels = images.to(device), labels.to(device)
        output = model(images)
        test_loss += loss_function(output, labels).item()
        pred = output.max(1, keepdim=True)[1]
        correct += pred.eq(labels.view_as(pred)).sum().item()
        total += labels.size(0)
    eval_s = time.perf_counter() - t0
    return {"train_ips": steps * train_loader.batch_size / train_s, "eval_ips": total / eval_s}


def bare_loop(cfg, device, tensors, steps: int, warmup: int) -> dict:
    """(b): the same model over resident tensors, laid out as the runner lays it out."""
    import torch

    from mnist_runner.models import build_model
    from mnist_runner.speed import configure

    (x_train, y_train), (x_test, y_test) = tensors
    batch, eval_batch = cfg.trainer.batch_size, cfg.trainer.eval_batch_size
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), 10).to(device)
    forward = configure(cfg.trainer, device).forward_model(model)
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optimizer.lr)
    generator = torch.Generator().manual_seed(0)
    order, at = torch.randperm(len(y_train), generator=generator).to(device), 0

    def train(n):
        nonlocal order, at
        model.train()
        for _ in range(n):
            if at + batch > len(order):
                order, at = torch.randperm(len(y_train), generator=generator).to(device), 0
            index = order[at : at + batch]
            at += batch
            images, labels = x_train.index_select(0, index), y_train.index_select(0, index)
            loss = loss_fn(forward(images.float().div_(255)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    train(warmup)
    sync(device)
    t0 = time.perf_counter()
    train(steps)
    sync(device)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    with torch.inference_mode():
        for start in range(0, len(y_test), eval_batch):
            logits = forward(x_test[start : start + eval_batch].float().div_(255))
            correct += (logits.argmax(1) == y_test[start : start + eval_batch]).sum()
    correct.item()
    eval_s = time.perf_counter() - t0
    return {"train_ips": steps * batch / train_s, "eval_ips": len(y_test) / eval_s}


def runner_loop(cfg) -> dict:
    """(c): mnist_runner.run.run() on the composed config, its train and evaluate calls timed."""
    import mnist_runner.run as runner

    calls: list[tuple[str, float, float, int]] = []  # (what, start, end, examples)
    originals = {name: getattr(runner, name) for name in ("train_one_epoch", "evaluate")}

    def timed(name):
        real = originals[name]

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            result = real(*a, **k)
            sync(a[1].train.labels.device)
            split = a[1].train if name == "train_one_epoch" else a[2]
            calls.append((name, t0, time.perf_counter(), len(split)))
            return result

        return wrapper

    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    log = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        for name in originals:
            setattr(runner, name, timed(name))
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                t_call = time.perf_counter()
                runner.run(cfg, Path(folder) / "run", choices, list(cfg.hydra.overrides.task))
                t_end = time.perf_counter()
            summary = json.loads((Path(folder) / "run" / "summary.json").read_text())
        except BaseException:
            print(log.getvalue(), file=sys.stderr)
            raise
        finally:
            for name, real in originals.items():
                setattr(runner, name, real)
    if summary["status"] != "completed":
        raise RuntimeError(f"the runner's run ended {summary['status']}: {summary.get('error')}\n{log.getvalue()}")
    trains = [c for c in calls if c[0] == "train_one_epoch"]
    evals = [c for c in calls if c[0] == "evaluate"]
    if not trains or not evals:
        raise RuntimeError("run() no longer calls mnist_runner.run.train_one_epoch/evaluate; update runner_loop")
    starts = [c[1] for c in trains]
    result = {
        "train_ips": statistics.median(n / (e - s) for _, s, e, n in trains),
        "eval_ips": statistics.median(n / (e - s) for _, s, e, n in evals[: len(trains)]),
        "setup_s": trains[0][1] - t_call,
        "finish_s": t_end - evals[-1][2],
        "epoch_s_list": [b - a for a, b in zip(starts, starts[1:])],
        "test_acc": summary["final"]["test_acc"],
        "speed": summary.get("speed"),
    }
    return result


# --- subprocess measurements -------------------------------------------------------------------

# Runs the real CLI with train_one_epoch replaced by a stopwatch: prints when training would begin.
FIRST_STEP = """
import os, sys, time
import mnist_runner.loops as train
def first_step(*a, **k):
    print(f"FIRST_STEP {time.time():.6f}", flush=True)
    os._exit(0)
train.train_one_epoch = first_step
sys.argv = ["mnist_runner", *sys.argv[1:]]
from mnist_runner.train import main
main()
"""


def spawn(cmd: list[str], cwd: str, env: dict) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, output) of one subprocess."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out}")
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return wall, usage.ru_maxrss / scale, out


def startup(args, work: str) -> dict:
    env = {**os.environ, "MNIST_RUNNER_DATA": str(Path(args.data_root).resolve())}
    base = [f"device={args.device}", "trainer.progress=false", *args.set]
    py = sys.executable
    help_s = [spawn([py, "-m", "mnist_runner", "--help"], work, env)[0] for _ in range(args.startup_repeats)]
    job_s = [spawn([py, "-m", "mnist_runner", "--cfg", "job"], work, env)[0] for _ in range(args.startup_repeats)]
    first = []
    for _ in range(args.startup_repeats):
        t0 = time.time()
        _, _, out = spawn([py, "-c", FIRST_STEP, "model=lenet_full", *base], work, env)
        stamp = [line for line in out.splitlines() if line.startswith("FIRST_STEP ")]
        if not stamp:
            raise RuntimeError(f"no training step was reached:\n{out}")
        first.append(float(stamp[-1].split()[1]) - t0)
    return {
        "help_s": statistics.median(help_s),
        "cfg_job_s": statistics.median(job_s),
        "first_step_s": statistics.median(first),
    }


def full_run(args, work: str) -> dict:
    env = {**os.environ, "MNIST_RUNNER_DATA": str(Path(args.data_root).resolve())}
    folder = Path(work) / "full_run"
    cmd = [
        sys.executable,
        "-m",
        "mnist_runner",
        "model=lenet_full",
        f"trainer.epochs={args.full_run_epochs}",
        f"device={args.device}",
        "trainer.progress=false",
        f"hydra.run.dir={folder}",
        *args.set,
    ]
    wall, rss, _ = spawn(cmd, work, env)
    summary = json.loads((folder / "summary.json").read_text())
    rows = (folder / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("epoch_seconds")
    epoch_s = [float(r.split(",")[col]) for r in rows[1:]]
    return {
        "wall_s": wall,
        "peak_rss_mb": rss,
        "test_acc": summary["final"]["test_acc"],
        "epochs": args.full_run_epochs,
        "median_epoch_s": statistics.median(epoch_s),
        "command": "python -m mnist_runner " + " ".join(c for c in cmd[3:] if not c.startswith("hydra.run.dir=")),
    }


# --- report ---------------------------------------------------------------------------------


def machine(device) -> dict:
    import torch
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = ""
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        memory = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f"; GPU: {torch.cuda.get_device_name()}" if device.type == "cuda" else ""
    return {
        "machine": f"{cpu}, {cores} cores{memory}{gpu}",
        "versions": (
            f"Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}"
        ),
    }


def report(
    args,
    info: dict,
    results: dict,
    legs: dict,
    skipped: list,
    start: dict | None,
    full: dict | None,
    loads: tuple,
    command: str,
) -> str:
    """The markdown block; `legs` maps each loop's key to its label, in table order."""
    med = statistics.median
    lines = [
        BEGIN,
        f"Measured {info['date']} on {info['machine']}; {info['versions']}; device {info['device']}, "
        f"load average (1 min) {loads[0]:.2f} at the start, {loads[1]:.2f} at the end.",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Training: {args.steps} timed steps of batch 100 per repeat for (a) seed and (b) bare, whole epochs for "
        f"(c) runner ({args.runner_epochs} per call); medians of {args.repeats} interleaved repeats. "
        "Epoch s: one training epoch plus one evaluation of the test split. Peak RSS: the process's "
        "high-water mark while that loop ran (it holds torch and the data of all the loops). "
        "(a) runs with PyTorch's default intra-op threads, as the notebooks did, and again with the "
        "runner's when they differ.",
        "",
        "| model | loop | train img/s | eval img/s | epoch s | peak RSS MB | train vs seed | "
        "train vs seed, same threads | train vs bare | epoch vs bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary = {}
    for model, runs_of in results.items():
        n_train, n_test = runs_of["sizes"]
        row = {}
        for leg in legs:
            runs = runs_of[leg]
            tr, ev = med(r["train_ips"] for r in runs), med(r["eval_ips"] for r in runs)
            if leg == "runner" and any(r["epoch_s_list"] for r in runs):
                epoch = med(x for r in runs for x in r["epoch_s_list"])
            else:
                epoch = n_train / tr + n_test / ev
            row[leg] = {"train": tr, "eval": ev, "epoch": epoch, "rss": max(r["rss"] for r in runs)}
        summary[model] = row
        same = row.get("seed_same", row["seed"])
        for leg, label in legs.items():
            r = row[leg]
            ratios = ["", "", "", ""]
            if leg == "runner":
                ratios = [
                    f"{r['train'] / row['seed']['train']:.2f}x",
                    f"{r['train'] / same['train']:.2f}x",
                    f"{r['train'] / row['bare']['train']:.2f}",
                    f"{row['bare']['epoch'] / r['epoch']:.2f}",
                ]
            lines.append(
                f"| {model} | {label} | {r['train']:,.0f} | {r['eval']:,.0f} | {r['epoch']:.2f} | {r['rss']:,.0f} | "
                + " | ".join(ratios)
                + " |"
            )
    lines += [
        "",
        "Ratios are rates (higher is better for the runner): train vs seed = runner train img/s / seed's "
        "(as the notebooks ran, and with the runner's threads); train vs bare = runner / bare; "
        "epoch vs bare = bare epoch s / runner epoch s.",
    ]
    for model, runs_of in results.items():
        r = runs_of["runner"]
        lines.append(
            f"- {model} runner: set-up before the first step {med(x['setup_s'] for x in r):.2f} s in "
            f"process (data, model, summary), end of run {med(x['finish_s'] for x in r):.2f} s (model.pt, "
            f"predictions, plots); test accuracy after {args.runner_epochs} epoch(s) {r[-1]['test_acc']:.4f}; "
            f"trainer settings {r[-1]['speed']}"
        )
    if skipped:
        lines.append(f"- not in conf/model/, skipped: {', '.join(skipped)}")

    lines += ["", "| target | measured | met |", "|---|---:|---|"] if "lenet_full" in summary or full else []

    def target(name: str, value: str, met: bool) -> None:
        lines.append(f"| {name} | {value} | {'yes' if met else 'NO'} |")

    if "lenet_full" in summary:
        full_, runner = summary["lenet_full"], summary["lenet_full"]["runner"]
        ratio = runner["train"] / full_["seed"]["train"]
        target("runner trains LeNet-5 >= 5x faster than the seed loop", f"{ratio:.2f}x", ratio >= 5)
        if "seed_same" in full_:
            ratio = runner["train"] / full_["seed_same"]["train"]
            target("the same, with the seed loop on the runner's threads", f"{ratio:.2f}x", ratio >= 5)
        ratio = runner["train"] / full_["bare"]["train"]
        target("runner within 15% of the bare loop, training (LeNet-5)", f"{ratio:.2f}", ratio >= 0.85)
        ratio = full_["bare"]["epoch"] / runner["epoch"]
        target("runner within 15% of the bare loop, whole epoch (LeNet-5)", f"{ratio:.2f}", ratio >= 0.85)
        if "lenet_subset" in summary:
            ratio = summary["lenet_subset"]["runner"]["train"] / runner["train"]
            target("lenet_subset within 15% of lenet_full (runner training)", f"{ratio:.2f}", ratio >= 0.85)
    if full:
        rss = full["peak_rss_mb"]
        target(f"{full['epochs']}-epoch LeNet-5 run peak RSS < 1.5 GB", f"{rss:,.0f} MB", rss < 1536)

    if start:
        lines += [
            "",
            f"Start-up (subprocesses, median of {args.startup_repeats}):",
            "",
            "| what | seconds |",
            "|---|---:|",
            f"| `python -m mnist_runner --help` (no torch import) | {start['help_s']:.2f} |",
            f"| `python -m mnist_runner --cfg job` (no torch import) | {start['cfg_job_s']:.2f} |",
            f"| `python -m mnist_runner` to the first training step (LeNet-5, MNIST) | {start['first_step_s']:.2f} |",
        ]
    if full:
        lines += [
            "",
            f"Whole run: `{full['command']}`: {full['wall_s']:.1f} s wall, median epoch "
            f"{full['median_epoch_s']:.2f} s (training and evaluation), final test accuracy {full['test_acc']:.4f}, "
            f"peak RSS {full['peak_rss_mb']:,.0f} MB.",
        ]
    if args.note:
        lines += ["", args.note]
    lines.append(END)
    return "\n".join(lines)


def write_block(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()[0]
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    import mnist_runner.train  # noqa: F401  registers the resolvers and callbacks the config names
    from mnist_runner.devices import resolve_device
    from mnist_runner.speed import configure

    device = resolve_device(args.device)
    options = sorted(p.stem for p in (Path(mnist_runner.config.config_dir()) / "model").glob("*.yaml"))
    models = [m for m in args.models if m in options]
    skipped = [m for m in args.models if m not in options]
    if not models:
        print(f"none of {args.models} is a model option (conf/model/: {', '.join(options)})", file=sys.stderr)
        return 2

    # The same files for all three loops: the seeds' datasets, and tensors taken from them.
    train_set = datasets.MNIST(args.data_root, train=True, transform=transforms.ToTensor(), download=False)
    test_set = datasets.MNIST(args.data_root, train=False, transform=transforms.ToTensor(), download=False)
    loaders = (DataLoader(train_set, batch_size=100, shuffle=True), DataLoader(test_set, batch_size=100, shuffle=False))
    tensors = tuple((s.data.unsqueeze(1).to(device), s.targets.to(device)) for s in (train_set, test_set))
    configs = {m: compose(args, m, f"trainer.epochs={args.runner_epochs}") for m in models}
    seed_threads = args.seed_threads or torch.get_num_threads()  # PyTorch's default unless told
    threads = configure(configs[models[0]].trainer, device).threads  # the runner's setting, for (b) too

    legs = {"seed": f"seed, {seed_threads} thread{'s' * (seed_threads > 1)}"}
    if seed_threads != threads:
        legs["seed_same"] = f"seed, {threads} thread{'s' * (threads > 1)}"
    legs.update(bare="bare", runner="runner")
    results = {m: {leg: [] for leg in legs} | {"sizes": (len(train_set), len(test_set))} for m in models}
    for repeat in range(args.repeats):
        for m in models:
            for leg in legs:
                if leg == "seed":
                    torch.set_num_threads(seed_threads)
                else:
                    configure(configs[m].trainer, device)  # the runner's settings, for (b) and (a) again
                with PeakRSS() as peak:
                    if leg in ("seed", "seed_same"):
                        r = seed_loop(configs[m], device, loaders, args.steps, args.warmup)
                    elif leg == "bare":
                        r = bare_loop(configs[m], device, tensors, args.steps, args.warmup)
                    else:
                        r = runner_loop(configs[m])
                r["rss"] = peak.mb
                results[m][leg].append(r)
                print(
                    f"repeat {repeat + 1}/{args.repeats} {m:>13} {legs[leg]:>16}: train {r['train_ips']:9,.0f} img/s  "
                    f"eval {r['eval_ips']:9,.0f} img/s  peak RSS {r['rss']:,.0f} MB",
                    flush=True,
                )

    with tempfile.TemporaryDirectory() as work:
        start = startup(args, work) if args.startup_repeats > 0 else None
        full = full_run(args, work) if args.full_run_epochs > 0 else None
    info = machine(device)
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info["device"] = str(device)
    command = "python benchmarks/benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)
    block = report(args, info, results, legs, skipped, start, full, (load_start, os.getloadavg()[0]), command.strip())
    write_block(Path(args.out), block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
