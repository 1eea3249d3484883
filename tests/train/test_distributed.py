"""Two CPU processes under torchrun train exactly what one process trains with the same global batch."""

import datetime
import os
import subprocess
import sys

import pytest
import torch

from squeezelab.checkpoint import load_checkpoint
from squeezelab.train.distributed import ProcessGroup

TRAIN = [
    "train", "dense_ae", "--data", "digits", "--epochs", "2", "--batch-size", "64", "--optimizer", "sgd",
    "--lr", "0.05", "--validation-split", "0.2", "--quiet",
]  # fmt: skip


def run(args, cwd, nproc=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "squeezelab"]
    if nproc:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                    "--master_port", "29517", "-m", "squeezelab"]  # fmt: skip
    return subprocess.run([*launcher, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_shards_of_a_step_make_up_the_global_batch():
    order = torch.randperm(103)
    shards = [ProcessGroup(r, 2).shard(order, equal=True) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 51
    kept = order[:102]  # one sample left out, so both processes take the same number of steps
    for k in range(0, 51, 16):  # local batch 16, global batch 32
        together = torch.cat([s[k : k + 16] for s in shards]).sort().values
        assert torch.equal(together, kept[2 * k : 2 * k + 32].sort().values)


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    single = run([*TRAIN, "--out-dir", str(tmp_path), "--name", "one"], tmp_path)
    assert single.returncode == 0, single.stderr
    double = run([*TRAIN, "--out-dir", str(tmp_path), "--name", "two"], tmp_path, nproc=2)
    assert double.returncode == 0, double.stderr
    one, meta_one = load_checkpoint(tmp_path / "one" / "last.safetensors")
    two, meta_two = load_checkpoint(tmp_path / "two" / "last.safetensors")
    assert meta_two["world_size"] == 2
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key
    # metrics are reduced over both processes: the same validation loss as one process
    assert meta_two["metrics"]["val_loss"] == pytest.approx(meta_one["metrics"]["val_loss"], rel=1e-5)
    # and only rank 0 wrote: one metrics line per epoch
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2
    # a run trained by 2 processes resumes in 1: the global batch stays, and the message says so
    resumed = run(["train", "--resume", str(tmp_path / "two"), "--epochs", "3", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming a run trained with 2 process(es) in 1: the global batch stays 64" in resumed.stderr
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 3


def _share(rank: int, init_file: str, answers) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        answers[rank] = ProcessGroup(rank, 2).main_value(1.25 + rank)
    finally:
        torch.distributed.destroy_process_group()


def test_rank_0_clock_stands_for_every_process(tmp_path):
    answers = torch.multiprocessing.Manager().dict()
    torch.multiprocessing.spawn(_share, args=(str(tmp_path / "init"), answers), nprocs=2)
    assert dict(answers) == {0: 1.25, 1: 1.25}  # rank 1 read 2.25
    assert ProcessGroup().main_value(3.5) == 3.5


class _Clock:
    """A process's clock, advancing a fixed amount at every reading."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def _train_on_a_clock(rank: int, init_file: str, answers) -> None:
    from squeezelab.train import fit
    from squeezelab.train import trainer as trainer_module

    # Rank 1's clock runs 1.5 times as fast as rank 0's: were any decision taken from a process's own clock, the
    # two would part ways at a step or an epoch and the next all-reduce would time out.
    trainer_module.time = _Clock(0.01 * (1 + rank / 2))
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30)
    )
    try:
        options = {"epochs": 1000, "batch_size": 64, "schedule": "onecycle", "low_res": (16,), "low_res_share": 0.5}
        small = {"stem_channels": 16, "base_e": 32, "incr_e": 16, "stages": (1, 1, 2)}
        history = fit(
            "squeezenet_cifar", "digits", image_size=24, model_kwargs=small, max_time=1.5, time_schedule=True,
            verbose=0, **options,
        )  # fmt: skip
        answers[rank] = [(e["time"], e["lr"]) for e in history.epochs]
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_a_time_budget_spanning_epochs_is_read_off_rank_0s_clock_alone(tmp_path):
    answers = torch.multiprocessing.Manager().dict()
    torch.multiprocessing.spawn(_train_on_a_clock, args=(str(tmp_path / "init"), answers), nprocs=2)
    assert answers[0] == answers[1]
    assert len(answers[0]) > 2 and answers[0][-1][0] >= 1.5 and answers[0][-1][1] == 0.0


@pytest.mark.slow
def test_processes_stop_at_the_same_step_when_time_runs_out(tmp_path):
    # Steps of about a millisecond: each process's own clock would stop it at a different step than the other.
    args = [*TRAIN, "--epochs", "500", "--batch-size", "8", "--max-time", "1", "--out-dir", str(tmp_path)]
    result = run([*args, "--name", "timed"], tmp_path, nproc=2)
    assert result.returncode == 0, result.stderr
    _, meta = load_checkpoint(tmp_path / "timed" / "last.safetensors")
    assert meta["world_size"] == 2
    epochs = (tmp_path / "timed" / "metrics.jsonl").read_text().splitlines()
    assert 1 <= len(epochs) < 500


@pytest.mark.slow
def test_a_batch_the_processes_cannot_share_is_one_line_and_exit_2(tmp_path):
    args = [*TRAIN, "--batch-size", "63", "--out-dir", str(tmp_path), "--name", "odd"]
    result = run(args, tmp_path, nproc=2)
    assert result.returncode != 0
    assert result.stderr.count("squeezelab: error: batch_size 63 is not divisible by the 2 processes\n") == 1
    # torchrun's launcher prints its own traceback of the failed children; none comes from squeezelab itself
    assert "squeezelab/" not in result.stderr
