"""benchmark.py's `search` section (issue 19): what pruning saves an Optuna search.

search    `python -m mnist_runner -m hparams_search=lenet_optuna` with short trials (--search-trial), the
          same sampler seed, once per pruner of --search-pruners: the whole command's wall time, the
          trials completed and pruned, the epochs trained in all, and the best trial (its objective,
          the best validation accuracy, and its final test accuracy).
"""

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("search",)


def add_arguments(p) -> None:
    p.add_argument("--search-trials", type=int, default=20, help="search: trials of each search")
    p.add_argument("--search-pruners", default="none,median,hyperband", help="search: comma-separated pruners")
    p.add_argument(
        "--search-trial",
        default="dataset.per_class=500 dataset.val_fraction=0.1 trainer.epochs=5 report.plots=false",
        help="search: the overrides every trial runs with (space-separated)",
    )


def search(args, work: Path, run_process) -> dict:
    from mnist_runner.results import load_runs

    data = str(Path(args.data_root).resolve())
    found = {}
    for repeat in range(args.repeats):
        for pruner in args.search_pruners.split(","):
            folder = work / f"search_{pruner}_{repeat}"
            command = [
                sys.executable,
                "-m",
                "mnist_runner",
                "-m",
                "hparams_search=lenet_optuna",
                f"hydra.sweeper.pruner={pruner}",
                f"hydra.sweeper.n_trials={args.search_trials}",
                *args.search_trial.split(),
                "trainer.progress=false",
                f"dataset.root={data}",
                f"hydra.sweep.dir={folder}",
            ]
            wall = run_process(command, work, ROOT)[0]
            runs = load_runs(folder)
            statuses = [r.summary["status"] for r in runs]
            best = max(runs, key=lambda r: r.summary["best_val"]["val_acc"] if r.summary.get("best_val") else -1)
            found.setdefault(pruner, []).append(
                {
                    "wall": wall,
                    "trials": len(runs),
                    "completed": statuses.count("completed"),
                    "pruned": statuses.count("pruned"),
                    "epochs": sum(len(r.rows) for r in runs),
                    "best_val": best.summary["best_val"]["val_acc"],
                    "best_test": best.summary["final"]["test_acc"],
                    "best_trial": f"lr {best.setting('optimizer.lr'):.4g}, "
                    f"momentum {best.setting('optimizer.momentum'):.3g}",
                }
            )
            print(f"search repeat {repeat + 1} pruner={pruner}: {found[pruner][-1]}", flush=True)
    return {"pruners": found, "trial": args.search_trial, "trials": args.search_trials}


def search_lines(result: dict) -> tuple[list[str], list[str]]:
    lines = [
        f"**Pruning an Optuna search**: `python -m mnist_runner -m hparams_search=lenet_optuna "
        f"hydra.sweeper.n_trials={result['trials']} hydra.sweeper.pruner=P {result['trial']}` (TPE, sampler seed "
        "0, one trial after another; the objective is each trial's best validation accuracy). Wall: the whole "
        "command; epochs: trained in all the trials; the best trial: its best validation accuracy and final "
        "test accuracy.",
        "",
        "| pruner | wall s | vs none | trials completed / pruned | epochs trained | best trial | best val acc "
        "| its test acc |",
        "|---|---:|---:|---|---:|---|---:|---:|",
    ]
    none = statistics.median(r["wall"] for r in result["pruners"].get("none", [{"wall": float("nan")}]))
    for pruner, repeats in result["pruners"].items():
        r = repeats[0]
        wall = statistics.median(x["wall"] for x in repeats)
        lines.append(
            f"| {pruner} | {wall:.1f} | {wall / none:.2f}x | {r['completed']} / {r['pruned']} | {r['epochs']} | "
            f"{r['best_trial']} | {100 * r['best_val']:.2f}% | {100 * r['best_test']:.2f}% |"
        )
    return lines, []


LINES = {"search": search_lines}
