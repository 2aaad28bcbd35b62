#!/usr/bin/env python
"""How fast mnist_runner is, and how much faster than an older version, side by side in one run.

Every measurement runs in fresh subprocesses, each with one version of the code first on its
PYTHONPATH: this checkout ("after") and, with --before PATH, another checkout ("before"; e.g.
`git worktree add /tmp/before COMMIT`). Repeats are interleaved (before, after, before, ...) and
medians reported, so that both versions meet the same machine load.

Sections (--only picks some):

training  One epoch of training plus one evaluation of the test split, in seconds, per model:
          (a) seed: the seed notebooks' loop, torchvision MNIST with ToTensor through a DataLoader
              (batch 100, shuffle), SGD lr 0.1, PyTorch's default threads and OpenMP settings,
              evaluation in batches of 100 with .item() per batch; --steps timed steps after
              --warmup, the epoch computed from the two rates;
          (b) bare: the same model over uint8 tensors in memory, laid out as the runner lays it out;
          (c) runner: `mnist_runner.run.run()` on the composed default config (progress bar,
              metrics, checkpoints every epoch), --runner-epochs epochs per call, timed by its
              `on_epoch` hook (the epoch_seconds it records, of the epochs after the first, as the
              timed steps of (a) and (b) follow their warm-up); in a process prepared as the command
              line prepares it (mnist_runner.cpu, when the version has it); at the default threads
              (`trainer.threads=null`) and, for the first model, at the other counts of 1..N (N: the
              cores).
busy      The same for the first model, with one other busy process (a Python loop) on the machine.
startup   Wall time of `python -c "import torch"` and of the command line up to its first
          training step (LeNet-5, MNIST), in subprocesses.
sweep     Per-job overhead of an in-process sweep with plots on: the wall time of a 2-job and of a
          6-job sweep of 1-epoch mlp_128 runs (`-m optimizer.lr=...`); overhead per job =
          (wall difference - difference of the summed epoch_seconds) / 4.
plots     The six plots of a run (real MNIST images, a real run's curves and confusion matrix):
          the first draw in a process (importing matplotlib) and later ones (a sweep's later jobs).
summary   The sweep summary (sweep_summary.csv/.md, sweep.png) of a 20-job sweep folder (one real
          run copied 20 times, its lr and curves varied): the first call in a process and later ones.
profile   Where one LeNet-5 training step's time goes (torch.profiler, after only), its FLOPs
          (torch.utils.flop_counter) against the machine's peak, and step variants (SGD foreach and
          fused, NCHW layout, oneDNN off; torch.compile of the whole step with --compile).
search    What pruning saves a 20-trial Optuna search (benchmarks/pruning.py).
fast, bf16, parallel, steps
          The time to a good model: the mnist_fast preset against a bare loop, bf16 against float32,
          parallel sweep jobs against sequential ones, a step part by part (benchmarks/time_to_model.py
          says what each measures). Each writes its own block; bf16's default runs include an epoch of
          CNN3 on Fashion-MNIST (about 10 minutes on 2 cores) six times.

    python benchmarks/benchmark.py --data-root ../shared/data --before /tmp/before   # rewrites BENCHMARKS.md's block
    python benchmarks/benchmark.py --only startup,plots --repeats 1 --out /tmp/b.md
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # however this file is loaded (tests load it by path)
import pruning  # noqa: E402 (beside this file: sections that write blocks of their own)
import time_to_model  # noqa: E402

BLOCKS = {name: module for module in (time_to_model, pruning) for name in module.SECTIONS}

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
SECTIONS = ("training", "busy", "startup", "sweep", "plots", "summary", "profile", *BLOCKS)
RESULT = "BENCHMARK_RESULT "


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=os.environ.get("MNIST_RUNNER_DATA", "data"), help="folder holding MNIST/raw/")
    p.add_argument("--before", help="another checkout of mnist_runner (e.g. a git worktree) to measure side by side")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    p.add_argument("--models", default="lenet_full,mlp_128", help="models of the training section (conf/model/)")
    p.add_argument("--threads", default="", help="thread counts of the runner for the first model (default 1..cores)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each measurement; medians reported")
    p.add_argument("--steps", type=int, default=100, help="timed training steps of (a) and (b)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before (a) and (b) are timed")
    p.add_argument("--runner-epochs", type=int, default=2, help="epochs per runner call")
    p.add_argument("--sweep-jobs", default="2,6", help="job counts of the two sweeps of the sweep section")
    p.add_argument("--summary-jobs", type=int, default=20, help="jobs in the sweep folder of the summary section")
    p.add_argument("--compile", action="store_true", help="profile: also torch.compile the whole step (slow)")
    p.add_argument("--device", default="cpu", help="device of the training sections (cpu, cuda, ...)")
    time_to_model.add_arguments(p)
    pruning.add_arguments(p)
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help=f"file whose {BEGIN}...{END} block is replaced")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one measurement and print its result
    args = p.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.only) - set(SECTIONS))
    if unknown or args.repeats < 1 or args.steps < 1 or args.runner_epochs < 1:
        p.error(f"unknown sections {unknown}" if unknown else "--repeats, --steps and --runner-epochs must be >= 1")
    return args


# --- workers: one measurement in a fresh process, with one version of the code ------------------


def spawn_worker(code: Path, kind: str, params: dict, work: Path, env: dict | None = None) -> dict:
    """Run `kind` in a subprocess with `code` first on its path; returns the dict it printed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps({"kind": kind, **params})]
    out = run_process(cmd, work, code, env)[1]
    lines = [line for line in out.splitlines() if line.startswith(RESULT)]
    if not lines:
        raise RuntimeError(f"worker {kind} printed no result:\n{out[-3000:]}")
    return json.loads(lines[-1][len(RESULT) :])


