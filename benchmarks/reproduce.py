"""Recompute the accuracies docs/reproducing.md quotes, on the real data, and check them against the page.

    python benchmarks/reproduce.py --data-root ../shared/data                   # every row: prints the tables
    python benchmarks/reproduce.py --data-root ../shared/data --check --cheap   # the cheap rows, against the page
    python benchmarks/reproduce.py --data-root ../shared/data --statistics      # docs/statistics.md's questions
    python benchmarks/reproduce.py --data-root ../shared/data --rows cnn3_fashion  # some rows only

Every run is `mnist_runner.train(...)` in this process, with the thread count the page gives for its table:
an accuracy repeats to the last digit for the same command, thread count and CPU. Seconds are medians over
a run's epochs; they depend on what else the machine does, so --check compares accuracies only.
`--statistics` runs the three 5-seed comparisons of docs/statistics.md (the sweeps it shows) and prints the
grouped tables as `mnist-runner-compare --baseline ... --format md` does.
"""

import argparse
import contextlib
import io
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reproducing.md"
# The seed presets (docs/reproducing.md "The seed presets"), measured with one thread; the cheap ones take
# about a minute together, the rest up to 10 minutes each (cnn3_fashion: one Fashion-MNIST epoch of CNN3).
PRESETS = [
    "lr_4v9_logistic",
    "lr_4v9_sum_of_squares",
    "lenet5_full",
    "lenet5_subset",
    "mlp_bn3_600",
    "mlp_bn4_600",
    "cnn3_fashion",
    "mlp_128_normalized",
    "cnn_10_20_normalized",
]
CHEAP = {"lr_4v9_logistic", "lr_4v9_sum_of_squares", "mlp_bn3_600", "mlp_bn4_600", "mlp_128_normalized"}
# "Results with the defaults": the default thread count (every core: 2 on the 2-core machine of the page).
DEFAULTS = {"lenet_full": [], "lenet_subset": ["model=lenet_subset"]}
# docs/statistics.md: (question, the sweeps it runs, the compare call's paths and options)
QUESTIONS = [
    (
        "1. sparse vs full C3",
        [["experiment=lenet5_full,lenet5_subset", "seed=range(5)"]],
        ["--baseline", "experiment=lenet5_full"],
    ),
    (
        "2. a fourth batch-norm layer",
        [["experiment=mlp_bn3_600,mlp_bn4_600", "seed=range(5)"]],
        ["--baseline", "experiment=mlp_bn3_600"],
    ),
    (
        "3. sum-of-squares vs logistic loss",
        [
            ["experiment=lr_4v9_logistic,lr_4v9_sum_of_squares", "seed=range(5)"],
            ["experiment=lr_4v9_sum_of_squares", "trainer.epochs=20", "seed=range(5)"],
        ],
        ["--baseline", "experiment=lr_4v9_logistic", "--metrics", "final_test_acc,best_test_acc"],
    ),
]


def measure(name: str, overrides: list[str], data_root: str, work: Path) -> dict:
    """One run: final and best test accuracy, the best epoch, the median seconds per epoch."""
    from mnist_runner import train

    with contextlib.redirect_stdout(io.StringIO()):  # the run's epoch lines: the table is what this prints
        run = train(
            *overrides,
            f"dataset.root={data_root}",
            "device=cpu",
            "trainer.progress=false",
            "report.plots=false",
            output_dir=work / name,
        )
    summary = run.summary
    return {
        "final": summary["final"]["test_acc"],
        "best": summary["best_test_acc"],
        "best_epoch": summary["best_epoch"],
        "seconds": statistics.median(r["epoch_seconds"] for r in run.rows),
        "threads": summary["speed"]["threads"],
    }


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def documented() -> dict[str, str]:
    """Each row's documented accuracy on the page: preset or model -> its `ours`/`final test accuracy` cell."""
    cells = {}
    header = None
    for line in PAGE.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        row = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = row
            continue
        column = next((i for i, h in enumerate(header) if "final test accuracy" in h), None)
        name = re.fullmatch(r"`([\w]+)`", row[0])
        if column is not None and name:
            found = re.search(r"\d+\.\d+%", row[column])
            cells[name.group(1)] = found.group() if found else row[column]
    return cells


def statistics_tables(data_root: str, work: Path) -> None:
    for question, sweeps, options in QUESTIONS:
        folders = []
        for i, sweep in enumerate(sweeps):
            folder = work / f"q{question[0]}_{i}"
            command = [
                sys.executable,
                "-m",
                "mnist_runner",
                "-m",
                *sweep,
                "trainer.threads=1",  # as the page measured them: the numbers repeat for the same thread count
                f"dataset.root={data_root}",
                "device=cpu",
                "trainer.progress=false",
                "report.plots=false",
                f"hydra.sweep.dir={folder}",
            ]
            subprocess.run(command, check=True, cwd=work, stdout=subprocess.DEVNULL)
            folders.append(str(folder))
        print(f"\n### {question}\n", flush=True)
        subprocess.run([sys.executable, "-m", "mnist_runner.compare", *folders, *options, "--format", "md"], check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="the folder holding MNIST/raw/ and FashionMNIST/raw/")
    p.add_argument("--check", action="store_true", help="compare each accuracy with the page's; exit 1 if one differs")
    p.add_argument("--cheap", action="store_true", help=f"only the cheap rows ({', '.join(sorted(CHEAP))})")
    p.add_argument("--statistics", action="store_true", help="run docs/statistics.md's three 5-seed comparisons")
    p.add_argument("--rows", help="comma-separated row names: only these (default: every row)")
    args = p.parse_args()
    data_root = str(Path(args.data_root).resolve())
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if args.statistics:
            statistics_tables(data_root, work)
            return 0
        rows = [
            (name, [f"experiment={name}", "trainer.threads=1"]) for name in PRESETS if not args.cheap or name in CHEAP
        ]
        if not args.cheap:
            rows += [(name, overrides) for name, overrides in DEFAULTS.items()]
        if args.rows:
            wanted = args.rows.split(",")
            unknown = sorted(set(wanted) - {name for name, _ in rows})
            if unknown:
                p.error(f"--rows: {', '.join(unknown)} is not a row; the rows are {', '.join(n for n, _ in rows)}")
            rows = [(name, overrides) for name, overrides in rows if name in wanted]
        page, differ = documented(), []
        print("| row | threads | final test accuracy | best (epoch) | seconds / epoch (median) | the page |")
        print("|---|---:|---:|---:|---:|---|")
        for name, overrides in rows:
            got = measure(name, overrides, data_root, work)
            final = percent(got["final"])
            print(
                f"| `{name}` | {got['threads']} | {final} | {percent(got['best'])} ({got['best_epoch']}) | "
                f"{got['seconds']:.1f} | {page.get(name, '-')} |",
                flush=True,
            )
            if page.get(name) != final:
                differ.append(f"{name}: {final}, the page says {page.get(name)}")
    if args.check:
        if differ:
            print("differ from docs/reproducing.md: " + "; ".join(differ))
            return 1
        print("every number repeats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
