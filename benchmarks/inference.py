"""Inference images/s of every path we ship, against a plain PyTorch eval forward and the machine's peak.

    python benchmarks/inference.py [--markdown FILE] [--json FILE]

Workloads: squeezenet1_1 at 3x224x224, batch 1 (1000 classes); squeezenet1_1 at 3x32x32, batch 256 (10
classes); squeeze_ae and dense_ae at 1x28x28, batch 256. Paths, all on the same random-initialised model
(speed does not depend on the weights' values, so nothing is trained):

- torch fp32: ``model.eval()`` under ``torch.inference_mode()``, NCHW: the baseline.
- torch channels-last: model and input in channels-last memory format, the input's conversion timed too.
- torch int8: ``quantize_int8`` (FX, x86 backend) calibrated on random images: valid for speed, not accuracy.
- onnxruntime fp32: the file ``export()`` writes (verified), run by ``open_exported``.
- onnxruntime int8: the QDQ file of ``export(int8=True)``'s quantizer, calibrated on random images as well.
- torch.compile: the eval model through inductor (gcc here), not a path squeezelab ships; its compile time
  is printed.

Each path is warmed up, then timed in blocks of calls, the blocks of all paths taking turns for
``--rounds`` rounds so that a drift in machine speed hits every path alike; the figure is the median call.
Achieved GFLOP/s = 2 x MACs per image (``count_macs``) x images/s; "of peak" divides by the fp32 GFLOP/s of
a 4096x4096 ``torch.matmul``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import machine, matmul_peak_gflops
from torch import Tensor

from squeezelab.compress.int8 import quantize_int8
from squeezelab.export import export, open_exported
from squeezelab.export.int8 import quantize_qdq
from squeezelab.export.onnx import OnnxModel
from squeezelab.models import create_model
from squeezelab.profile import count_macs


@dataclass(frozen=True)
class Workload:
    name: str
    model: str
    kwargs: dict
    shape: tuple[int, int, int]
    batch: int


WORKLOADS = [
    Workload("squeezenet1_1, 3x224x224, batch 1", "squeezenet1_1", {"num_classes": 1000}, (3, 224, 224), 1),
    Workload("squeezenet1_1, 3x32x32, batch 256", "squeezenet1_1", {"num_classes": 10}, (3, 32, 32), 256),
    Workload("squeeze_ae, 1x28x28, batch 256", "squeeze_ae", {}, (1, 28, 28), 256),
    Workload("dense_ae, 1x28x28, batch 256", "dense_ae", {}, (1, 28, 28), 256),
]
BASELINE = "torch fp32"


def paths(workload: Workload, folder: Path) -> tuple[dict[str, Callable[[], Tensor]], float]:
    """Each path as a call that runs one batch, all on one random-initialised model and one random batch;
    and the seconds torch.compile took."""
    torch.manual_seed(0)
    model = create_model(workload.model, **workload.kwargs).eval()
    x = torch.rand(workload.batch, *workload.shape)  # a bare model takes images in [0, 1]
    calibration = [torch.rand(32, *workload.shape) for _ in range(4)]
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    int8 = quantize_int8(model, calibration)
    fp32_file = export(model, folder / f"{workload.model}.onnx", input_size=workload.shape)
    onnx_fp32 = open_exported(fp32_file.path)
    onnx_int8 = OnnxModel(quantize_qdq(fp32_file.path.read_bytes(), calibration, fp32_file.meta))
    compiled = torch.compile(model)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x)
    compile_seconds = time.perf_counter() - start
    calls = {
        BASELINE: lambda: model(x),
        "torch channels-last": lambda: channels_last(x.contiguous(memory_format=torch.channels_last)),
        "torch int8 (FX, x86)": lambda: int8(x),
        "onnxruntime fp32": lambda: onnx_fp32(x),
        "onnxruntime int8 (QDQ)": lambda: onnx_int8(x),
        "torch.compile (not shipped)": lambda: compiled(x),
    }
    return calls, compile_seconds


def block_size(call: Callable[[], Tensor], seconds: float) -> int:
    """Calls per timed block: about ``seconds`` of work, at least 3; the first calls double as warm-up."""
    start = time.perf_counter()
    for _ in range(3):
        call()
    return max(3, round(seconds / ((time.perf_counter() - start) / 3)))


def measure(workload: Workload, rounds: int, seconds: float, peak: float, folder: Path) -> dict:
    runs, compile_seconds = paths(workload, folder)
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        blocks = {name: block_size(call, seconds) for name, call in runs.items()}
        for _ in range(rounds):
            for name, call in runs.items():
                call()  # onnxruntime's and torch's thread pools hand the cores over
                for _ in range(blocks[name]):
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
    macs = count_macs(create_model(workload.model, **workload.kwargs), workload.shape)
    rows = []
    for name, samples in times.items():
        seconds_per_batch = statistics.median(samples)
        images_per_s = workload.batch / seconds_per_batch
        gflops = 2 * macs * images_per_s / 1e9
        rows.append(
            {
                "path": name,
                "images_per_s": images_per_s,
                "latency_ms": 1e3 * seconds_per_batch,
                "gflops": gflops,
                "of_peak": gflops / peak,
                "calls": len(samples),
            }
        )
    baseline = next(r["images_per_s"] for r in rows if r["path"] == BASELINE)
    for row in rows:
        row["vs_baseline"] = row["images_per_s"] / baseline
    return {
        "workload": workload.name,
        "macs": macs,
        "batch": workload.batch,
        "compile_seconds": compile_seconds,
        "rows": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"**{result['workload']}** ({result['macs'] / 1e6:.3g}M MACs per image; "
        f"torch.compile took {result['compile_seconds']:.0f} s)",
        "",
        "| path | images/s | ms per batch | GFLOP/s | of peak | vs torch fp32 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['path']} | {r['images_per_s']:,.0f} | {r['latency_ms']:.3g} | {r['gflops']:.1f} | "
            f"{r['of_peak']:.1%} | {r['vs_baseline']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of timed blocks per path")
    parser.add_argument("--block-seconds", type=float, default=0.5, help="length of one timed block")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    start = time.perf_counter()
    peak = matmul_peak_gflops()
    header = f"machine: {machine()}; fp32 matmul peak (4096x4096) {peak:.0f} GFLOP/s"
    print(header, flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in WORKLOADS:
            results.append(measure(workload, args.rounds, args.block_seconds, peak, Path(tmp)))
            print(f"\n{markdown(results[-1])}", flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    if args.markdown:
        Path(args.markdown).write_text(header + "\n\n" + "\n\n".join(map(markdown, results)) + "\n")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine(), "matmul_peak_gflops": peak, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