def run_process(cmd: list[str], cwd: Path, code: Path, env: dict | None = None) -> tuple[float, str]:
    """(wall seconds, output) of a subprocess whose PYTHONPATH starts with `code`."""
    full_env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]),
    }
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)[:300]} exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    return wall, proc.stdout


def worker(params: dict) -> dict:
    kind = params.pop("kind")
    if params.pop("prepare", False):  # as the version's command line does, before torch is imported
        try:
            from mnist_runner import cpu

            cpu.prepare()
        except ImportError:
            pass
    workers = {
        "train": train_worker,
        "plots": plots_worker,
        "summary": summary_worker,
        "profile": profile_worker,
        "steps": time_to_model.steps_worker,
    }
    return workers[kind](**params)


def compose(model: str, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mnist_runner.config import config_dir, setup

    setup()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose("config", overrides=[f"model={model}", *overrides], return_hydra_config=True)


def train_worker(leg: str, model: str, overrides: list, data_root: str, device: str, steps: int, warmup: int) -> dict:
    import torch

    cfg = compose(model, f"dataset.root={data_root}", f"device={device}", *overrides)
    if leg == "runner":
        return runner_epochs(cfg)
    from mnist_runner.devices import resolve_device
    from mnist_runner.models import build_model

    dev = resolve_device(device)
    torch.manual_seed(0)
    net = build_model(cfg.model, (1, 28, 28), 10).to(dev)
    if leg == "seed":
        if cfg.trainer.threads:
            torch.set_num_threads(cfg.trainer.threads)
        result = seed_loop(net, dev, data_root, steps, warmup)
    else:
        from mnist_runner.speed import configure

        result = bare_loop(net, configure(cfg.trainer, dev).forward_model(net), dev, data_root, steps, warmup)
    sizes = result.pop("sizes")  # an epoch over the same data as the runner's
    epoch = sizes[0] / result["train_ips"] + sizes[1] / result["eval_ips"]
    return {**result, "epoch_s": [epoch], "threads": torch.get_num_threads(), "rss_mb": peak_rss_mb()}


def sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def seed_loop(model, device, data_root: str, steps: int, warmup: int) -> dict:
    """(a): the seeds' DataLoader loop and evaluation."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    train = datasets.MNIST(data_root, train=True, transform=transforms.ToTensor(), download=False)
    test = datasets.MNIST(data_root, train=False, transform=transforms.ToTensor(), download=False)
    train_loader, test_loader = DataLoader(train, batch_size=100, shuffle=True), DataLoader(test, batch_size=100)
    loss_function = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)

    def batches():
        while True:
            yield from train_loader

    stream = batches()

    def train_steps(n):
        for _ in range(n):
            images, labels = next(stream)
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = loss_function(model(images), labels)
            loss.backward()
            optimizer.step()

    train_steps(warmup)
    sync(device)
    t0 = time.perf_counter()
    train_steps(steps)
    sync(device)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    correct = total = 0
    for images, labels in test_loader:
        images, labels = images.to(device), labels.to(device)
        output = model(images)
        loss_function(output, labels).item()
        correct += output.max(1, keepdim=True)[1].eq(labels.view(-1, 1)).sum().item()
        total += labels.size(0)
    return {
        "train_ips": steps * 100 / train_s,
        "eval_ips": total / (time.perf_counter() - t0),
        "sizes": (len(train), len(test)),
    }


def bare_loop(model, forward, device, data_root: str, steps: int, warmup: int) -> dict:
    """(b): the same model over uint8 tensors in memory: index a batch, scale, step."""
    import numpy as np
    import torch

    (x_train, y_train), (x_test, y_test) = (
        tuple(torch.from_numpy(a).to(device) for a in mnist_arrays(data_root, split)) for split in ("train", "t10k")
    )
    x_train, x_test, y_train, y_test = x_train[:, None], x_test[:, None], y_train.long(), y_test.long()
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(y_train))).to(device)

    def train_steps(n, at=0):
        model.train()
        for i in range(n):
            index = order[(at + i) * 100 % (len(order) - 100) :][:100]
            loss = loss_fn(forward(x_train.index_select(0, index).float().div_(255)), y_train.index_select(0, index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    train_steps(warmup)
    sync(device)
    t0 = time.perf_counter()
    train_steps(steps, warmup)
    sync(device)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.eval()
    with torch.inference_mode():
        correct = sum(
            (forward(x_test[s : s + 1000].float().div_(255)).argmax(1) == y_test[s : s + 1000]).sum()
            for s in range(0, len(y_test), 1000)
        )
    int(correct)
    return {
        "train_ips": steps * 100 / train_s,
        "eval_ips": len(y_test) / (time.perf_counter() - t0),
        "sizes": (len(y_train), len(y_test)),
    }


def runner_epochs(cfg) -> dict:
    """(c): mnist_runner.run.run() on the composed config, each epoch's seconds from its on_epoch hook."""
    import contextlib
    import io

    from mnist_runner.run import run
    from mnist_runner.run_folder import RunFolder

    rows = []
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with tempfile.TemporaryDirectory() as folder:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run(
                cfg,
                Path(folder) / "run",
                choices,
                list(cfg.hydra.overrides.task),
                on_epoch=lambda e, s, row: rows.append(row),
            )
        summary = RunFolder(Path(folder) / "run").summary()
    if summary["status"] != "completed":
        raise RuntimeError(f"the run ended {summary['status']}: {summary.get('error')}")
    return {
        "epoch_s": [r["epoch_seconds"] for r in rows][1:] or [rows[0]["epoch_seconds"]],  # steady state, as (a), (b)
        "threads": summary["speed"]["threads"],
        "test_acc": rows[-1]["test_acc"],
        "rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def mnist_arrays(data_root: str, split: str):
    """(images, labels) of an MNIST split as numpy arrays, read from its IDX files."""
    import numpy as np

    raw = Path(data_root) / "MNIST" / "raw"
    images = np.fromfile(raw / f"{split}-images-idx3-ubyte", dtype=np.uint8, offset=16)
    labels = np.fromfile(raw / f"{split}-labels-idx1-ubyte", dtype=np.uint8, offset=8)
    return images.reshape(len(labels), 28, 28), labels


def plots_worker(run_folder: str, data_root: str, repeats: int) -> dict:
    """The six plots of a run folder, drawn as RunReport draws them: the first time, then again."""
    import csv

    import numpy as np

    from mnist_runner import plots

    folder = Path(run_folder)
    with open(folder / "metrics.csv") as f:
        rows = [{k: float(v) if k != "epoch" else int(v) for k, v in r.items()} for r in csv.DictReader(f)]
    with open(folder / "train_steps.csv") as f:
        steps = [(int(r["examples_seen"]), float(r["loss"])) for r in csv.DictReader(f)]
    with open(folder / "confusion_matrix.csv") as f:
        table = list(csv.reader(f))
    names, matrix = table[0][1:], np.array([[int(c) for c in r[1:]] for r in table[1:]])
    train_x, train_y = mnist_arrays(data_root, "train")
    test_x, test_y = mnist_arrays(data_root, "t10k")
    predicted = test_y.copy()
    predicted[::13] = (predicted[::13] + 1) % 10  # a few wrong ones, for misclassified.png
    wrong = np.nonzero(predicted != test_y)[0][:20]
    epochs = [(r["epoch"] * len(train_y), r["train_loss"], r["test_loss"]) for r in rows]

    def draw(out: Path) -> float:
        t0 = time.perf_counter()
        plots.plot_loss(steps, epochs, out / "loss.png", "mlp_128, mnist")
        plots.plot_accuracy(rows, out / "accuracy.png", "mlp_128, mnist")
        plots.plot_images(train_x[:20], [f"label: {y}" for y in train_y[:20]], out / "samples.png", "Training images")
        for name, index in (("predictions", np.arange(20)), ("misclassified", wrong)):
            captions = [f"predicted: {p}\ntrue: {t}" for p, t in zip(predicted[index], test_y[index])]
            plots.plot_images(
                test_x[index], captions, out / f"{name}.png", name, list(predicted[index] != test_y[index])
            )
        plots.plot_confusion(matrix, names, out / "confusion_matrix.png", "mlp_128, mnist")
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        first = draw(Path(tmp) / "first")
        later = [draw(Path(tmp) / f"again{i}") for i in range(repeats)]
    return {"first_s": first, "later_s": statistics.median(later)}


def summary_worker(sweep_folder: str, repeats: int) -> dict:
    """sweep.write_summary of a sweep folder: the first call in this process, then again."""
    import contextlib
    import io

    t0 = time.perf_counter()
    from mnist_runner import sweep

    imported = time.perf_counter() - t0
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            sweep.write_summary(Path(sweep_folder))
        times.append(time.perf_counter() - t0)
    if not (Path(sweep_folder) / "sweep.png").exists():
        raise RuntimeError("write_summary drew no sweep.png")
    return {"import_s": imported, "first_s": times[0], "later_s": statistics.median(times[1:])}


def profile_worker(data_root: str, compile: bool) -> dict:
    """One LeNet-5 training step as the runner takes it (default threads, channels-last, SGD)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from mnist_runner.models import build_model
    from mnist_runner.speed import configure

    cfg = compose("lenet_full", f"dataset.root={data_root}", "device=cpu")
    speed = configure(cfg.trainer, torch.device("cpu"))
    x, y = (torch.from_numpy(a) for a in mnist_arrays(data_root, "train"))
    x, y = x[:, None], y.long()
    loss_fn = torch.nn.CrossEntropyLoss()

    def make(channels_last=True, **sgd):
        torch.manual_seed(0)
        model = build_model(cfg.model, (1, 28, 28), 10)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, **sgd)

        def step(index):
            loss = loss_fn(model(x.index_select(0, index).float().mul_(1 / 255)), y.index_select(0, index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss

        return model, step

    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    batches = [order[i * 100 % (len(order) - 99) :][:100] for i in range(60)]  # wraps around small data

    def ms_per_step(step) -> float:
        t0 = time.perf_counter()
        for b in batches[5:]:
            step(b)
        return (time.perf_counter() - t0) / (len(batches) - 5) * 1000

    def weights_after(model, step):
        for b in batches[:30]:
            step(b)
        return [p.detach().clone() for p in model.parameters()]

    model, step = make()
    reference = weights_after(model, step)
    with FlopCounterMode(display=False) as counter:
        step(batches[0])
    flops = counter.get_total_flops()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[:30]:
            step(b)
    categories = profile_categories(prof.key_averages(), 30)

    candidates = {
        "SGD foreach=True": lambda: make(foreach=True),
        "SGD fused=True": lambda: make(fused=True),
        "NCHW layout (channels_last=false)": lambda: make(channels_last=False),
        "oneDNN off (torch.backends.mkldnn)": make,
    }
    if compile:

        def compiled():
            model, step = make()
            return model, torch.compile(step)

        candidates["torch.compile of the whole step"] = compiled
    steps, variants = {"runner": (step, True)}, {}
    for name, build in candidates.items():
        mkldnn = not name.startswith("oneDNN off")
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            t0 = time.perf_counter()
            model, variant = build()
            same = all(torch.equal(a, b) for a, b in zip(reference, weights_after(model, variant)))
            variants[name] = {"identical": same, "first_s": time.perf_counter() - t0}
            steps[name] = (variant, mkldnn)
    times = {name: [] for name in steps}
    for _ in range(5):  # interleaved rounds: each variant next to the runner's step under the same load
        for name, (variant, mkldnn) in steps.items():
            with torch.backends.mkldnn.flags(enabled=mkldnn):
                times[name].append(ms_per_step(variant))
    runner_ms = statistics.median(times["runner"])
    for name in variants:
        variants[name]["ms"] = statistics.median(times[name])
        variants[name]["ratio"] = statistics.median(r / v for r, v in zip(times["runner"], times[name]))
    return {
        "threads": speed.threads,
        "ms": runner_ms,
        "flops": flops,
        "categories": categories,
        "variants": variants,
        "peak": peak_flops(speed.threads),
    }


# What each profiler op is part of, in the order asked about.
CATEGORIES = {
    "convolutions, forward": ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d"),
    "convolutions, backward": ("aten::convolution_backward", "ConvolutionBackward0"),
    "tanh, forward and backward": ("aten::tanh", "aten::tanh_backward", "TanhBackward0"),
    "average pooling, forward and backward": ("aten::avg_pool2d", "aten::avg_pool2d_backward", "AvgPool2DBackward0"),
    "linear layers (matmul), forward and backward": (
        "aten::addmm",
        "aten::mm",
        "AddmmBackward0",
        "aten::t",
        "MmBackward0",
    ),
    "loss (log-softmax, NLL), forward and backward": (
        "aten::_log_softmax",
        "aten::nll_loss",
        "aten::nll_loss_forward",
        "aten::_log_softmax_backward_data",
        "aten::nll_loss_backward",
        "LogSoftmaxBackward0",
        "NllLossBackward0",
    ),
    "optimizer (SGD step, zero_grad)": (
        "Optimizer.step#SGD.step",
        "aten::add_",
        "aten::_foreach_add_",
        "Optimizer.zero_grad#SGD.zero_grad",
    ),
    "batch gathering and scaling": ("aten::index_select", "aten::to", "aten::_to_copy", "aten::mul_"),
}


def profile_categories(averages, steps: int) -> dict:
    """Self CPU time per step (ms) of each category; the rest is autograd and Python overhead."""
    self_ms = {}
    for event in averages:
        self_ms[event.key] = self_ms.get(event.key, 0.0) + event.self_cpu_time_total / 1000 / steps
    total = sum(self_ms.values())
    out, seen = {}, set()
    for name, keys in CATEGORIES.items():
        out[name] = sum(self_ms.get(k, 0.0) for k in keys if k not in seen)
        seen.update(keys)
    out["everything else (autograd engine, views, Python)"] = total - sum(out.values())
    return out


def peak_flops(threads: int) -> dict:
    """The CPU's peak fp32 FLOP/s on `threads` cores: FMA width x FMA units x 2 x clock (an estimate)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vendor = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("vendor_id")), "")
    mhz = next((float(line.split(":", 1)[1]) for line in info.splitlines() if line.startswith("cpu MHz")), 0.0)
    if "avx512f" in flags:  # AMD Zen 4 runs AVX-512 on two 256-bit FMA pipes; Intel servers have two 512-bit
        lanes, units = (8, 2) if vendor == "AuthenticAMD" else (16, 2)
    elif "fma" in flags:
        lanes, units = 8, 2
    else:
        lanes, units = 4, 1
    per_cycle = lanes * units * 2
    return {
        "per_core_cycle": per_cycle,
        "ghz": mhz / 1000,
        "gflops": per_cycle * mhz / 1000 * threads,
        "how": f"{units} FMA units x {lanes} fp32 lanes x 2 x {mhz / 1000:.2f} GHz x {threads} cores",
    }


# --- the driver -------------------------------------------------------------------------------


class Versions:
    """The code versions measured: ("after", this checkout) and, when given, ("before", PATH)."""

    def __init__(self, before: str | None):
        self.items = [("after", ROOT)]
        if before:
            path = Path(before).resolve()
            if not (path / "mnist_runner").is_dir():
                raise SystemExit(f"--before {before}: no mnist_runner/ there")
            self.items.insert(0, ("before", path))


def training(args, versions: Versions, work: Path, busy: bool = False) -> list[dict]:
    """One row per (model, loop, version, threads): the epoch seconds of every repeat."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = [int(t) for t in args.threads.split(",") if t] or list(range(1, cores + 1))
    base = {
        "data_root": str(Path(args.data_root).resolve()),
        "device": args.device,
        "steps": args.steps,
        "warmup": args.warmup,
    }
    legs = []  # (model, loop, version, overrides, prepare)
    for i, model in enumerate(args.models[:1] if busy else args.models):
        legs.append((model, "seed", "", [], False))
        if not busy:
            legs.append((model, "bare", "after", [], True))
        for version, _ in versions.items:
            legs.append((model, "runner", version, [], True))
            if i == 0 and version == "after":
                legs += [(model, "runner", version, [f"trainer.threads={t}"], True) for t in threads]
    results = {leg[:3] + (tuple(leg[3]),): [] for leg in legs}
    code = dict(versions.items)
    hog = None
    try:
        if busy:  # one other busy process for the whole section
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        default = {}  # model -> the threads the runner chose by default
        for repeat in range(args.repeats):
            for model, loop, version, overrides, prepare in legs:
                if overrides == [f"trainer.threads={default.get(model)}"]:
                    continue  # the default's own count: measured already
                params = {
                    **base,
                    "leg": loop,
                    "model": model,
                    "prepare": prepare,
                    "overrides": [f"trainer.epochs={args.runner_epochs}", *overrides],
                }
                r = spawn_worker(code.get(version, ROOT), "train", params, work)
                results[(model, loop, version, tuple(overrides))].append(r)
                if loop == "runner" and version == "after" and not overrides:
                    default[model] = r["threads"]
                print(
                    f"{'busy ' if busy else ''}repeat {repeat + 1}/{args.repeats} {model} {loop} {version} "
                    f"{' '.join(overrides)}: epoch {statistics.median(r['epoch_s']):.2f} s, {r['threads']} threads",
                    flush=True,
                )
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    rows = []
    for (model, loop, version, overrides), runs in results.items():
        if not runs:
            continue
        epochs = [e for r in runs for e in r["epoch_s"]]
        rows.append(
            {
                "model": model,
                "loop": loop,
                "version": version,
                "overrides": list(overrides),
                "epoch_s": statistics.median(epochs),
                "threads": runs[0]["threads"],
                "train_ips": statistics.median(r["train_ips"] for r in runs) if "train_ips" in runs[0] else None,
                "rss_mb": max(r["rss_mb"] for r in runs),
            }
        )
    return rows


FIRST_STEP = """
import os, sys, time
try:
    from mnist_runner import cpu
    cpu.prepare()
except ImportError:
    pass
import mnist_runner.run as run
def first_step(*a, **k):
    print(f"FIRST_STEP {time.time():.6f}", flush=True)
    os._exit(0)
run.train_one_epoch = first_step
sys.argv = ["mnist_runner", *sys.argv[1:]]
from mnist_runner.train import main
main()
"""


def startup(args, versions: Versions, work: Path) -> dict:
    """Medians of: import torch; import torch and torch._dynamo; each version's command to its first step."""
    data = f"dataset.root={Path(args.data_root).resolve()}"
    times = {"import torch": [], "import torch, torch._dynamo": []}
    times.update({f"first step ({v})": [] for v, _ in versions.items})
    for repeat in range(args.repeats):
        times["import torch"].append(run_process([sys.executable, "-c", "import torch"], work, ROOT)[0])
        times["import torch, torch._dynamo"].append(
            run_process([sys.executable, "-c", "import torch, torch._dynamo"], work, ROOT)[0]
        )
        for version, code in versions.items:
            run_dir = f"hydra.run.dir={work / f'first_{version}_{repeat}'}"
            cmd = [
                sys.executable,
                "-c",
                FIRST_STEP,
                "model=lenet_full",
                data,
                "device=cpu",
                "trainer.progress=false",
                run_dir,
            ]
            t0 = time.time()
            out = run_process(cmd, work, code)[1]
            stamp = [line for line in out.splitlines() if line.startswith("FIRST_STEP ")]
            if not stamp:
                raise RuntimeError(f"{version}: no training step was reached:\n{out[-2000:]}")
            times[f"first step ({version})"].append(float(stamp[-1].split()[1]) - t0)
        print(f"start-up repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    return {k: statistics.median(v) for k, v in times.items()}


def sweep(args, versions: Versions, work: Path) -> dict:
    """Per version: median wall and summed epoch seconds of each sweep size, and the overhead per job."""
    small, large = (int(n) for n in args.sweep_jobs.split(","))
    data = f"dataset.root={Path(args.data_root).resolve()}"
    found = {(v, n): [] for v, _ in versions.items for n in (small, large)}
    folders = {}
    for repeat in range(args.repeats):
        for version, code in versions.items:
            for n in (small, large):
                folder = work / f"sweep_{version}_{n}_{repeat}"
                lrs = ",".join(f"{0.01 * (i + 1):.2f}" for i in range(n))
                cmd = [
                    sys.executable,
                    "-m",
                    "mnist_runner",
                    "-m",
                    "model=mlp_128",
                    "trainer.epochs=1",
                    f"optimizer.lr={lrs}",
                    "device=cpu",
                    "trainer.progress=false",
                    data,
                    f"hydra.sweep.dir={folder}",
                ]
                wall = run_process(cmd, work, code)[0]
                epochs = [epoch_seconds(m) for m in sorted(folder.glob("*/metrics.csv"))]
                if len(epochs) != n:
                    raise RuntimeError(f"{folder}: {len(epochs)} of {n} jobs recorded an epoch")
                found[(version, n)].append((wall, sum(epochs)))
                folders[version] = folder
                print(
                    f"sweep repeat {repeat + 1} {version} {n} jobs: {wall:.1f} s wall, epochs {sum(epochs):.1f} s",
                    flush=True,
                )
    out = {}
    for version, _ in versions.items:
        pairs = zip(found[(version, small)], found[(version, large)])
        per_job = [((w2 - w1) - (e2 - e1)) / (large - small) for (w1, e1), (w2, e2) in pairs]
        out[version] = {
            "small": statistics.median(w for w, _ in found[(version, small)]),
            "large": statistics.median(w for w, _ in found[(version, large)]),
            "small_epochs": statistics.median(e for _, e in found[(version, small)]),
            "large_epochs": statistics.median(e for _, e in found[(version, large)]),
            "per_job": statistics.median(per_job),
            "folder": str(folders[version]),
        }
    out["jobs"] = (small, large)
    return out


def epoch_seconds(metrics: Path) -> float:
    """The summed epoch_seconds column of a metrics.csv."""
    header, *rows = metrics.read_text().splitlines()
    column = header.split(",").index("epoch_seconds")
    return sum(float(row.split(",")[column]) for row in rows)


def one_run(args, work: Path) -> Path:
    """A finished 1-epoch mlp_128 run folder (with plots), for the plots and summary sections."""
    folder = work / "one_run"
    if not (folder / "confusion_matrix.csv").exists():
        cmd = [
            sys.executable,
            "-m",
            "mnist_runner",
            "model=mlp_128",
            "trainer.epochs=1",
            "device=cpu",
            "trainer.progress=false",
            f"dataset.root={Path(args.data_root).resolve()}",
            f"hydra.run.dir={folder}",
        ]
        run_process(cmd, work, ROOT)
    return folder


def fake_sweep(run: Path, folder: Path, jobs: int) -> Path:
    """`jobs` copies of a run folder as a sweep over optimizer.lr, each with its own curves."""
    from mnist_runner.run_folder import RunFolder

    for i in range(jobs):
        lr = f"{0.01 * (i + 1):.2f}"
        job = folder / f"{i}_optimizer.lr={lr}"
        shutil.copytree(run, job, ignore=shutil.ignore_patterns("*.pt", "checkpoints", "plots"))
        overrides = job / ".hydra" / "overrides.yaml"
        overrides.write_text(overrides.read_text() + f"- optimizer.lr={lr}\n")
        summary = RunFolder(job).summary()
        summary["overrides"].append(f"optimizer.lr={lr}")
        summary["final"]["test_acc"] += 0.001 * i
        RunFolder(job).write_summary(summary)
        lines = (job / "metrics.csv").read_text().splitlines()
        first = lines[1].split(",")
        rows = [",".join([str(e), *(f"{float(v) * (1 + 0.01 * e * i):.6g}" for v in first[1:])]) for e in range(1, 6)]
        (job / "metrics.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    return folder


def medians_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def repeated(args, versions: Versions, work: Path, kind: str, params_of) -> dict:
    found = {v: [] for v, _ in versions.items}
    for repeat in range(args.repeats):
        for version, code in versions.items:
            found[version].append(spawn_worker(code, kind, params_of(version, repeat), work))
            print(f"{kind} repeat {repeat + 1} {version}: {found[version][-1]}", flush=True)
    return {v: medians_of(r) for v, r in found.items()}


# --- the report -------------------------------------------------------------------------------


def machine() -> str:
    cpu, memory = platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
        kb = int(
            next(
                line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
            ).split()[1]
        )
        memory = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores{memory}"


def fmt(value, digits=2, unit=" s") -> str:
    return "" if value is None else f"{value:.{digits}f}{unit}"


def measured_on(args, loads: tuple, argv: list[str], how: str | None = None) -> list[str]:
    """A block's first lines: when, on what, under what load, how often each number was measured (`how`;
    by default medians of the interleaved repeats), and the command that measured it."""
    import torch

    once = "every number was measured once"
    how = how or (once if args.repeats == 1 else f"every number is a median of {args.repeats} interleaved repeats")
    return [
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; Python "
        f"{platform.python_version()}, torch {torch.__version__}. Load average (1 min) {loads[0]:.1f} at the start, "
        f"{loads[1]:.1f} at the end: **a shared machine**, other work ran alongside, so {how} and ratios measured "
        "side by side mean more than absolute times.",
        "",
        "```bash",
        shlex.join(["python", "benchmarks/benchmark.py", *argv]),
        "```",
    ]


def report(args, results: dict, versions: Versions, loads: tuple, argv: list[str]) -> str:
    has_before = len(versions.items) == 2
    lines = [BEGIN, *measured_on(args, loads, argv)]
    if has_before:
        lines += ["", f"before: `{versions.items[0][1]}`; after: this checkout."]
    targets = []

    def target(what, before, after, ok):
        targets.append(f"| {what} | {before} | {after} | {'yes' if ok else 'NO'} |")

    if "sweep" in results:
        s = results["sweep"]
        small, large = s["jobs"]
        lines += [
            "",
            f"**In-process sweep** of 1-epoch `mlp_128` runs, plots on (`-m optimizer.lr=...`): wall time of the "
            f"whole command; overhead per job = (wall difference - difference of the summed epoch_seconds) / "
            f"{large - small}.",
            "",
            f"| version | wall, {small} jobs | wall, {large} jobs | summed epochs, {small} / {large} jobs "
            "| overhead per job |",
            "|---|---:|---:|---:|---:|",
        ]
        for v, _ in versions.items:
            r = s[v]
            epochs = f"{r['small_epochs']:.1f} / {r['large_epochs']:.1f} s"
            lines.append(f"| {v} | {fmt(r['small'], 1)} | {fmt(r['large'], 1)} | {epochs} | {fmt(r['per_job'])} |")
        target(
            "per-job overhead of an in-process sweep with plots",
            fmt(s.get("before", {}).get("per_job")),
            fmt(s["after"]["per_job"]),
            s["after"]["per_job"] <= 0.5,
        )
    if "plots" in results:
        p = results["plots"]
        lines += [
            "",
            "**The six plots of a run** (loss, accuracy, samples, predictions, misclassified, confusion matrix):",
            "",
            "| version | first in a process (imports matplotlib) | later (a sweep's later jobs) |",
            "|---|---:|---:|",
        ]
        lines += [f"| {v} | {fmt(p[v]['first_s'])} | {fmt(p[v]['later_s'])} |" for v, _ in versions.items]
        before = p.get("before", {})
        target(
            "the six plots of a run, first in a process",
            fmt(before.get("first_s")),
            fmt(p["after"]["first_s"]),
            p["after"]["first_s"] <= 1,
        )
        target(
            "the six plots of a run, later",
            fmt(before.get("later_s")),
            fmt(p["after"]["later_s"]),
            p["after"]["later_s"] <= 1,
        )
    if "summary" in results:
        p = results["summary"]
        lines += [
            "",
            f"**The sweep summary** of {args.summary_jobs} jobs (sweep_summary.csv, .md, sweep.png):",
            "",
            "| version | import sweep.py | first call in a process | later |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {v} | {fmt(p[v]['import_s'])} | {fmt(p[v]['first_s'])} | {fmt(p[v]['later_s'])} |"
            for v, _ in versions.items
        ]
        before = p.get("before", {})
        target(
            f"sweep summary of {args.summary_jobs} jobs, first call",
            fmt(before.get("first_s")),
            fmt(p["after"]["first_s"]),
            p["after"]["first_s"] <= 1,
        )
        target(
            f"sweep summary of {args.summary_jobs} jobs, later",
            fmt(before.get("later_s")),
            fmt(p["after"]["later_s"]),
            p["after"]["later_s"] <= 1,
        )
    if "startup" in results:
        s = results["startup"]
        lines += ["", "**Start-up** (subprocesses, wall time):", "", "| what | seconds |", "|---|---:|"]
        lines += [
            f"| `{k}` | {v:.2f} |" if k.startswith("import") else f"| command to the {k} | {v:.2f} |"
            for k, v in s.items()
        ]
        torch_s = s["import torch"]
        after = s["first step (after)"] - torch_s
        before = s.get("first step (before)")
        target(
            "command to first step, beyond `import torch`",
            fmt(before - torch_s if before else None),
            fmt(after),
            after <= 0.8,
        )
    for section in ("training", "busy"):
        if section not in results:
            continue
        rows = results[section]
        title = "**Training**" if section == "training" else "**Training with one other busy process** (a Python loop)"
        lines += [
            "",
            f"{title}: one epoch of training plus one evaluation of the test split (seed, bare: computed from "
            f"{args.steps} timed steps and an evaluation; runner: {args.runner_epochs} epochs per call).",
            "",
            "| model | loop | version | threads | epoch s | vs seed |",
            "|---|---|---|---:|---:|---:|",
        ]
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model]
            seed = next(r for r in mine if r["loop"] == "seed")
            for r in mine:
                how = "default" if not r["overrides"] else ", ".join(r["overrides"])
                label = r["loop"] if r["loop"] != "runner" else f"runner, {how}"
                lines.append(
                    f"| {model} | {label} | {r['version']} | {r['threads']} | {r['epoch_s']:.2f} | "
                    f"{seed['epoch_s'] / r['epoch_s']:.2f}x |"
                )
            default = next(
                (r for r in mine if r["loop"] == "runner" and r["version"] == "after" and not r["overrides"]), None
            )
            best = min(
                (r for r in mine if r["loop"] == "runner" and r["version"] == "after"), key=lambda r: r["epoch_s"]
            )
            old = next((r for r in mine if r["loop"] == "runner" and r["version"] == "before"), None)
            if default and model == rows[0]["model"]:
                where = "" if section == "training" else ", one other busy process"
                target(
                    f"{model} default epoch vs the seed loop{where}",
                    fmt(seed["epoch_s"] / old["epoch_s"], 2, "x") if old else "",
                    fmt(seed["epoch_s"] / default["epoch_s"], 2, "x"),
                    seed["epoch_s"] / default["epoch_s"] >= 2,
                )
                ratio = default["epoch_s"] / best["epoch_s"]
                target(
                    f"{model} default epoch vs the best thread count ({best['threads']}){where}",
                    fmt(old["epoch_s"] / best["epoch_s"], 2, "x") if old else "",
                    fmt(ratio, 2, "x"),
                    ratio <= 1.3,
                )
    if "profile" in results:
        lines += profile_lines(results["profile"])
    if targets:
        lines += ["", "| target | before | after | met |", "|---|---:|---:|---|", *targets]
    lines.append(END)
    return "\n".join(lines)


def profile_lines(p: dict) -> list[str]:
    gflops = p["flops"] / p["ms"] / 1e6
    peak = p["peak"]
    lines = [
        "",
        f"**One LeNet-5 training step** (batch 100, {p['threads']} threads, channels-last, SGD; torch.profiler self "
        f"CPU time over 30 steps): {p['ms']:.2f} ms per step untraced; {p['flops'] / 1e6:.0f} MFLOP per step "
        f"(convolutions and matrix products, forward and backward, counted by torch.utils.flop_counter) -> "
        f"**{gflops:.1f} GFLOP/s, {100 * gflops / peak['gflops']:.1f}% of the CPU's fp32 peak** of "
        f"{peak['gflops']:.0f} GFLOP/s ({peak['how']}; an estimate from /proc/cpuinfo).",
        "",
        "| part of the step | ms per step (profiled) | share |",
        "|---|---:|---:|",
    ]
    total = sum(p["categories"].values())
    lines += [f"| {k} | {v:.2f} | {100 * v / total:.0f}% |" for k, v in p["categories"].items()]
    lines += [
        "",
        "Step variants, timed in 5 interleaved rounds of 55 steps (vs the runner's: the median ratio of the rounds):",
        "",
        "| step variant | ms per step | vs the runner's | weights after 30 steps |",
        "|---|---:|---:|---|",
    ]
    lines.append(f"| the runner's step | {p['ms']:.2f} | 1.00x | |")
    for name, v in p["variants"].items():
        same = "bit-identical" if v["identical"] else "differ"
        lines.append(f"| {name} | {v['ms']:.2f} | {v['ratio']:.2f}x | {same} |")
    return lines


def own_block(name: str, body: list[str], targets: list[str], header: list[str]) -> str:
    """The block of a section of BLOCKS: its header, its lines, its targets."""
    if targets:
        body = [*body, "", "| target | | measured | met |", "|---|---|---:|---|", *targets]
    return "\n".join([f"<!-- benchmark:{name}:begin -->", *header, "", *body, f"<!-- benchmark:{name}:end -->"])


def write_block(path: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        print(RESULT + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    versions = Versions(args.before)
    loads = [os.getloadavg()[0]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_root = str(Path(args.data_root).resolve())
        if "startup" in args.only:
            results["startup"] = startup(args, versions, work)
        if "sweep" in args.only:
            results["sweep"] = sweep(args, versions, work)
        if "plots" in args.only:
            run = one_run(args, work)
            results["plots"] = repeated(
                args,
                versions,
                work,
                "plots",
                lambda v, r: {"run_folder": str(run), "data_root": data_root, "repeats": 3},
            )
        if "summary" in args.only:
            run = one_run(args, work)
            folders = {
                (v, r): fake_sweep(run, work / f"summary_{v}_{r}", args.summary_jobs)
                for v, _ in versions.items
                for r in range(args.repeats)
            }
            results["summary"] = repeated(
                args, versions, work, "summary", lambda v, r: {"sweep_folder": str(folders[(v, r)]), "repeats": 3}
            )
        if "profile" in args.only:
            results["profile"] = spawn_worker(
                ROOT, "profile", {"data_root": data_root, "compile": args.compile, "prepare": True}, work
            )
        if "training" in args.only:
            results["training"] = training(args, versions, work)
        if "busy" in args.only:
            results["busy"] = training(args, versions, work, busy=True)
        for name, module in BLOCKS.items():
            if name in args.only:
                load = os.getloadavg()[0]
                measure = spawn_worker if name == "steps" else run_process
                result = getattr(module, name)(args, work, measure)
                header = measured_on(args, (load, os.getloadavg()[0]), argv, getattr(module, "HOW", {}).get(name))
                block = own_block(name, *module.LINES[name](result), header)
                write_block(Path(args.out), block, f"<!-- benchmark:{name}:begin -->", f"<!-- benchmark:{name}:end -->")
                print(block)
    if any(name in args.only for name in SECTIONS if name not in BLOCKS):
        loads.append(os.getloadavg()[0])
        block = report(args, results, versions, tuple(loads), argv)
        write_block(Path(args.out), block)
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
