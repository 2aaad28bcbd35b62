"""`python -m mnist_runner.compare` on hand-made run folders: columns, options, broken files."""

import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import ROOT

from mnist_runner import compare
from mnist_runner.results.figures import legend_labels
from mnist_runner.results.runs import read_runs


def make_run(
    folder,
    *,
    status="completed",
    choices=None,
    overrides=(),
    accs=(0.9, 0.95),
    losses=None,
    config=None,
    summary_extra=None,
    metrics=True,
):
    """A run folder as the runner leaves it: summary.json, metrics.csv, .hydra/config.yaml."""
    folder.mkdir(parents=True)
    choices = {"logger": "none", "optimizer": "sgd", "model": "lenet_full", **(choices or {})}
    losses = losses or [round(1 - a, 4) for a in accs]
    summary = {
        "status": status,
        "choices": choices,
        "overrides": list(overrides),
        "params": {"total": 61706, "trainable": 61706},
        "epochs_completed": len(accs),
        "seed": 0,
    }
    if accs and status != "running":
        summary.update(
            final={"train_loss": 0.1, "train_acc": 0.97, "test_loss": losses[-1], "test_acc": accs[-1]},
            best_test_acc=max(accs),
            best_epoch=1 + accs.index(max(accs)),
            wall_seconds=12.5,
        )
    summary.update(summary_extra or {})
    (folder / "summary.json").write_text(json.dumps(summary))
    if metrics:
        lines = ["epoch,train_loss,train_acc,test_loss,test_acc,lr,epoch_seconds"]
        lines += [f"{i},0.1,0.97,{loss},{acc},0.1,6.0" for i, (acc, loss) in enumerate(zip(accs, losses), 1)]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    cfg = config or {
        "model": {"name": choices["model"]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.0},
        "trainer": {"epochs": len(accs), "batch_size": 100},
        "seed": 0,
    }
    (folder / ".hydra").mkdir()
    import yaml

    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def lr_config(lr, model="lenet_full", momentum=0.0):
    return {
        "model": {"name": model},
        "optimizer": {"name": "sgd", "lr": lr, "momentum": momentum},
        "trainer": {"epochs": 2, "batch_size": 100},
        "seed": 0,
    }


@pytest.fixture
def runs(tmp_path):
    """A sweep of three lr values (one crashed, one still running) beside a single run and a broken one."""
    sweep = tmp_path / "multirun" / "2026-01-01" / "10-00-00"
    make_run(sweep / "0_optimizer.lr=0.05", overrides=["optimizer.lr=0.05"], accs=(0.90, 0.93), config=lr_config(0.05))
    make_run(sweep / "1_optimizer.lr=0.1", overrides=["optimizer.lr=0.1"], accs=(0.95, 0.97), config=lr_config(0.1))
    make_run(
        sweep / "2_optimizer.lr=-1",
        status="failed",
        overrides=["optimizer.lr=-1"],
        accs=(),
        config=lr_config(-1),
        summary_extra={"error": "ConfigError: optimizer.lr=-1 is not allowed"},
    )
    make_run(
        sweep / "3_optimizer.lr=0.2",
        status="running",
        overrides=["optimizer.lr=0.2"],
        accs=(0.96,),
        config=lr_config(0.2),
    )
    make_run(
        tmp_path / "outputs" / "2026-01-01" / "09-00-00",
        choices={"model": "lenet_subset"},
        overrides=["model=lenet_subset"],
        accs=(0.94, 0.98),
        config=lr_config(0.1, "lenet_subset"),
    )
    broken = make_run(tmp_path / "outputs" / "2026-01-01" / "09-30-00")
    (broken / "summary.json").write_text('{"status": "completed", "cho')  # half-written
    odd = make_run(tmp_path / "outputs" / "2026-01-01" / "09-50-00")
    (odd / "summary.json").write_text('{"status": "completed", "params": 61706}')  # valid JSON, wrong shape
    half = make_run(tmp_path / "outputs" / "2026-01-01" / "09-45-00")
    with open(half / "metrics.csv", "a") as f:
        f.write("3,0.1,0.9")  # a row cut off mid-write
    return tmp_path


