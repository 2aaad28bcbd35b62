"""Repeated seeds (issue 12): the statistics of stats.py, `compare --groups/--group-by/--baseline` on
hand-made run folders with known values, and the grouped sweep summary of a tiny real seed sweep.

Every number is checked against an independent computation: numpy for means and standard
deviations, scipy.stats.t for intervals of a mean, scipy.stats.ttest_ind(equal_var=False) for
Welch's test and its interval.
"""

import csv
import io
import json

import numpy as np
import pytest
import yaml
from conftest import run_folders
from scipy import stats as scipy_stats

from mnist_runner import compare
from mnist_runner.results import stats
from mnist_runner.sweep import write_summary

# Final test accuracies (the second and last epoch) of the hand-made groups, one value per seed.
FULL = [0.981, 0.984, 0.979, 0.983, 0.985]  # model=lenet_full, seeds 0-4
SUBSET = [0.986, 0.985, 0.987, 0.984]  # model=lenet_subset, seeds 0-3; seed 4 diverged
MLP = [0.951, 0.957]  # model=mlp, seeds 0-1; seed 2 failed
CNN = [0.990]  # model=cnn_small, seed 0 only


def make_run(folder, model, seed, accs=(), status="completed", epochs=2, val=None):
    """A run folder as the runner leaves it: `accs` are the test accuracies of its epochs."""
    folder.mkdir(parents=True)
    losses = [round(1 - a, 4) for a in accs]
    summary = {
        "status": status,
        "choices": {"logger": "none", "optimizer": "sgd", "model": model},
        "overrides": [f"model={model}", f"seed={seed}"],
        "seed": seed,
        "epochs_completed": len(accs),
    }
    if accs:
        summary.update(
            final={"train_loss": 0.1, "train_acc": 0.99, "test_loss": losses[-1], "test_acc": accs[-1]},
            best_test_acc=max(accs),
        )
    if val is not None:
        summary["best_val"] = {"epoch": 1, "val_loss": 0.1, "val_acc": 0.99, "test_acc": val}
    if status == "diverged":
        summary["error"] = "train loss is nan"
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = ["epoch,train_loss,train_acc,test_loss,test_acc,lr,epoch_seconds"]
    lines += [f"{i},0.1,0.99,{loss},{acc},0.1,1.0" for i, (acc, loss) in enumerate(zip(accs, losses), 1)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    (folder / ".hydra").mkdir()
    config = {"model": {"name": model}, "trainer": {"epochs": epochs}, "seed": seed}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def seeds(tmp_path):
    """A seed sweep in job order: four models; one group with a diverged run, one with a failed run, one of n=1."""
    sweep = tmp_path / "sweep"
    jobs = [("lenet_full", s, (a - 0.01, a), "completed") for s, a in enumerate(FULL)]
    jobs += [("lenet_subset", s, (a - 0.02, a), "completed") for s, a in enumerate(SUBSET)]
    jobs += [("lenet_subset", 4, (0.3,), "diverged")]
    jobs += [("mlp", s, (a - 0.01, a), "completed") for s, a in enumerate(MLP)]
    jobs += [("mlp", 2, (), "failed"), ("cnn_small", 0, (0.98, CNN[0]), "completed")]
    for number, (model, seed, accs, status) in enumerate(jobs):
        make_run(sweep / f"{number}_model={model},seed={seed}", model, seed, accs, status)
    return sweep


def cli(capsys, *args):
    code = compare.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def by_model(rows):
    return {r["model"]: r for r in rows}


def t_interval(values):
    values = np.asarray(values)
    return scipy_stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=scipy_stats.sem(values))


# --- stats.py ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [FULL, SUBSET, MLP, [0.5, 0.7, 0.2, 0.9, 0.4, 0.4, 0.1]])
def test_describe_matches_numpy_and_scipy(values):
    s = stats.describe(values)
    assert s.n == len(values)
    assert s.mean == pytest.approx(np.mean(values), abs=1e-15)
    assert s.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert (s.min, s.max) == (min(values), max(values))
    assert (s.ci_low, s.ci_high) == pytest.approx(t_interval(values), rel=1e-12)
    assert s.ci_low < s.mean < s.ci_high


def test_describe_one_value_has_no_spread_and_none_has_nothing():
    assert stats.describe([0.99]) == stats.Sample(1, 0.99, None, 0.99, 0.99, None, None)
    assert stats.describe([]) == stats.Sample(0, None, None, None, None, None, None)


