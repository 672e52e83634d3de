"""Offline model-zoo checks of a bundle folder or zip: files, metadata schema, version, weights (hashes of
``large_files.yml``, loading), network I/O, TorchScript."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from .configs import inference_config

__all__ = ["REQUIRED_FILES", "verify_bundle", "BundleCheckError", "unpacked", "check_weights", "large_files"]

REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/train.json",
    "configs/evaluate.json",
    "configs/inference.json",
    "configs/multi_gpu_train.json",
    "configs/multi_gpu_evaluate.json",
    "configs/multi_gpu_inference.json",
    "configs/logging.conf",
    "docs/README.md",
    "LICENSE",
)
logger = logging.getLogger(__name__)


class BundleCheckError(AssertionError):
    """One or more checks failed; the message lists each with its reason."""


@contextmanager
def unpacked(path: str | Path) -> Iterator[Path]:
    """The bundle folder of ``path``: the folder itself, or the single top folder of a zip extracted to a temporary
    folder (removed afterwards)."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not zipfile.is_zipfile(path):
        raise FileNotFoundError(f"{path}: neither a bundle folder nor a zip file.")
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
        tops = {name.split("/")[0] for name in archive.namelist()}
        if len(tops) != 1:
            raise BundleCheckError(f"{path}: a bundle zip holds one top folder, found {sorted(tops)}.")
        archive.extractall(tmp)
        yield Path(tmp) / tops.pop()


def check_files(bundle: Path, schema: Path | None) -> str:
    missing = [name for name in REQUIRED_FILES if not (bundle / name).is_file()]
    if missing:
        raise BundleCheckError(f"missing {missing}")
    return "all present"


def check_schema(bundle: Path, schema: Path | None) -> str:
    from monai.bundle import verify_metadata

    if schema is None:
        return "skipped: no schema file given (--schema meta_schema_20240725.json)"
    if not schema.is_file():
        raise BundleCheckError(f"schema file {schema} not found")
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(schema))
    return f"valid against {schema.name}"


def check_version(bundle: Path, schema: Path | None) -> str:
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    if metadata["version"] not in metadata.get("changelog", {}):
        raise BundleCheckError(f"version {metadata['version']} has no changelog entry")
    return metadata["version"]


def inference_network(bundle: Path, overrides: dict | None = None):
    """The bundle's ``network_def`` (with ``overrides``) and its metadata's ``network_data_format``."""
    parser = inference_config(bundle / "configs" / "inference.json", {**(overrides or {}), "bundle_root": str(bundle)})
    return parser.get_parsed_content("network_def"), parser.get("_meta_")["network_data_format"]


def check_network_io(bundle: Path, schema: Path | None, overrides: dict | None = None) -> str:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        device="cpu",
        n=1,
        bundle_root=str(bundle),
        **(overrides or {}),
    )
    return "shapes and dtypes match network_data_format"


def check_torchscript(bundle: Path, schema: Path | None, overrides: dict | None = None) -> str:
    """Script the network (trace it where scripting fails, as ``ckpt_export --use_trace`` would) and compare."""
    network, data_format = inference_network(bundle, overrides)
    network.eval()
    fmt = data_format["inputs"]["image"]
    x = torch.rand(1, fmt["num_channels"], *fmt["spatial_shape"])
    try:
        exported, how = torch.jit.script(network), "scripted"
    except Exception as error:  # e.g. MONAI's 2D SwinUNETR
        exported, how = torch.jit.trace(network, x), f"traced (not scriptable: {str(error).splitlines()[0][:80]})"
    with torch.no_grad():
        torch.testing.assert_close(exported(x), network(x))
    return f"{how} network equals the eager one"


WEIGHT_SUFFIXES = (".pt", ".pth", ".ts")


def large_files(bundle: Path) -> list[dict]:
    """Entries of the bundle's ``large_files.yml`` (``path``, ``url``, ``hash_val``, ``hash_type``); [] without one."""
    listing = bundle / "large_files.yml"
    if not listing.is_file():
        return []
    try:
        import yaml
    except ImportError as error:  # MONAI's own download_large_files needs it too
        raise BundleCheckError(f"{listing}: reading it needs PyYAML (pip install pyyaml)") from error
    entries = (yaml.safe_load(listing.read_text()) or {}).get("large_files")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("path") for e in entries):
        raise BundleCheckError(f"{listing}: expected 'large_files:' followed by entries with a 'path'")
    return entries


