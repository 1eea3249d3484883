"""Faults a hostile user or a full machine causes: each ends in one line and its exit code, nothing lost or
written outside the run directory."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squeezelab.cli import main
from squeezelab.errors import ConfigError
from squeezelab.train import TrainConfig
from squeezelab.train.config import SECTIONS, validate_config

TINY = ["train", "dense_ae", "--data", "digits", "--image-size", "8", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-epoch run to point the other commands at."""
    out = tmp_path_factory.mktemp("runs")
    assert main([*TINY, "--out-dir", str(out), "--name", "ok"]) == 0
    return out / "ok"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_two_runs_started_together_with_one_name_the_second_is_refused(tmp_path):
    argv = [sys.executable, "-m", "squeezelab.cli", *TINY, "--out-dir", str(tmp_path), "--name", "same"]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(timeout=120), p.stderr.read()) for p in runs)
    assert [code for code, _ in results] == [0, 2]
    refusal = results[1][1].strip().splitlines()
    assert len(refusal) == 1 and "already holds a run" in refusal[0] and str(tmp_path / "same") in refusal[0]
    # One run's epochs, not two runs' interleaved.
    assert len((tmp_path / "same" / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("name", ["../escape", "a/b", "/tmp/squeezelab-absolute", "..", "."])
def test_a_name_is_one_folder_inside_out_dir(tmp_path, capsys, name):
    out = tmp_path / "runs"
    assert main([*TINY, "--out-dir", str(out), "--name", name]) == 2
    assert "--name" in _one_line(capsys)
    assert not (tmp_path / "escape").exists() and not os.path.exists("/tmp/squeezelab-absolute")
    assert not out.exists()


def test_a_full_disk_while_saving_is_exit_3_and_the_failed_run_frees_its_name(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "full" / "last.safetensors"))

    monkeypatch.setattr("squeezelab.train.run_dir.save_checkpoint", full)
    assert main([*TINY, "--out-dir", str(tmp_path / "runs"), "--name", "full"]) == 3
    line = _one_line(capsys)
    assert "last.safetensors" in line and "free" in line.lower()
    assert not (tmp_path / "runs" / "full").exists()  # nothing but config.json was written, and it is gone
    monkeypatch.undo()
    assert main([*TINY, "--out-dir", str(tmp_path / "runs"), "--name", "full"]) == 0


def test_warnings_are_one_line_without_source(tmp_path, capsys, run):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    good = tmp_path / "good.png"
    from PIL import Image

    Image.new("L", (8, 8)).save(good)
    assert main(["predict", str(run), str(tmp_path), "--on-bad-image", "skip"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("squeezelab: warning: skipped 1 unreadable") and "bad.png" in err[0]


# Every subcommand, with values no run can use: exit 2 and one line, never a traceback.
BAD_INPUT = [
    ["profile", "nosuch"],
    ["profile", "squeezenet1_1", "--input", "3xAx2"],
    ["profile", "squeezenet1_1", "--batch", "0"],
    [*TINY, "--lr", "nan"],
    [*TINY, "--lr", "inf"],
    [*TINY, "--momentum", "-inf"],
    [*TINY, "--batch-size", "-3"],
    [*TINY, "--max-time", "nan"],
    ["train", "squeezenet_cifar", "--data", "digits", "--epochs", "1", "--num-classes", "0"],
    ["train", "squeezenet_cifar", "--data", "digits", "--epochs", "1", "--num-classes", "5"],
    ["train", "squeezenet_cifar", "--data", "digits", "--epochs", "1", "--arg", "in_chans=3"],
    ["train", "dense_ae", "--data", "nosuch:dir"],
    ["train", "--resume", "no/such/run"],
    ["evaluate", "no/such/run"],
    ["evaluate", "{run}", "--batch-size", "-3"],
    ["evaluate", "{run}", "--out", "{file}"],
    ["predict", "{run}", "{file}", "--top-k", "0"],
    ["predict", "no/such/run", "{file}"],
    ["export", "no/such/run"],
    ["export", "{run}", "--format", "nope"],
    ["compress", "no/such/run"],
    ["compress", "{run}", "--density", "nan"],
    ["decompress", "no/such.sqz", "-o", "{tmp}/x.safetensors"],
    ["compare", "nosuch", "--data", "digits"],
    ["compare", "autoencoders", "--data", "digits", "--epochs", "-1"],
    ["compare", "autoencoders", "--data", "digits", "--max-time", "nan"],
    ["demo", "--epochs-scale", "nan"],
]


@pytest.mark.parametrize("argv", BAD_INPUT, ids=lambda argv: " ".join(argv[:1] + argv[-2:]))
def test_every_command_refuses_bad_input_in_one_line(tmp_path, capsys, monkeypatch, run, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file, not a directory or an image")
    values = {"run": str(run), "file": str(tmp_path / "file.txt"), "tmp": str(tmp_path)}
    argv = [arg.format(**values) for arg in argv]
    assert _exit_code(argv) == 2, argv
    assert "error" in _one_line(capsys)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusals: an unknown choice
        return exc.code


FLOAT_OPTIONS = [f.name for section in SECTIONS.values() for f in fields(section) if "float" in str(f.type)]


@pytest.mark.parametrize("name", FLOAT_OPTIONS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_numeric_option_takes_nan_or_infinity(name, value):
    with pytest.raises(ConfigError, match=name):
        validate_config(TrainConfig(**{name: value}), "classification", "cpu")


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={name: NUMBERS for name in FLOAT_OPTIONS + ["epochs", "batch_size"]}))
def test_validation_refuses_with_a_config_error_or_accepts_finite_values(options):
    cfg = TrainConfig(**options)
    try:
        validate_config(cfg, "classification", "cpu")
    except ConfigError:
        return
    assert all(math.isfinite(v) for v in cfg.to_dict().values() if isinstance(v, float))
    assert cfg.optim.lr > 0 and cfg.sched.epochs >= 1 and cfg.optim.batch_size >= 1


class _Killed(BaseException):
    """The process dying: not an Exception, so that nothing on the way up handles it."""


def test_a_run_killed_while_saving_resumes_from_its_last_whole_checkpoint(tmp_path, monkeypatch):
    out, run = str(tmp_path), tmp_path / "killed"
    assert main([*TINY, "--out-dir", out, "--name", "killed", "--epochs", "1"]) == 0
    first = (run / "last.safetensors").read_bytes()

    def killed(fd):
        raise _Killed

    monkeypatch.setattr("squeezelab.io.os.fsync", killed)
    with pytest.raises(_Killed):
        main(["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    monkeypatch.undo()
    assert (run / "last.safetensors").read_bytes() == first  # epoch 2's save died: epoch 1's set is whole
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3] and json.loads((run / "last.json").read_text())["epoch"] == 3
