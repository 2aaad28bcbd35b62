"""Sweeps on a SLURM cluster, where jobs get cancelled, killed, preempted and stopped at their time limit.

Hydra's submitit launcher (hydra-submitit-launcher, extra `sweep`) submits one job per combination
and waits for them. This module's launchers are that launcher with what a cluster needs added
(docs/cluster.md):

- **Lost jobs.** A job that ends without a result (cancelled, killed for memory, stopped at its time
  limit, its node failed) no longer stops the sweep with a traceback: its summary.json says what
  happened (`status` interrupted or failed, `error`, and `cluster`: the job id and its state from
  sacct), every other job's result is collected, and the sweep summary lists it (sweep.py; exit 1).
  A job that never started gets a folder with its config too, so it can be resumed like any other.
- **SIGUSR2** (SLURM's warning before it preempts a job or, with submitit's `--signal`, before the
  time limit) stops the run like Ctrl-C: the epoch in progress is abandoned, `status: interrupted`,
  the last checkpoint kept. Then submitit's protocol decides: `checkpoint()` returns the job's
  resubmission and the job is requeued, unless it is out of time with no requeue left
  (`hydra.launcher.max_num_timeout`, 0 by default), when it ends `interrupted`.
- **Requeued jobs continue.** A job started again (requeued by submitit after SIGUSR2, or by SLURM
  itself after a node failure) continues in its own folder from its last completed epoch, exactly as
  `resume=FOLDER` would, so the result is the same bit for bit as a run never stopped (on the CPU).

Hydra options (`store_launchers`): `hydra/launcher=slurm` and `hydra/launcher=local` (jobs in local
processes through submitit), also under the plugin's own names `submitit_slurm` and `submitit_local`.
"""

import copy
import math
import os
import signal
import subprocess
import time
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import log
from omegaconf import OmegaConf, open_dict

from .run_folder import DamagedRun, RunFolder, new_summary

# How a job that ended without a result ended, by the first word of its SLURM state (sacct) or, for
# jobs in local processes, submitit's state. Stopped from outside: `interrupted`, to be continued.
STOPPED = {
    "TIMEOUT": "reached its time limit",
    "PREEMPTED": "was preempted",
    "CANCELLED": "was cancelled",
    "DEADLINE": "reached its deadline",
    "INTERRUPTED": "was killed by a signal",
    "UNKNOWN": "left the queue with no record in SLURM's accounting (cancelled while it waited?)",
}
BROKEN = {  # `failed`
    "OUT_OF_MEMORY": "was killed for using more memory than it asked for (hydra.launcher.mem_gb)",
    "NODE_FAIL": "lost its node",
    "BOOT_FAIL": "could not start its node",
}


