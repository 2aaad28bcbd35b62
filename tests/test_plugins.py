"""Plugins: the user's own models and datasets, by module name, by entry point and by --config-dir (issue 13).

The end-to-end tests work as a user would: from a folder outside the repository holding their own module.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_folders

import mnist_runner
from mnist_runner import plugins
from mnist_runner.registry import ConfigError, Registry

EXAMPLE = ROOT / "examples" / "plugin" / "my_plugin.py"


def python(*args, cwd, env=None, timeout=600):
    """`python ARGS` in `cwd` (a subprocess); returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


CONSOLE_SCRIPT = "import sys\nfrom mnist_runner.train import main\nsys.exit(main())\n"


def runner(*args, cwd, env=None):
    """`mnist-runner ARGS` as the installed console script runs it: a script elsewhere, so the current
    directory is not on sys.path (as it would be with python -m)."""
    script = Path(cwd).parent / "bin" / "mnist-runner"
    script.parent.mkdir(exist_ok=True)
    script.write_text(CONSOLE_SCRIPT)
    return python(str(script), *args, cwd=cwd, env=env)


def one_error_line(result, code: int) -> str:
    """The single stderr line of a command that failed with `code`, with no traceback."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- the registration API ------------------------------------------------------------------------


def register_from(module: str, registry: Registry, name: str | None = None) -> None:
    """Register a builder as code in module `module` would."""
    code = "@registry.register\ndef dup(): pass" if name is None else f"registry.register({name!r})(lambda: 1)"
    exec(code, {"__name__": module, "registry": registry})


def test_registration_names_the_builder_and_both_modules_of_a_duplicate():
    reg = Registry("model")
    register_from("my_models", reg)
    assert reg.list() == ["dup"] and reg.module_of("dup") == "my_models"
    with pytest.raises(ConfigError) as error:
        register_from("other_models", reg)
    assert str(error.value) == (
        "model 'dup' is already registered by my_models; other_models registers it again: rename one of them"
    )
    assert reg.user_entries() == {"dup": reg.get("dup")}


def test_list_helpers_include_the_built_in_entries():
    assert {"lenet_full", "mlp", "cnn_small"} <= set(mnist_runner.list_models())
    assert {"mnist", "qmnist", "npz", "image_folder"} <= set(mnist_runner.list_datasets())
    assert {"cross_entropy", "logistic"} <= set(mnist_runner.list_losses())
    assert {"sgd", "adam"} <= set(mnist_runner.list_optimizers())
    assert mnist_runner.register_model.__self__.kind == "model"


def test_a_plain_loss_module_is_an_objective_predicting_the_arg_max():
    import torch

    from mnist_runner.losses import CrossEntropy, as_objective

    objective = as_objective(torch.nn.CrossEntropyLoss())
    logits, labels = torch.tensor([[2.0, 0.5], [0.1, 0.3]]), torch.tensor([0, 0])
    assert objective(logits, labels).item() == pytest.approx(CrossEntropy()(logits, labels).item())
    assert objective.correct(logits, labels).tolist() == [True, False] and not objective.binary
    own = CrossEntropy()
    assert as_objective(own) is own


def test_builder_keyword_defaults_become_config_keys():
    widget = object()

    def net(input_shape, num_classes, width=64, sizes=(3, 5), act="relu", must=None, *, extra=False, **rest):
        pass

    def needs(input_shape, num_classes, depth, widget=widget):
        pass

    def opt(parameters, lr=0.1, betas=(0.9, 0.99)):
        pass

    passed = ("input_shape", "num_classes")
    assert plugins.builder_options(net, passed) == {
        "width": 64,
        "sizes": [3, 5],
        "act": "relu",
        "must": None,
        "extra": False,
    }
    assert plugins.builder_options(needs, passed) == {"depth": "???"}  # mandatory; an object is no config value
    assert plugins.builder_options(opt, ("params",)) == {"lr": 0.1, "betas": [0.9, 0.99]}


def test_plugins_named_on_the_command_line_in_an_experiment_or_by_a_resumed_run(tmp_path):
    assert plugins.names_in_argv(["plugins=[a,b]", "model=x", "-m", "plugins=c"]) == ["a", "b", "c"]
    assert plugins.names_in_argv(["+plugins=[a]", "plugins=[b],[c]"]) == ["a", "b", "c"]
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text("# @package _global_\nplugins: [from_yaml]\n")
    argv = ["--config-dir", str(tmp_path / "conf"), "experiment=mine"]
    assert plugins.names_in_argv(argv) == ["from_yaml"]
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("plugins: [stored]\n")
    assert plugins.names_in_argv([f"resume={tmp_path / 'run'}"]) == ["stored"]


# --- on the command line -------------------------------------------------------------------------


@pytest.mark.slow
def test_plugin_api_and_help_import_no_torch(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        sys.argv = ["mnist-runner", "--help"]
        from mnist_runner.train import main
        try:
            main()
        except SystemExit:
            pass
        assert "torch" not in sys.modules, "--help imported torch"
        from mnist_runner import register_model, register_dataset, register_loss, register_optimizer
        @register_model
        def my_net(input_shape, num_classes, width=64):
            pass
        assert "torch" not in sys.modules, "the plugin API imported torch"
        """
    )
    result = python("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "model: cnn2, cnn3" in result.stdout


@pytest.mark.slow
def test_registered_entries_are_config_groups_with_their_keys(tmp_path):
    shutil.copy(EXAMPLE, tmp_path)
    result = runner(
        "plugins=[my_plugin]",
        "model=tiny_cnn",
        "model.channels=32",
        "dataset=stripes",
        "dataset.size=20",
        "--cfg",
        "job",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["model"] == {"name": "tiny_cnn", "channels": 32, "dropout": 0.0}
    assert cfg["dataset"]["name"] == "stripes" and cfg["dataset"]["size"] == 20 and cfg["dataset"]["n_train"] == 2000
    assert cfg["dataset"]["normalize"] == "none" and cfg["dataset"]["per_class"] is None  # every dataset's keys
    assert cfg["plugins"] == ["my_plugin"]
    help_text = runner("plugins=[my_plugin]", "--help", cwd=tmp_path).stdout
    assert "tiny_cnn" in help_text and "stripes" in help_text
    # A plugin named in an experiment file of the user's --config-dir: its names compose too.
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "stripes_cnn.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: tiny_cnn\n  - override /dataset: stripes\n"
        "plugins: [my_plugin]\nmodel:\n  channels: 4\n"
    )
    result = runner("--config-dir", "conf", "experiment=stripes_cnn", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["model"] == {"name": "tiny_cnn", "channels": 4, "dropout": 0.0}


PLUGIN_A = "from mnist_runner import register_model\n\n@register_model\ndef dup(input_shape, num_classes):\n    pass\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    "files, plugin_list, code, message",
    [
        ({}, "[nowhere]", 2, "Error: plugins=[nowhere]: no module named 'nowhere' (looked in {cwd} and the installed"),
        ({}, "[1,2]", 2, "Error: plugins=[1,2] is not allowed; it must be a list of Python module names"),
        (
            {"a.py": PLUGIN_A, "b.py": PLUGIN_A},
            "[a,b]",
            2,
            "Error: model 'dup' is already registered by a; b registers it again: rename one of them",
        ),
        (
            {"mine.py": PLUGIN_A.replace("def dup", "def mlp")},
            "[mine]",
            2,
            "Error: model 'mlp' is already registered by mine; mnist_runner.models.mlp registers it again",
        ),
        (
            {"broken.py": "x = 1\ny = 1 / 0\n"},
            "[broken]",
            2,
            "Error: plugin broken failed while importing: ZeroDivisionError: division by zero "
            "({cwd}/broken.py, line 2)",
        ),
        (
            {"needy.py": "import not_installed_anywhere\n"},
            "[needy]",
            2,
            "Error: plugin needy could not be imported: No module named 'not_installed_anywhere'",
        ),
    ],
)
def test_bad_plugins_are_one_clear_line(tmp_path, files, plugin_list, code, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = runner(f"plugins={plugin_list}", "--cfg", "job", cwd=tmp_path)
    assert one_error_line(result, code).startswith(message.format(cwd=tmp_path))


# --- the worked example, as a user runs it -------------------------------------------------------


@pytest.mark.slow
def test_example_plugin_trains_sweeps_resumes_and_compares(tmp_path):
    """examples/plugin from a folder outside the repository: a run, a 2-job joblib sweep, a resume, a comparison."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLE, work)
    common = ["plugins=[my_plugin]", "model=tiny_cnn", "dataset=stripes", "device=cpu", "trainer.progress=false"]

    single = runner(*common, "trainer.epochs=2", cwd=work)
    assert single.returncode == 0, single.stderr
    (run,) = run_folders(work / "outputs")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"]["test_acc"] > 0.9
    assert summary["data"] == {
        "input_shape": [1, 16, 16],
        "classes": ["horizontal", "vertical", "diagonal"],
        "background": "dark",
    }
    assert (run / "plots" / "confusion_matrix.png").is_file()

    sweep = runner(
        "-m",
        *common,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model.channels=4,8",
        "trainer.epochs=1",
        "report.plots=false",
        cwd=work,
    )
    assert sweep.returncode == 0, sweep.stderr
    jobs = run_folders(work / "multirun")
    assert len(jobs) == 2
    for job, channels in zip(jobs, (4, 8)):
        assert json.loads((job / "summary.json").read_text())["status"] == "completed"
        assert yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["model"]["channels"] == channels

    first = runner(*common, "trainer.epochs=1", "report.plots=false", "hydra.run.dir=outputs/resumed", cwd=work)
    assert first.returncode == 0, first.stderr
    resumed = runner("resume=outputs/resumed", "trainer.epochs=2", cwd=work)  # the plugin comes from the run
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((work / "outputs" / "resumed" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["resumed"][0]["from_epoch"] == 1

    compared = python("-m", "mnist_runner.compare", "outputs", "multirun", "--format", "json", cwd=work)
    assert compared.returncode == 0, compared.stderr
    rows = json.loads(compared.stdout)
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows)
    assert sorted(r["model.channels"] for r in rows) == [4, 8, 16, 16]  # the sweep, and the default of the others


@pytest.mark.slow
def test_an_installed_package_is_picked_up_through_its_entry_point(tmp_path):
    package = tmp_path / "pkg"
    (package / "ep_models").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "ep-models"
            version = "0.1.0"

            [project.entry-points."mnist_runner.plugins"]
            ep_models = "ep_models"
            """
        )
    )
    (package / "ep_models" / "__init__.py").write_text(
        "from mnist_runner import register_model\n\n"
        "@register_model\ndef ep_net(input_shape, num_classes, depth=3):\n    raise NotImplementedError\n"
    )
    site = tmp_path / "site"
    install = python(
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(site),
        "-q",
        str(package),
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = runner("model=ep_net", "model.depth=5", "--cfg", "job", cwd=elsewhere, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["model"] == {"name": "ep_net", "depth": 5}


@pytest.mark.slow
def test_config_dir_with_the_users_own_model_file(tmp_path, cli):
    conf = tmp_path / "my_conf" / "model"
    conf.mkdir(parents=True)
    (conf / "mlp_wide.yaml").write_text("name: mlp\nhidden: [256, 64]\nactivation: relu\nbatch_norm: none\n")
    result = cli(f"--config-dir={tmp_path / 'my_conf'}", "model=mlp_wide", "trainer.epochs=1", "report.plots=false")
    assert result.returncode == 0, result.stderr
    (run,) = run_folders(tmp_path / "outputs")
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["choices"]["model"] == "mlp_wide"
        and summary["params"]["total"] == 784 * 256 + 256 + 256 * 64 + 64 + 650
    )


@pytest.mark.slow
def test_documented_plugin_commands_compose_where_the_example_lives(tmp_path):
    """The commands naming plugins=[...] that tests/test_docs.py cannot compose (it imports no plugins)."""
    from hydra._internal.utils import get_args_parser
    from test_docs import EXAMPLE_PLUGIN, EXCEPTIONS, all_commands, jobs

    shown = [c for c in all_commands() if EXCEPTIONS.get(c.text) == EXAMPLE_PLUGIN]
    assert len(shown) >= 3
    job_lists = []
    for command in shown:
        args = get_args_parser().parse_args(list(command.argv))
        job_lists += jobs(args.overrides) if args.multirun else [args.overrides]
    code = textwrap.dedent(
        """
        import json, sys
        from hydra import compose, initialize_config_dir
        from mnist_runner import plugins
        from mnist_runner.config import config_dir, setup
        from mnist_runner.validate import validate
        setup()
        for job in json.loads(sys.argv[1]):
            plugins.prepare(job)
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                validate(compose("config", overrides=job))
        print("composed", len(json.loads(sys.argv[1])))
        """
    )
    shutil.copy(EXAMPLE, tmp_path)
    result = python("-c", code, json.dumps(job_lists), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"composed {len(job_lists)}"