def cli(args, capsys):
    code = compare.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def parse_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_table_lists_every_readable_run_with_the_differing_settings(runs, capsys):
    code, out, err = cli([runs, "--format", "csv", "--all"], capsys)
    assert code == 0
    rows = parse_csv(out)
    assert list(rows[0]) == [
        "run",
        "model",
        "optimizer.lr",
        "status",
        "params",
        "final_test_acc",
        "best_test_acc",
        "final_test_loss",
        "epochs",
        "wall_seconds",
        "folder",
    ]
    # sorted by best test accuracy, high to low; runs without metrics last
    assert [r["best_test_acc"] for r in rows] == ["0.98", "0.97", "0.96", "0.93", ""]
    by_run = {r["run"]: r for r in rows}
    single = by_run["outputs/2026-01-01/09-00-00"]
    assert (single["model"], single["optimizer.lr"], single["status"]) == ("lenet_subset", "0.1", "completed")
    # a setting a run did not override is read from its composed config
    assert by_run["multirun/2026-01-01/10-00-00/1_optimizer.lr=0.1"]["model"] == "lenet_full"
    assert by_run["multirun/2026-01-01/10-00-00/2_optimizer.lr=-1"]["status"] == "failed"
    running = by_run["multirun/2026-01-01/10-00-00/3_optimizer.lr=0.2"]
    assert (running["status"], running["final_test_acc"], running["epochs"]) == ("running", "0.96", "1")
    # broken and half-written folders: reported on stderr, skipped, no crash
    assert "09-30-00" in err and "summary.json is broken or half-written" in err
    assert "09-45-00" in err and "metrics.csv is half-written" in err
    assert "09-50-00" in err and "'params' is 61706, not a dict" in err
    assert len(rows) == 5


def test_failed_runs_are_counted_and_shown_when_asked_for(runs, capsys):
    code, out, err = cli([runs, "--format", "csv"], capsys)
    assert code == 0 and [r["status"] for r in parse_csv(out)].count("failed") == 0 and len(parse_csv(out)) == 4
    assert "Note: 1 failed run(s) left out; --all shows them" in err
    _, out, err = cli([runs, "--format", "csv", "--filter", "status=failed"], capsys)
    assert [r["run"] for r in parse_csv(out)] == ["multirun/2026-01-01/10-00-00/2_optimizer.lr=-1"]
    assert "left out" not in err
    _, out, _ = cli([runs, "--format", "csv", "--all"], capsys)
    assert len(parse_csv(out)) == 5


def test_all_columns_shows_settings_that_do_not_differ(runs, capsys):
    _, out, _ = cli([runs, "--format", "csv"], capsys)
    assert "logger" not in parse_csv(out)[0] and "optimizer" not in parse_csv(out)[0]
    _, out, _ = cli([runs, "--format", "csv", "--all-columns"], capsys)
    row = parse_csv(out)[0]
    assert {"model", "optimizer", "logger", "optimizer.lr"} <= set(row)
    assert list(row).index("model") < list(row).index("optimizer")  # in the order of the defaults list