@pytest.mark.parametrize("a, b", [(SUBSET, FULL), (MLP, FULL), (FULL, SUBSET), ([1.0, 2.0, 4.0], [0.5, 0.5, 0.6, 9.0])])
def test_welch_matches_scipy_ttest_ind(a, b):
    c = stats.welch(a, b)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert c.diff == pytest.approx(np.mean(a) - np.mean(b), abs=1e-15)
    assert c.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert c.df == pytest.approx(reference.df, rel=1e-12)
    assert (c.ci_low, c.ci_high) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-9)


def test_welch_without_spread_gives_the_difference_only():
    assert stats.welch(CNN, FULL) == stats.Comparison(pytest.approx(CNN[0] - np.mean(FULL)), None, None, None, None)
    assert stats.welch([0.5, 0.5], [0.4, 0.4]).p_value is None  # neither varies: t is undefined
    with pytest.raises(ValueError):
        stats.welch([], FULL)


def test_mean_curve_averages_the_curves_that_reach_each_epoch():
    curves = [[(1, 0.5), (2, 0.7)], [(1, 0.7), (2, 0.9)], [(1, 0.9)]]
    (e1, n1, m1, s1), (e2, n2, m2, s2) = stats.mean_curve(curves)
    assert (e1, n1, m1, s1) == (1, 3, pytest.approx(0.7), pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1)))
    assert (e2, n2, m2, s2) == (2, 2, pytest.approx(0.8), pytest.approx(np.std([0.7, 0.9], ddof=1)))
    assert stats.mean_curve([[(1, 0.5)]]) == [(1, 1, 0.5, None)]


# --- compare: groups ----------------------------------------------------------------------------


def test_groups_hold_the_statistics_of_their_completed_runs(seeds, capsys):
    code, out, err = cli(capsys, seeds, "--groups", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["model"] for r in rows] == ["cnn_small", "lenet_subset", "lenet_full", "mlp"]  # best_test_acc mean
    groups = by_model(rows)
    for model, values in (("lenet_full", FULL), ("lenet_subset", SUBSET), ("mlp", MLP)):
        row = groups[model]
        assert row["n"] == len(values)
        assert row["final_test_acc_mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert row["final_test_acc_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
        assert (row["final_test_acc_min"], row["final_test_acc_max"]) == (min(values), max(values))
        ci = (row["final_test_acc_ci_low"], row["final_test_acc_ci_high"])
        assert ci == pytest.approx(t_interval(values), rel=1e-9)
        assert row["final_test_loss_mean"] == pytest.approx(np.mean([round(1 - v, 4) for v in values]), abs=1e-12)
        assert row["best_test_acc_mean"] == pytest.approx(np.mean(values), abs=1e-12)  # the last epoch is the best
        assert "best_val.test_acc_mean" not in row  # no run has a validation split
    assert len(groups["lenet_full"]["folders"]) == 5
    # the diverged and the failed run are counted, named, and left out of the statistics
    assert (groups["lenet_subset"]["excluded"], len(groups["lenet_subset"]["folders"])) == ("1 diverged", 5)
    assert groups["mlp"]["excluded"] == "1 failed"
    # n=1: the value, no spread, no interval
    cnn = groups["cnn_small"]
    assert (cnn["n"], cnn["final_test_acc_mean"], cnn["final_test_acc_std"], cnn["final_test_acc_ci_low"]) == (
        1,
        CNN[0],
        None,
        None,
    )
    assert "Note: model=cnn_small: n=1 (one completed run): no standard deviation" in err


def test_baseline_difference_interval_and_p_value_match_welchs_t_test(seeds, capsys):
    code, out, err = cli(capsys, seeds, "--baseline", "model=lenet_full", "--format", "csv")
    assert code == 0, err
    rows = by_model(csv.DictReader(io.StringIO(out)))
    for model, values in (("lenet_subset", SUBSET), ("mlp", MLP)):
        row = rows[model]
        reference = scipy_stats.ttest_ind(values, FULL, equal_var=False)
        assert float(row["final_test_acc_diff"]) == pytest.approx(np.mean(values) - np.mean(FULL), abs=1e-12)
        assert float(row["final_test_acc_p"]) == pytest.approx(reference.pvalue, rel=1e-9)
        ci = (float(row["final_test_acc_diff_ci_low"]), float(row["final_test_acc_diff_ci_high"]))
        assert ci == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-9)
    assert rows["lenet_full"]["final_test_acc_diff"] == ""  # the baseline itself
    assert rows["cnn_small"]["final_test_acc_diff"] != "" and rows["cnn_small"]["final_test_acc_p"] == ""  # n=1


