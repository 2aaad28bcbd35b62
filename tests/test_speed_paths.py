"""Speed paths (issue 6): trainer.threads / channels_last / compile / amp, the sync-free loss reader,
and benchmarks/benchmark.py end to end on fixture data. Nothing here asserts how fast anything is."""

import csv
import importlib.util
import math
import warnings

import pytest
import torch
from conftest import ROOT, compose_config, run_cli_in_process, run_in_process

from mnist_runner.data import load_data
from mnist_runner.loops import Diverged, HostReader, evaluate, train_one_epoch
from mnist_runner.losses import build_loss
from mnist_runner.models import build_model
from mnist_runner.speed import Speed, _cpp_compiler, cpu_threads

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def keep_threads():
    """A run sets the process's intra-op threads; leave them as other tests expect."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def metrics(folder):
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


def assert_same_training(a, b, tol=1e-4):
    """Two runs' metrics agree: the speed setting changed how, not what, was computed."""
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b):
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), abs=tol), key


def test_default_speed_settings_are_recorded_and_applied(tmp_path, data_root):
    summary = run_in_process(tmp_path / "run", data_root, "trainer.epochs=1", "report.plots=false")
    assert summary["status"] == "completed"
    threads, chosen_by = cpu_threads()  # every core of this machine, unless the environment says otherwise
    other_work = summary["speed"].pop("other_work")  # cores other processes kept busy meanwhile
    assert other_work is None or other_work >= 0
    assert summary["speed"] == {
        "threads": threads,
        "channels_last": True,
        "compile": False,
        "amp": False,
        "threads_from": chosen_by,
        "bf16": None,  # no bf16 autocast: no hardware to name
    }
    assert torch.get_num_threads() == threads
    # model.pt is the plain model's state_dict, whatever layout it trained in
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    fresh = build_model(compose_config("model=lenet_full").model, (1, 28, 28), 10)
    assert state.keys() == fresh.state_dict().keys()
    fresh.load_state_dict(state)


@pytest.mark.slow
def test_threads_and_channels_last_change_speed_not_results(tmp_path, data_root):
    base = run_in_process(
        tmp_path / "a",
        data_root,
        "trainer.epochs=2",
        "report.plots=false",
        "trainer.threads=1",
        "trainer.channels_last=false",
    )
    other = run_in_process(
        tmp_path / "b",
        data_root,
        "trainer.epochs=2",
        "report.plots=false",
        "trainer.threads=2",
        "trainer.channels_last=true",
    )
    assert base["status"] == other["status"] == "completed"
    assert (base["speed"]["threads"], base["speed"]["channels_last"]) == (1, False)
    assert (other["speed"]["threads"], other["speed"]["channels_last"]) == (2, True)
    assert torch.get_num_threads() == 2
    assert_same_training(metrics(tmp_path / "a"), metrics(tmp_path / "b"))