def check_weights(bundle: Path, schema: Path | None, overrides: dict | None = None) -> str:
    """Every weight file is listed in ``large_files.yml`` with its hash, is there, has that hash and loads into the
    bundle's network; listed files without a hash (an original's published checkpoint) need a URL."""
    import hashlib

    from common.networks import load_pretrained

    entries = large_files(bundle)
    shipped = (
        {
            path.relative_to(bundle).as_posix()
            for path in (bundle / "models").rglob("*")
            if path.is_file() and path.suffix in WEIGHT_SUFFIXES
        }
        if (bundle / "models").is_dir()
        else set()
    )
    problems: list[str] = []
    verified: list[str] = []
    published: list[str] = []
    for entry in entries:
        path, digest = str(entry["path"]), str(entry.get("hash_val") or "")
        if not digest:
            (published if entry.get("url") else problems).append(
                path if entry.get("url") else f"{path}: listed with neither hash nor url"
            )
            continue
        if not (bundle / path).is_file():
            problems.append(f"{path}: listed in large_files.yml but missing")
            continue
        kind = str(entry.get("hash_type") or "sha256").lower()
        if kind not in ("sha256", "md5", "sha1", "sha512"):
            problems.append(f"{path}: unknown hash_type {kind!r}")
            continue
        actual = hashlib.new(kind, (bundle / path).read_bytes()).hexdigest()
        if actual != digest:
            problems.append(f"{path}: {kind} {actual} differs from large_files.yml's {digest} (altered or truncated)")
            continue
        if Path(path).suffix != ".ts":
            try:
                load_pretrained(inference_network(bundle, overrides)[0], bundle / path)
            except Exception as error:  # names the file; a file of another network or size
                problems.append(f"{path}: does not load into the network: {error}")
                continue
        verified.append(path)
    listed = {str(entry["path"]) for entry in entries}
    problems += [
        f"{path}: not listed in large_files.yml (no hash to check it against)" for path in sorted(shipped - listed)
    ]
    if problems:
        raise BundleCheckError("; ".join(problems))
    found = f"{len(verified)} file(s) match their hash and load: {verified}" if verified else "no weights shipped"
    return found + (f"; published elsewhere, fetched from their URLs: {published}" if published else "")


#: the checks that build the network, and so take config overrides (e.g. a smaller encoder)
BUILDS_NETWORK = ("weights", "network input/output", "TorchScript export")
CHECKS: dict[str, Callable[..., str]] = {
    "files": check_files,
    "metadata schema": check_schema,
    "version in changelog": check_version,
    "weights": check_weights,
    "network input/output": check_network_io,
    "TorchScript export": check_torchscript,
}


def verify_bundle(
    path: str | Path,
    schema: str | Path | None = None,
    report: Callable[[str], None] = print,
    overrides: dict | None = None,
) -> dict[str, str]:
    """Run every check on a bundle folder or zip; ``report`` gets one line per check; ``overrides`` of config ids
    apply where the network is built.

    Returns:
        check name -> what it found.

    Raises:
        BundleCheckError: listing every failed check and its reason.
    """
    schema = Path(schema) if schema else None
    results, failures = {}, []
    with unpacked(path) as bundle:
        sys.path.insert(0, str(bundle))  # the bundle's copy of common, where it has one, serves its configs
        try:
            for name, check in CHECKS.items():
                try:
                    extra = (overrides,) if name in BUILDS_NETWORK else ()
                    results[name] = check(bundle, schema, *extra)
                    report(f"ok      {name}: {results[name]}")
                except Exception as error:  # every check runs; all failures are reported together
                    failures.append(f"{name}: {error}")
                    report(f"FAILED  {name}: {error}")
                if name == "files" and failures:
                    break
        finally:
            sys.path.remove(str(bundle))
    if failures:
        raise BundleCheckError(f"{path}: " + "; ".join(failures))
    return results