def test_table_and_md_show_mean_sd_interval_range_and_the_comparison(seeds, capsys):
    code, out, _ = cli(capsys, seeds, "--group-by", "model", "--baseline", "model=lenet_full", "--format", "md")
    assert code == 0
    header, rule, *lines = out.splitlines()
    assert header.startswith("| model | n | excluded | epochs | final_test_acc mean ± sd | final_test_acc 95% CI |")
    assert "final_test_acc diff [95% CI] | final_test_acc p |" in header
    assert rule.startswith("|---|---:|")
    subset = next(line for line in lines if "lenet_subset" in line)
    s, c = stats.describe(SUBSET), stats.welch(SUBSET, FULL)
    assert f"| 4 | 1 diverged | 2 | {s.mean:.4f} ± {s.std:.4f} | [{s.ci_low:.4f}, {s.ci_high:.4f}] |" in subset
    assert f"| {min(SUBSET):.4f}–{max(SUBSET):.4f} |" in subset
    assert f"| {c.diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.p_value:.3f} |" in subset
    assert "| baseline | baseline |" in next(line for line in lines if "lenet_full" in line)
    assert "| 0.9900 | - | 0.9900–0.9900 |" in next(line for line in lines if "cnn_small" in line)
    code, out, _ = cli(capsys, seeds, "--groups", "--metrics", "final_test_acc")
    lines = out.splitlines()
    assert lines[0].split("  ")[0] == "model" and "best_test_acc" not in lines[0]
    assert len({len(line) for line in lines[:2]}) == 1 and len(lines) == 6  # aligned; header, rule, 4 groups


def test_sort_top_and_filter_work_on_groups(seeds, capsys):
    _, out, _ = cli(capsys, seeds, "--groups", "--format", "csv", "--sort", "final_test_acc_std", "--top", "2")
    assert [r["model"] for r in csv.DictReader(io.StringIO(out))] == ["lenet_subset", "lenet_full"]  # low to high
    _, out, _ = cli(capsys, seeds, "--groups", "--format", "csv", "--sort", "final_test_loss")
    assert [r["model"] for r in csv.DictReader(io.StringIO(out))] == ["cnn_small", "lenet_subset", "lenet_full", "mlp"]
    _, out, _ = cli(capsys, seeds, "--groups", "--format", "csv", "--sort", "n", "--reverse")
    assert [r["n"] for r in csv.DictReader(io.StringIO(out))] == ["1", "2", "4", "5"]
    # a filter picks runs before they are grouped: here the seeds 0 and 1 of every model
    _, out, _ = cli(
        capsys, seeds, "--group-by", "model", "--format", "json", "--filter", "status=completed", "--filter", "seed=1"
    )
    assert {r["model"]: r["n"] for r in json.loads(out)} == {"lenet_full": 1, "lenet_subset": 1, "mlp": 1}


def test_groups_that_ran_different_epochs_are_compared_and_the_note_says_so(tmp_path, capsys):
    for seed in range(3):
        make_run(tmp_path / f"a{seed}", "logistic", seed, (0.90, 0.95 + seed / 1000), epochs=2)
        make_run(tmp_path / f"b{seed}", "softmax", seed, (0.94,), epochs=1)
    code, out, err = cli(capsys, tmp_path, "--baseline", "model=logistic", "--format", "json")
    assert code == 0
    assert {r["model"]: r["epochs"] for r in json.loads(out)} == {"logistic": 2, "softmax": 1}
    (note,) = [line for line in err.splitlines() if "epochs" in line]
    assert note.startswith("Note: the groups ran different numbers of epochs (model=logistic: 2; model=softmax: 1)")


def test_best_val_test_acc_is_described_when_runs_have_it(tmp_path, capsys):
    for seed, val in enumerate([0.97, 0.975, 0.98]):
        make_run(tmp_path / f"r{seed}", "mlp", seed, (0.96, 0.97), val=val)
    code, out, _ = cli(capsys, tmp_path, "--groups", "--format", "json")
    (row,) = json.loads(out)
    assert code == 0 and row["n"] == 3
    assert row["best_val.test_acc_mean"] == pytest.approx(np.mean([0.97, 0.975, 0.98]))
    assert row["best_val.test_acc_std"] == pytest.approx(np.std([0.97, 0.975, 0.98], ddof=1))