@pytest.mark.slow
@pytest.mark.skipif(_cpp_compiler() is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compile_trains_the_same_model_and_saves_plain_weights(tmp_path, data_root):
    common = ("model=softmax", "trainer.epochs=1", "report.plots=false")
    eager = run_in_process(tmp_path / "eager", data_root, *common)
    compiled = run_in_process(tmp_path / "compiled", data_root, *common, "trainer.compile=true")
    assert compiled["status"] == "completed" and compiled["speed"]["compile"] is True
    assert_same_training(metrics(tmp_path / "eager"), metrics(tmp_path / "compiled"))
    state = torch.load(tmp_path / "compiled" / "model.pt", weights_only=True)
    assert not any(k.startswith("_orig_mod") for k in state)  # not the compiled wrapper's keys
    assert eager["params"] == compiled["params"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, expected",
    [
        ("trainer.threads=0", "trainer.threads=0 is not allowed; it must be an integer >= 1"),
        ("trainer.threads=two", "trainer.threads='two' is not allowed"),
        (
            "trainer.compile=maybe",
            "trainer.compile='maybe' is not allowed; it must be true, false or a torch.compile mode",
        ),
        ("trainer.channels_last=1", "trainer.channels_last=1 is not allowed; it must be true or false"),
    ],
)
def test_bad_speed_settings_are_one_clear_error(tmp_path, data_root, override, expected):
    result = run_cli_in_process(tmp_path, data_root, override)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert not list(tmp_path.rglob("metrics.csv"))  # refused before training


def small_job(data_root, *overrides):
    cfg = compose_config(f"dataset.root={data_root}", "device=cpu", *overrides)
    data = load_data(cfg.dataset, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    loss_fn = build_loss(cfg.loss)
    return data, model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)


def test_autocast_path_trains_and_evaluates_on_the_cpu(data_root):
    """The CUDA amp code (the Autocast wrapper) run with device cpu, as far as the CPU allows."""
    data, model, loss_fn, optimizer = small_job(data_root)
    forward = Speed(threads=1, channels_last=True, compile=False, amp=True).forward_model(model)
    before = [p.detach().clone() for p in model.parameters()]
    x = data.prepare(data.test.images[:4])
    assert forward(x).dtype == torch.float32  # logits come back as float32 for the loss
    stats = train_one_epoch(
        forward, data, loss_fn, optimizer, batch_size=50, generator=torch.Generator().manual_seed(0), log_interval=2
    )
    assert math.isfinite(stats.loss) and 0 <= stats.acc <= 1
    assert [s for s, _ in stats.steps] == [2, 4, 6]
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the plain model learned
    loss, acc = evaluate(forward, data, data.test, loss_fn, 1000)
    assert math.isfinite(loss) and 0 <= acc <= 1


class FakeEvent:
    """Stands in for a CUDA event: done once the 'GPU' got there."""

    def __init__(self):
        self.done, self.waited = False, False

    def query(self):
        return self.done

    def synchronize(self):
        self.waited = self.done = True


def test_host_reader_never_waits_mid_epoch_and_reads_in_order():
    reader = HostReader(torch.device("cpu"))
    first, second = FakeEvent(), FakeEvent()
    reader.pending.extend([(10, torch.tensor(1.5), first), (20, torch.tensor(float("nan")), second)])
    assert list(reader.ready()) == []  # the GPU is not there yet: nothing read, nothing waited for
    assert not first.waited
    first.done = True
    assert list(reader.ready()) == [(10, 1.5)]
    assert list(reader.ready()) == []
    ((step, value),) = reader.ready(wait=True)  # epoch end: wait for the rest
    assert step == 20 and math.isnan(value) and second.waited and not reader.pending
    reader.push(30, torch.tensor(2.0))  # on the CPU a pushed loss is readable at once
    assert list(reader.ready()) == [(30, 2.0)]


def test_a_nan_loss_stops_training_at_its_step(data_root):
    data, model, loss_fn, optimizer = small_job(data_root)

    class NaNAtStep3:
        calls = 0

        def __call__(self, logits, labels):
            self.calls += 1
            loss = loss_fn(logits, labels)
            return loss * float("nan") if self.calls == 3 else loss

        def correct(self, logits, labels):
            return loss_fn.correct(logits, labels)

    with pytest.raises(Diverged) as caught:
        train_one_epoch(
            model,
            data,
            NaNAtStep3(),
            optimizer,
            batch_size=50,
            generator=torch.Generator().manual_seed(0),
            log_interval=100,
            first_step=40,
        )
    assert caught.value.step == 43 and math.isnan(caught.value.loss)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "benchmarks" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_writes_its_block(tmp_path, data_root):
    """benchmarks/benchmark.py on fixture data, every cheap section, "before" being this checkout too."""
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nintro\n\n<!-- benchmark:begin -->\nold\n<!-- benchmark:end -->\n\nafter\n")
    argv = [
        "--data-root",
        str(data_root),
        "--before",
        str(ROOT),
        "--only",
        "training,startup,plots,summary",
        "--models",
        "mlp_128",
        "--threads",
        "1,2",
        "--repeats",
        "1",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--runner-epochs",
        "1",
        "--summary-jobs",
        "3",
        "--out",
        str(out),
    ]
    assert load_benchmark().main(argv) == 0
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n<!-- benchmark:begin -->") and "\nold\n" not in text
    assert text.rstrip().endswith("<!-- benchmark:end -->\n\nafter")
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| mlp_128 |")
    ]
    loops = {(r[1], r[2]) for r in rows}
    assert {("seed", ""), ("bare", "after"), ("runner, default", "after"), ("runner, default", "before")} <= loops
    assert any(loop.startswith("runner, trainer.threads=") for loop, _ in loops)  # the count(s) not the default's
    assert all(int(r[3]) >= 1 and float(r[4]) >= 0 for r in rows)  # threads, epoch seconds (tiny data)
    for heading in (
        "**The six plots of a run**",
        "**The sweep summary** of 3 jobs",
        "command to the first step (after)",
    ):
        assert heading in text
    assert "| command to first step, beyond `import torch` |" in text and "| target | before | after | met |" in text
    assert "python benchmarks/benchmark.py --data-root" in text  # the command that reproduces it


