"""`gridwatch models info PATH`: what a manifest, or a model file, says about a detector.

A manifest is validated and printed. A model file (.onnx, .pt) is answered with the manifest that sits next to it;
an .onnx without one is described by ONNX Runtime (its inputs and outputs), which is what a manifest has to match.
"""

from __future__ import annotations

from pathlib import Path

from gridwatch.models.base import ModelConfigError, ModelLoadError
from gridwatch.models.manifest import MANIFEST_SUFFIXES, load_manifest, manifest_path_for, shipped_manifests

MODEL_SUFFIXES = (".onnx", ".pt")


def describe(path: Path) -> str:
    """Text for `gridwatch models info`; raises a ModelError the CLI prints as one line."""
    if not path.exists():
        raise ModelConfigError(f"{path} does not exist; pass a manifest JSON such as {_example()}")
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return load_manifest(path).model_dump_json(indent=2)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelConfigError(
            f"{path} is neither a manifest ({', '.join(MANIFEST_SUFFIXES)}) nor a model ({', '.join(MODEL_SUFFIXES)})"
        )
    try:
        manifest = manifest_path_for(path)
    except ModelConfigError:
        if path.suffix.lower() != ".onnx":
            raise ModelConfigError(
                f"{path} is a model, not a manifest, and has no manifest next to it; pass its manifest JSON "
                f"(for example {_example()})"
            ) from None
        return _onnx_io(path)
    return f"# manifest {manifest}\n{load_manifest(manifest).model_dump_json(indent=2)}"


def _onnx_io(path: Path) -> str:
    import onnxruntime as ort  # only here: `gridwatch models info x.json` must not load it

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for unreadable graphs
        raise ModelLoadError(f"ONNX Runtime cannot load {path}: {exc}") from exc
    lines = [f"# {path} has no manifest next to it (looked for <stem>{'/'.join(MANIFEST_SUFFIXES)}); "
             "ONNX Runtime reports:"]
    lines += [f"input  {i.name}: {i.type} {list(i.shape)}" for i in session.get_inputs()]
    lines += [f"output {o.name}: {o.type} {list(o.shape)}" for o in session.get_outputs()]
    lines.append(f"write a manifest like {_example()} next to it as {path.with_suffix('.json').name}")
    return "\n".join(lines)


def _example() -> str:
    shipped = shipped_manifests()
    return shipped[-1] if shipped else "models/demo/<model>.json"