def test_sort_top_and_filter(runs, capsys):
    _, out, _ = cli([runs, "--format", "csv", "--all", "--sort", "final_test_loss"], capsys)
    assert [r["final_test_loss"] for r in parse_csv(out)] == ["0.02", "0.03", "0.04", "0.07", ""]
    _, out, _ = cli([runs, "--format", "csv", "--all", "--sort", "optimizer.lr", "--reverse"], capsys)
    assert [r["optimizer.lr"] for r in parse_csv(out)] == ["0.2", "0.1", "0.1", "0.05", "-1"]
    _, out, _ = cli([runs, "--format", "csv", "--top", "2"], capsys)
    assert [r["best_test_acc"] for r in parse_csv(out)] == ["0.98", "0.97"]
    _, out, _ = cli([runs, "--format", "csv", "--filter", "model=lenet_full", "--filter", "status=completed"], capsys)
    assert sorted(r["optimizer.lr"] for r in parse_csv(out)) == ["0.05", "0.1"]
    _, out, _ = cli([runs, "--format", "csv", "--filter", "optimizer.lr=0.10"], capsys)  # numbers compare as numbers
    assert len(parse_csv(out)) == 2
    _, out, _ = cli([runs, "--format", "csv", "--all", "--filter", "trainer.batch_size=100"], capsys)  # any key
    assert len(parse_csv(out)) == 5
    code, _, err = cli([runs, "--filter", "model=vgg11"], capsys)
    assert code == 1 and "No run matches" in err
    code, _, err = cli([runs, "--filter", "nonsense"], capsys)
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = cli([runs, "--sort", "best_tset_acc"], capsys)  # a typo is an error, not a silent no-op
    assert code == 2 and "--sort best_tset_acc: no run has that key" in err


def test_table_md_and_json_formats(runs, capsys):
    _, out, _ = cli([runs], capsys)
    lines = out.splitlines()
    assert lines[0].split() == [
        "run",
        "model",
        "optimizer.lr",
        "status",
        "params",
        "final_test_acc",
        "best_test_acc",
        "final_test_loss",
        "epochs",
        "wall_seconds",
    ]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert "0.9800" in lines[2] and "lenet_subset" in lines[2] and "12.5" in lines[2]
    assert len({len(line) for line in lines[:3]}) == 1  # aligned columns
    _, out, _ = cli([runs, "--format", "md"], capsys)
    assert out.startswith("| run | model | optimizer.lr | status |") and out.splitlines()[1].startswith("|---|")
    _, out, _ = cli([runs, "--format", "json", "--all"], capsys)
    data = json.loads(out)
    assert data[0]["best_test_acc"] == 0.98 and data[0]["model"] == "lenet_subset" and data[-1]["status"] == "failed"
    assert all(row["folder"].startswith(str(runs)) for row in data)


def test_plot_overlays_every_run_with_metrics(runs, capsys, tmp_path):
    target = tmp_path / "cmp.png"
    code, _, err = cli([runs, "--plot", target], capsys)
    assert code == 0 and f"Plot: {target}" in err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = legend_labels(read_runs([runs]))
    assert "model=lenet_subset, optimizer.lr=0.1" in labels


def test_diff_shows_config_differences_and_metrics(runs, capsys):
    a = runs / "multirun" / "2026-01-01" / "10-00-00" / "0_optimizer.lr=0.05"
    b = runs / "outputs" / "2026-01-01" / "09-00-00"
    code, out, _ = cli(["--diff", a, b], capsys)
    assert code == 0
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert lines["model"] == ["lenet_full", "lenet_subset"]
    assert lines["optimizer.lr"] == ["0.05", "0.1"]
    assert lines["model.name"] == ["lenet_full", "lenet_subset"]
    assert "trainer.batch_size" not in lines  # equal in both
    assert lines["best_test_acc"] == ["0.9300", "0.9800"]
    code, _, err = cli(["--diff", a, runs / "outputs" / "2026-01-01" / "09-30-00"], capsys)
    assert code == 1 and "broken or half-written" in err


def test_bad_paths_and_empty_folders_are_clear_errors(tmp_path, capsys):
    code, _, err = cli([tmp_path / "nowhere"], capsys)
    assert code == 2 and "no such folder" in err
    code, _, err = cli([tmp_path], capsys)
    assert code == 1 and "no readable run" in err
    code, _, err = cli([], capsys)
    assert code == 2


@pytest.mark.slow
def test_command_line_entry_does_not_import_torch(runs):
    code = (
        "import sys; from mnist_runner import compare; rc = compare.main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, 'torch or pandas imported'; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(runs), "--top", "1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "lenet_subset" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "mnist_runner.compare", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0 and "--all-columns" in result.stdout