def test_benchmark_report_states_every_target():
    """The report's text from given results (no measuring): tables, targets, before and after."""
    bench = load_benchmark()
    args = bench.parse_args(["--before", str(ROOT), "--repeats", "2"])
    versions = bench.Versions(str(ROOT))
    run = {"epoch_s": 6.0, "threads": 2, "train_ips": None, "rss_mb": 900}
    training = [
        {**run, "model": "lenet_full", "loop": "seed", "version": "", "overrides": [], "epoch_s": 12.0},
        {
            **run,
            "model": "lenet_full",
            "loop": "runner",
            "version": "before",
            "overrides": [],
            "threads": 1,
            "epoch_s": 9,
        },
        {**run, "model": "lenet_full", "loop": "runner", "version": "after", "overrides": []},
        {
            **run,
            "model": "lenet_full",
            "loop": "runner",
            "version": "after",
            "overrides": ["trainer.threads=1"],
            "epoch_s": 9,
        },
    ]
    results = {
        "training": training,
        "startup": {
            "import torch": 2.0,
            "import torch, torch._dynamo": 3.4,
            "first step (before)": 5.0,
            "first step (after)": 4.0,
        },
        "sweep": {
            "jobs": (2, 6),
            "before": {"small": 20, "large": 46, "small_epochs": 2, "large_epochs": 6, "per_job": 5.5},
            "after": {"small": 10, "large": 16.8, "small_epochs": 2, "large_epochs": 6.5, "per_job": 0.45},
        },
        "plots": {"before": {"first_s": 4.0, "later_s": 3.0}, "after": {"first_s": 0.9, "later_s": 0.5}},
        "summary": {v: {"import_s": 0.2, "first_s": 1.5, "later_s": 0.6} for v in ("before", "after")},
    }
    text = bench.report(args, results, versions, (1.0, 2.0), "python benchmarks/benchmark.py")
    assert "| per-job overhead of an in-process sweep with plots | 5.50 s | 0.45 s | yes |" in text
    assert "| the six plots of a run, later | 3.00 s | 0.50 s | yes |" in text
    assert "| sweep summary of 20 jobs, first call | 1.50 s | 1.50 s | NO |" in text
    assert "| command to first step, beyond `import torch` | 3.00 s | 2.00 s | NO |" in text
    assert "| lenet_full default epoch vs the seed loop | 1.33x | 2.00x | yes |" in text
    assert "| lenet_full default epoch vs the best thread count (2) | 1.50x | 1.00x | yes |" in text
    assert "| lenet_full | runner, trainer.threads=1 | after | 2 | 9.00 | 1.33x |" in text