def test_group_plot_draws_bands(seeds, capsys, tmp_path):
    target = tmp_path / "groups.png"
    code, _, err = cli(capsys, seeds, "--groups", "--plot", target)
    assert code == 0 and f"Plot: {target}" in err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--group-by", "optimizer.lr"], "Error: --group-by optimizer.lr: no run has that key; group by a setting ("),
        (["--baseline", "model=vgg11"], "Error: --baseline model=vgg11: no group has model=vgg11; the groups are "),
        (["--group-by", "model", "--baseline", "seed=0"], "Error: --baseline seed=0: seed is not a group key"),
        (["--baseline", "lenet_full"], "Error: --baseline 'lenet_full' is not KEY=VALUE"),
        (["--groups", "--group-by", "model"], "Error: --groups groups by every differing setting; --group-by"),
        (["--groups", "--metrics", "test_acc"], "Error: --metrics test_acc: not a metric of groups; choose from"),
        (["--groups", "--sort", "final_tset_acc"], "Error: --sort final_tset_acc: groups have no such column"),
    ],
)
def test_bad_group_inputs_are_one_clear_line(seeds, capsys, args, message):
    code, out, err = cli(capsys, seeds, *args)
    assert (code, out) == (2, "")
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_baseline_of_one_run_shows_the_table_and_says_why_there_is_no_comparison(seeds, capsys):
    code, out, err = cli(capsys, seeds, "--baseline", "model=cnn_small", "--format", "md")
    assert code == 2
    assert "| cnn_small | 1 | - | 2 | 0.9900 | - |" in out and "| baseline | baseline |" in out
    (error,) = [line for line in err.splitlines() if line.startswith("Error")]
    assert error.startswith("Error: --baseline model=cnn_small: the group model=cnn_small has n=1 completed run(s): ")
    assert "no standard deviation, so no interval or p-value" in error


# --- the sweep summary -------------------------------------------------------------------------


def test_a_seed_sweep_summary_writes_the_grouped_tables(seeds):
    write_summary(seeds)
    rows = by_model(csv.DictReader((seeds / "sweep_groups.csv").open()))
    assert {m: r["n"] for m, r in rows.items()} == {
        "lenet_full": "5",
        "lenet_subset": "4",
        "mlp": "2",
        "cnn_small": "1",
    }
    assert float(rows["lenet_full"]["final_test_acc_mean"]) == pytest.approx(np.mean(FULL))
    md = (seeds / "sweep_groups.md").read_text()
    assert "| model | n | excluded | epochs |" in md and "| lenet_subset | 4 | 1 diverged | 2 |" in md
    assert "- model=cnn_small: n=1 (one completed run)" in md
    assert (seeds / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sweep_without_seeds_writes_no_grouped_tables(tmp_path):
    for seed, model in enumerate(["lenet_full", "mlp"]):
        make_run(tmp_path / f"{seed}_model={model}", model, 0, (0.9, 0.95))
    write_summary(tmp_path)
    assert (tmp_path / "sweep_summary.csv").is_file() and not (tmp_path / "sweep_groups.csv").exists()


@pytest.mark.slow
def test_a_tiny_real_seed_sweep_writes_groups_with_the_right_n(run_cli, tmp_path):
    result = run_cli(
        "hydra.mode=MULTIRUN",
        "model=lenet_full,mlp_128",
        "seed=range(3)",
        "trainer.epochs=1",
        "dataset.per_class=10",
        "report.plots=false",
    )
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "multirun").glob("*/*")
    assert len(run_folders(folder)) == 6
    rows = list(csv.DictReader((folder / "sweep_groups.csv").open()))
    assert [(r["model"], r["n"], r["epochs"]) for r in rows] == [("lenet_full", "3", "1"), ("mlp_128", "3", "1")]
    summaries = [json.loads((run / "summary.json").read_text()) for run in run_folders(folder)]
    accs = [s["final"]["test_acc"] for s in summaries if s["choices"]["model"] == "mlp_128"]
    assert float(rows[1]["final_test_acc_mean"]) == pytest.approx(np.mean(accs))
    assert "| lenet_full | 3 | 1 |" in (folder / "sweep_groups.md").read_text()
    png = (folder / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1200  # two panels
