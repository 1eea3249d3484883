"""``squeezelab decompress``: decode a ``.sqz`` file back into a safetensors checkpoint."""

from __future__ import annotations

import argparse

from squeezelab.cli.common import add_command
from squeezelab.compress.run import decompress


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "decompress",
        help="decode a .sqz file back into a safetensors checkpoint",
        description="Decodes FILE.sqz into a checkpoint (safetensors weights + JSON sidecar) whose outputs equal "
        "the compressed model's exactly; evaluate, predict and export also read .sqz files directly.",
        examples=["squeezelab decompress runs/compress-squeezenet1_0/model.sqz -o model.safetensors"],
    )
    p.add_argument("file", metavar="FILE.sqz")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = decompress(args.file, args.output, overwrite=args.overwrite)
    print(f"wrote {out} (and its sidecar {out.with_suffix('.json').name})")
    return 0