@pytest.mark.slow
def test_the_time_to_model_sections_run_end_to_end_and_write_their_blocks(tmp_path, data_root):
    """benchmark.py's fast, bf16, parallel and steps sections on fixture data, each in its own block."""
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n<!-- benchmark:fast:begin -->\nold\n<!-- benchmark:fast:end -->\n\nafter\n")
    argv = ["--data-root", str(data_root), "--only", "fast,bf16,parallel,steps", "--repeats", "1", "--steps", "3"]
    argv += ["--fast-seeds", "2", "--bf16-runs", "model=mlp_128", "--bf16-seeds", "1", "--out", str(out)]
    argv += ["--parallel-runs", "model=mlp_128 trainer.epochs=1", "--step-variants", "as the preset runs,1 thread"]
    assert load_benchmark().main(argv) == 0
    text = out.read_text()
    assert "\nold\n" not in text and "<!-- benchmark:fast:end -->\n\nafter\n" in text  # replaced in place
    for name in ("fast", "bf16", "parallel", "steps"):
        assert text.count(f"<!-- benchmark:{name}:begin -->") == 1 == text.count(f"<!-- benchmark:{name}:end -->")
    seeds = [line for line in text.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert len(seeds) == 2 and all(line.count("%") == 2 for line in seeds)  # both loops' accuracies, per seed
    assert "| mnist_fast, whole command vs the bare loop |" in text
    assert "so each seed ran once, the bare loop and the runner back to back and" in text  # not "a median of"
    assert "so every number was measured once and" in text  # parallel and steps, with --repeats 1
    assert text.count("| `model=mlp_128` | 10 |") == 2  # with and without bf16
    assert "| `model=mlp_128 trainer.epochs=1` | side by side (joblib n_jobs=" in text
    assert "| LeNet-5 (the default run) (batch 100) | 1 thread | 1 |" in text
    assert "| the fast preset (batch 128) | as the preset runs |" in text


def test_the_fast_section_states_its_targets():
    """The fast block's text from given results: per-seed rows, the medians, the three targets."""
    bench = load_benchmark()
    rows = [
        {"seed": s, "bare_s": 5.0, "bare_loop_s": 3.0, "bare_acc": 0.991, "runner_s": 6.0 + s, "runner_epoch_s": 3.1,
         "runner_acc": acc, "threads": 2, "bf16": "avx512_bf16 (AMD EPYC)"}
        for s, acc in enumerate([0.9912, 0.9905, 0.9879])
    ]  # fmt: skip
    lines, targets = bench.time_to_model.fast_lines({"rows": rows})
    assert "| 0 | 5.00 (3.00) | 99.10% | 6.00 (3.10) | 99.12% | 1.20x |" in lines
    assert "| median | 5.00 | mean 99.10% | 7.00 | mean 98.99%, min 98.79% | 1.40x |" in lines
    assert targets == [
        "| mnist_fast, whole command vs the bare loop | | 1.40x | NO |",
        "| mnist_fast, mean test accuracy over 3 seeds (>= 99.0%) | | 98.99% | NO |",
        "| mnist_fast, lowest seed (>= 98.8%) | | 98.79% | NO |",
    ]


# --- CUDA (benchmarks/gpu_check.sh runs these with -m cuda) --------------------------------------


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("extra", [(), ("trainer.amp=true",), ("trainer.amp=true", "trainer.compile=true")])
def test_cuda_epochs_with_speed_options(tmp_path, data_root, extra):
    import json

    from mnist_runner.run import run

    cfg = compose_config(
        f"dataset.root={data_root}",
        "device=cuda",
        "trainer.progress=false",
        "trainer.epochs=2",
        "report.plots=false",
        *extra,
    )
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    run(cfg, tmp_path / "run", choices, list(extra))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["device"].startswith("cuda")
    assert summary["speed"]["amp"] is ("trainer.amp=true" in extra)
    assert 0 <= summary["final"]["test_acc"] <= 1


@pytest.mark.cuda
@needs_cuda
def test_cuda_step_loop_syncs_per_epoch_not_per_step(data_root):
    """The synchronizing calls of an epoch do not grow with its number of steps."""
    cfg = compose_config(f"dataset.root={data_root}", "device=cuda")
    device = torch.device("cuda")
    data = load_data(cfg.dataset, device)

    def syncs(batch_size):
        torch.manual_seed(0)
        model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = build_loss(cfg.loss).to(device)
        train_one_epoch(
            model,
            data,
            loss_fn,
            optimizer,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(0),
            log_interval=1,
        )  # warm-up
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                stats = train_one_epoch(
                    model,
                    data,
                    loss_fn,
                    optimizer,
                    batch_size=batch_size,
                    generator=torch.Generator().manual_seed(1),
                    log_interval=1,
                )
            finally:
                torch.cuda.set_sync_debug_mode("default")
        assert len(stats.steps) == -(-len(data.train) // batch_size)  # every step's loss was read
        return sum("synchroniz" in str(w.message) for w in caught)

    assert syncs(100) == syncs(10)  # 3 steps or 30: the same per-epoch syncs
