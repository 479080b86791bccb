"""A trained refiner as one file that runs without this project: TorchScript or ONNX.

    python -m simgan.export.portable CKPT OUT.pt   [--overwrite]   # TorchScript: needs only torch
    python -m simgan.export.portable CKPT OUT.onnx [--overwrite]   # ONNX: needs only onnxruntime

R is rebuilt by :func:`~simgan.checkpoint.load_refiner` (the EMA-averaged
weights when the run kept them), traced on CPU in float32, checked against the eager
refiner on a second batch of another size, and written with what a consumer needs to
feed it (:func:`metadata`): the input shape [C, H, W] it was trained on, the channels,
the pixel range [-1, 1] of input and output, ``noise_channels`` and the source
checkpoint's path, sha256 and step. TorchScript keeps it in the ``_extra_files`` entry
``simgan.json``; ONNX in ``metadata_props`` (each value JSON-encoded). Both files take
a batch of any size and, the refiner being fully convolutional, any H x W.

Tracing, not ``torch.jit.script``: the noise input (:mod:`simgan.models.noise`) reads
module-level integer constants, which the script compiler refuses; a trace records the
same integer operations and stays shape-generic. torch's ONNX exporter maps xor for
bools only; the int64 xor of that noise hash is exported as ONNX ``BitwiseXor``
(opset 18), so refiners with noise export both ways. With onnxruntime installed the
ONNX graph is checked like the trace.

Bad input (missing or corrupt checkpoint, an unknown suffix, an existing output without
``--overwrite``) prints one ``error:`` line and exits with status 2; the file is
written under a staging name and renamed when complete, so nothing half-written is left.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import simgan
from simgan.errors import ConfigError, DataError
from simgan.checkpoint import load_refiner
from simgan.reliability.partials import partial_path, remove_orphans
from simgan.utils.cli import task_wrapper

FORMATS = {".pt": "torchscript", ".ts": "torchscript", ".onnx": "onnx"}
METADATA_FILE = "simgan.json"  # the TorchScript _extra_files entry
ONNX_OPSET = 18
_TOLERANCE = 1e-5


def output_format(out: str | os.PathLike) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{out}: unknown output suffix {suffix or '(none)'!r}; use .pt (TorchScript) or .onnx")
    return FORMATS[suffix]


def metadata(refiner: nn.Module, info: dict, fmt: str) -> dict:
    """What a consumer of the exported file needs to know, JSON-serializable."""
    return {
        "format": "simgan-refiner",
        "export_format": fmt,
        "input_shape": info["image_shape"],
        "channels": info["channels"],
        "pixel_range_in": [-1.0, 1.0],
        "pixel_range_out": [-1.0, 1.0],
        "noise_channels": int(getattr(refiner, "noise_channels", 0) or 0),
        "source_checkpoint": info["path"],
        "source_checkpoint_sha256": info["sha256"],
        "global_step": info["global_step"],
        "refiner": info["refiner"],
        "simgan_version": simgan.__version__,
        "torch_version": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _examples(shape: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch to trace with and one of another size to check the trace on, in [-1, 1]."""
    gen = torch.Generator().manual_seed(0)
    return (torch.rand((2, *shape), generator=gen) * 2 - 1, torch.rand((3, *shape), generator=gen) * 2 - 1)


def _check_same(exported, refiner: nn.Module, example: torch.Tensor, what: str) -> None:
    with torch.no_grad():
        gap = float((exported(example) - refiner(example)).abs().max())
    if not gap <= _TOLERANCE:
        raise DataError(f"the {what} refiner differs from the checkpoint's by {gap:.3g} (> {_TOLERANCE}): not written")


def _torchscript_bytes(refiner: nn.Module, meta: dict) -> bytes:
    trace_input, check_input = _examples(meta["input_shape"])
    with warnings.catch_warnings(), torch.no_grad():
        # torch deprecates torch.jit for torch.export, which has no torch-only loader yet
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        traced = torch.jit.trace(refiner, trace_input, check_trace=False)
        _check_same(traced, refiner, check_input, "traced")
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps(meta)})
    return buffer.getvalue()


def _xor(g, a, b):
    return g.op("BitwiseXor", a, b)


def _onnx_bytes(refiner: nn.Module, meta: dict) -> bytes:
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'simgan[onnx]'") from None
    trace_input, check_input = _examples(meta["input_shape"])
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    # torch's exporter maps xor to ONNX only for bools; the noise hash xors int64, which
    # ONNX's BitwiseXor (opset 18) does exactly. Registered for this export only.
    torch.onnx.register_custom_op_symbolic("aten::__xor_", _xor, ONNX_OPSET)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            # reflection padding slices with step -1, which ONNX keeps unfolded: harmless
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            torch.onnx.export(refiner, (trace_input,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["image"], output_names=["refined"],
                              dynamic_axes={"image": axes, "refined": axes})
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::__xor_", ONNX_OPSET)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    model.doc_string = "SimGAN refiner: image (N, C, H, W) in [-1, 1] -> refined (N, C, H, W) in [-1, 1]"
    data = model.SerializeToString()
    _check_onnx(data, refiner, check_input)
    return data


def _check_onnx(data: bytes, refiner: nn.Module, example: torch.Tensor) -> None:
    """Runs the exported graph once where onnxruntime is installed (the export itself needs only onnx)."""
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    _check_same(lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0]), refiner, example, "ONNX")


def _write_atomically(data: bytes, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(out)
    staging = partial_path(out)
    try:
        with open(staging, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)


def export(ckpt: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> dict:
    """Writes the checkpoint's refiner to ``out`` (.pt TorchScript, .onnx ONNX); returns its metadata.

    Raises :class:`ConfigError` / :class:`DataError` with one message for every bad
    input, before anything is written.
    """
    out = Path(out)
    fmt = output_format(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; pass --overwrite to replace it")
    if out.is_dir():
        raise DataError(f"{out}: is a folder (an output file was expected)")
    refiner, info = load_refiner(ckpt)
    if not info["image_shape"]:
        raise DataError(f"{ckpt}: checkpoint records no image_shape; it was not written by src/train.py")
    refiner = refiner.float().cpu()
    meta = metadata(refiner, info, fmt)
    data = _torchscript_bytes(refiner, meta) if fmt == "torchscript" else _onnx_bytes(refiner, meta)
    _write_atomically(data, out)
    return meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of an exported file (TorchScript or ONNX) as :func:`metadata` wrote it."""
    path = Path(path)
    if output_format(path) == "torchscript":
        extra = {METADATA_FILE: ""}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return json.loads(extra[METADATA_FILE])
    import onnx

    return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simgan.export.portable", description=__doc__.split("\n")[0])
    parser.add_argument("ckpt", help="a checkpoint written by src/train.py")
    parser.add_argument("out", help="OUT.pt (TorchScript) or OUT.onnx (ONNX)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    return parser


@task_wrapper
def _run(args: argparse.Namespace) -> None:
    meta = export(args.ckpt, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out} ({meta['export_format']}): input {meta['input_shape']} in [-1, 1], "
          f"noise_channels {meta['noise_channels']}, from {meta['source_checkpoint']} "
          f"(sha256 {meta['source_checkpoint_sha256'][:12]}..., step {meta['global_step']})", flush=True)


def main(argv: list[str] | None = None) -> None:
    _run(_parser().parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