class ClusterLauncher:
    """What Hydra's submitit launcher gets here (see the module's docstring): mixed into it in
    hydra_plugins/mnist_runner_cluster.py, since Hydra takes launchers only from the hydra_plugins package."""

    continues = False  # True on the copy that checkpoint() hands to submitit to requeue

    # --- in the sweep's process --------------------------------------------------------------------

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        """Submit one job per list of overrides (as the plugin does), wait, and collect every outcome."""
        import submitit

        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in shared else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        nums = list(range(initial_job_idx, initial_job_idx + len(job_overrides)))
        for num, overrides in zip(nums, job_overrides):
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
        n = len(nums)
        args = ([list(o) for o in job_overrides], ["hydra.sweep.dir"] * n, nums, [f"job_id_for_{i}" for i in nums])
        jobs = executor.map_array(self, *args, [Singleton.get_state()] * n)
        return [self._outcome(job, num, list(overrides)) for job, num, overrides in zip(jobs, nums, job_overrides)]

    def _outcome(self, job, num: int, overrides: list[str]) -> JobReturn:
        """The job's JobReturn; for a job that ended without one, its record (see `record_lost`) and NaN."""
        from submitit.core.utils import UncompletedJobError

        state = self._wait(job)
        error = None
        if job.paths.result_pickle.exists() or state == "COMPLETED":  # a result (maybe not yet visible)
            try:
                return job.results()[0]
            except UncompletedJobError as e:  # no result after all, or an error outside the task
                error = str(e).strip().splitlines()[-1]
        cfg = self._sweep_config(overrides, num, job.job_id)
        record_lost(cfg, self._EXECUTOR, job.job_id, state, error, log=Path(job.paths.stderr))
        return _nan_return(overrides)

    def _wait(self, job) -> str:
        """Wait until the job has ended (submitit's job.wait()); its state. On SLURM, squeue has the last
        word both ways. A job that sacct says ended while squeue still lists it was requeued (sacct showed
        how the earlier attempt ended): it is waited for again. A job that left the queue with no record in
        SLURM's accounting (an array task cancelled while it waited) would keep submitit waiting: after two
        looks 5 s apart it counts as ended, in state UNKNOWN."""
        misses, looked = 0, time.time()
        while not job.done() or self._requeued(job):
            if self._EXECUTOR == "slurm" and time.time() - looked >= 5:
                looked = time.time()
                gone = job.state == "UNKNOWN" and not _queued(job.job_id) and not job.get_info(mode="force")
                misses = misses + 1 if gone else 0
                if misses == 2:
                    break
            time.sleep(1)
        return job.state

    def _requeued(self, job) -> bool:
        """Whether a job that submitit takes for ended (no result) is still in SLURM's queue; if so, submitit's
        watcher forgets the state it cached, and learns the job's state again at its next look."""
        if self._EXECUTOR != "slurm" or job.paths.result_pickle.exists() or not _queued(job.job_id):
            return False
        job.watcher._finished.discard(job.job_id)  # submitit keeps the states of ended jobs for good
        job.watcher._info_dict.pop(job.job_id, None)  # UNKNOWN until its next sacct: not done
        return True

    def _sweep_config(self, overrides: list[str], num: int, job_id: str):
        """The job's config as the job composes it (Hydra's load_sweep_config, with its number)."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.id, cfg.hydra.job.num = job_id, num
        return cfg

    # --- in the job ----------------------------------------------------------------------------------

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state) -> JobReturn:
        """Run the job (the plugin's __call__); SIGUSR2 stops the run, then requeue or end (see `_after_usr2`)."""
        from .checkpoint import signals_interrupt

        if self.continues or int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0:
            self.task_function = _in_own_folder(self.task_function)
        submitit_handler = signal.getsignal(signal.SIGUSR2)
        with signals_interrupt(signal.SIGUSR2) as arrived:
            try:
                return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
            except (SystemExit, KeyboardInterrupt):  # the run recorded `interrupted` and exited
                if not arrived:
                    raise
            return self._after_usr2(submitit_handler, list(sweep_overrides), job_num)

    def _after_usr2(self, submitit_handler, overrides: list[str], num: int) -> JobReturn:
        """Submitit's protocol: checkpoint() (below), requeue and exit; or, when it does not requeue
        (out of time with no requeue left), the job ends `interrupted` with the reason recorded."""
        import submitit
        from submitit.core.utils import UncompletedJobError

        handler = getattr(submitit_handler, "__self__", None)
        reason = "not a submitit job"
        if hasattr(handler, "checkpoint_and_try_requeue"):
            try:
                handler.checkpoint_and_try_requeue(signal.SIGUSR2)  # exits the process when it requeues
            except UncompletedJobError as e:
                reason = str(e).removeprefix("Job not requeued because: ").rstrip(".")
        job_id = submitit.JobEnvironment().job_id
        folder = job_folder(self._sweep_config(overrides, num, job_id))
        what = f"got SIGUSR2 and was not requeued: {reason}"
        note(folder, self._EXECUTOR, job_id, "interrupted", "SIGUSR2, not requeued", what)
        return _nan_return(overrides)

    def checkpoint(self, *args, **kwargs):
        """Submitit's checkpointing protocol: the resubmission of this job, which continues from its checkpoint."""
        import submitit

        continued = copy.copy(self)
        continued.continues = True
        return submitit.helpers.DelayedSubmission(continued, *args, **kwargs)


def _queued(job_id: str) -> bool:
    """Whether squeue lists the job (waiting, running or completing)."""
    result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


def _log_end(log: Path) -> str | None:
    """Where a job's log is and its last error line (srun's `task 0: Killed`, slurmstepd's `oom_kill`
    event), or its last line; None without a log."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    errors = [line for line in lines if "error" in line.lower()]
    return f"its log {log} says: {(errors or lines)[-1]}" if lines else None


def _in_own_folder(task):
    """The task function, continuing the run in the job's own folder (resume=FOLDER of train.py)."""

    def continue_run(cfg):
        from hydra.core.hydra_config import HydraConfig

        cfg.resume = HydraConfig.get().runtime.output_dir
        return task(cfg)

    return continue_run


def _nan_return(overrides: list[str]) -> JobReturn:
    """What a job that did not finish returns to the sweeper (the task's own value for such a job)."""
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=math.nan)


