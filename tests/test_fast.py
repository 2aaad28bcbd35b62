"""Time to a good model (issue 21): the mnist_fast preset, and bf16 autocast on CPUs that have bf16 instructions.
The preset's accuracy and times are measured on real MNIST by benchmarks/benchmark.py (BENCHMARKS.md); here, what
can be checked on the fixture data and on any CPU."""

import pytest
import torch
from conftest import compose_config, run_in_process

from mnist_runner import cpu, speed
from mnist_runner.models import build_model, count_parameters
from mnist_runner.registry import ConfigError


def test_the_fast_preset_is_the_recipe_benchmarked():
    cfg = compose_config("experiment=mnist_fast")
    assert cfg.model.name == "fast_cnn" and count_parameters(build_model(cfg.model, (1, 28, 28), 10))["total"] == 54_018
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.amp, cfg.trainer.channels_last) == (
        1,
        128,
        "auto",
        True,
    )
    assert (cfg.optimizer.name, cfg.optimizer.lr, list(cfg.optimizer.betas)) == ("adam", 0.01, [0.95, 0.9])
    assert (cfg.scheduler.name, cfg.scheduler.max_lr, cfg.scheduler.pct_start) == ("onecycle", 0.01, 0.25)
    assert cfg.loss.label_smoothing == 0.1 and cfg.dataset.normalize == "fixed" and cfg.dataset.mean is None


def test_bf16_needs_a_cpu_that_has_it(monkeypatch):
    monkeypatch.setattr(cpu, "native_bf16", lambda: None)
    with pytest.raises(ConfigError, match="^trainer.amp=true is not allowed on this CPU: it has no bf16 instructions"):
        speed.bf16_hardware(torch.device("cpu"))
    monkeypatch.setattr(cpu, "native_bf16", lambda: "avx512_bf16 (Some CPU)")
    assert speed.bf16_hardware(torch.device("cpu")) == "avx512_bf16 (Some CPU)"


def test_amp_auto_is_bf16_where_native_and_float32_elsewhere_and_says_which(monkeypatch, capsys):
    from omegaconf import OmegaConf

    trainer = OmegaConf.create({"threads": 1, "amp": "auto"})
    monkeypatch.setattr(cpu, "native_bf16", lambda: None)
    got = speed.configure(trainer, torch.device("cpu"))
    assert (got.amp, got.bf16) == (False, None) and speed.Autocast not in map(
        type, [got.forward_model(torch.nn.Linear(2, 2))]
    )
    assert "trainer.amp=auto: float32 (this CPU has no bf16 instructions" in capsys.readouterr().out
    monkeypatch.setattr(cpu, "native_bf16", lambda: "avx512_bf16 (Some CPU)")
    got = speed.configure(trainer, torch.device("cpu"))
    assert (got.amp, got.bf16) == (True, "avx512_bf16 (Some CPU)")
    assert isinstance(got.forward_model(torch.nn.Linear(2, 2)), speed.Autocast)
    assert "trainer.amp=auto: bf16 autocast on avx512_bf16 (Some CPU)" in capsys.readouterr().out


def test_native_bf16_reads_the_cpus_flags(tmp_path, monkeypatch):
    from pathlib import Path

    info = tmp_path / "cpuinfo"
    real = Path.read_text
    monkeypatch.setattr(
        Path,
        "read_text",
        lambda self, *a, **k: info.read_text() if str(self) == "/proc/cpuinfo" else real(self, *a, **k),
    )
    info.write_text("model name\t: Zen 4\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert cpu.native_bf16() == "avx512_bf16 (Zen 4)"
    info.write_text("model name\t: Old\nflags\t\t: fpu sse avx2\n")
    assert cpu.native_bf16() is None
    info.write_text("Features\t: fp asimd bf16\nCPU part\t: 0xd40\n")
    assert cpu.native_bf16() == "bf16 (0xd40)"


@pytest.mark.skipif(cpu.native_bf16() is None, reason="this CPU has no bf16 instructions (bf16 would be emulated)")
@pytest.mark.slow
def test_a_bf16_run_on_this_cpu_records_it_and_trains(tmp_path, data_root):
    summary = run_in_process(tmp_path, data_root, "experiment=mnist_fast", "trainer.batch_size=30", "trainer.epochs=2")
    assert summary["status"] == "completed" and summary["speed"]["amp"] is True
    assert summary["speed"]["bf16"] == cpu.native_bf16()
    assert summary["final"]["test_acc"] > 0.5  # the fixture's classes are easy
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())  # weights stay float32