# --- the record of a lost job ----------------------------------------------------------------------


def job_folder(cfg) -> Path:
    """The folder of the job whose config (with its number) is `cfg`."""
    return Path(str(cfg.hydra.sweep.dir)).resolve() / str(cfg.hydra.sweep.subdir)


def record_lost(cfg, executor: str, job_id: str, state: str, error: str | None = None, log: Path | None = None):
    """Write into the folder of the job with config `cfg` how it ended without a result: its SLURM
    state `state` (or `error`; for a job that failed without one, the end of its `log`). A job that never
    started gets its folder, its .hydra/ config files (so that `resume=` can start it) and a summary.json."""
    folder = job_folder(cfg)
    if not RunFolder(folder).has_config:
        RunFolder(folder).write_config(cfg)
    word = (state or "UNKNOWN").split()[0]
    what = STOPPED.get(word) or BROKEN.get(word) or "ended without a result"
    status = "interrupted" if word in STOPPED else "failed"
    if error is None and status == "failed" and log is not None:  # say where it says why
        error = _log_end(log)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    what = f"{what} ({state}: {error})" if error else f"{what} ({state})"
    note(folder, executor, job_id, status, state, what, choices, list(cfg.hydra.overrides.task))


def note(folder: Path, executor: str, job_id: str, status: str, state: str, what: str, choices=None, overrides=None):
    """Set `status`, `error` ("SLURM job ID WHAT") and `cluster` (executor, job id, state) in the job's
    summary.json (made when the job made none)."""
    folder = RunFolder(folder)
    try:
        summary = folder.summary()
    except DamagedRun:  # none yet (or one beyond reading): this record is all there is
        what += ", before it started"
        summary = new_summary(choices or {}, overrides or [])
    if summary.get("status") == "interrupted":  # it stopped on a signal and recorded so: that stands
        status = "interrupted"
    if summary.get("status") != "completed":  # a job killed after it finished keeps its result
        summary.update(status=status, error=f"{'SLURM' if executor == 'slurm' else 'Local'} job {job_id} {what}")
    summary["cluster"] = {"executor": executor, "job_id": job_id, "state": state}
    folder.write_summary(summary)


def store_launchers() -> None:
    """`hydra/launcher=slurm` and `=local` in Hydra's ConfigStore, also under the plugin's own names
    `submitit_slurm` and `submitit_local`: the plugin's keys and defaults, these launchers. Called by
    config.py after Hydra's plugin scan, which stores the plugin's own options (and would replace these)."""
    plugin = "hydra_plugins.mnist_runner_cluster"
    for names, node in (
        (("slurm", "submitit_slurm"), SlurmQueueConf(_target_=f"{plugin}.SlurmLauncher")),
        (("local", "submitit_local"), LocalQueueConf(_target_=f"{plugin}.LocalLauncher")),
    ):
        for name in names:
            ConfigStore.instance().store(group="hydra/launcher", name=name, node=node, provider="mnist_runner")
