"""Self-contained bundle zips: the bundle folder plus a copy of ``common``, named as ``monai.bundle download``
expects."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import common

__all__ = [
    "IMPORT_TO_DISTRIBUTION",
    "NOT_EXPORTED",
    "bundle_files",
    "copy_package",
    "export_bundle",
    "large_files_yaml",
    "package_files",
    "published_large_files",
    "third_party_imports",
    "weight_files",
    "zip_name",
]

# folders a run writes into the bundle (predictions, evaluation reports, logs) and caches: never exported
RUN_OUTPUTS = {"eval", "predictions", "runs", "logs", "mlruns", "__pycache__", ".ipynb_checkpoints"}
WEIGHT_SUFFIXES = {".pt", ".ts", ".pth", ".onnx"}
# a ``path:`` entry of large_files.yml
PATH_ENTRY = re.compile(r"""\s*-?\s*path:\s*["']?([^"'\s]+)""")
# import name -> PyPI distribution, where they differ
IMPORT_TO_DISTRIBUTION = {"skimage": "scikit-image", "PIL": "pillow", "ignite": "pytorch-ignite", "yaml": "pyyaml"}
# what every bundle may import without listing it (metadata.json has its own fields for these)
BASE_DISTRIBUTIONS = {"monai", "torch", "numpy"}
# modules of ``common`` (paths in the package) that no bundle config and no Deploy application imports, with the
# reason: left out of exported bundles and of the MAP application folder (``python -m common.bundle copy-common``)
NOT_EXPORTED = {
    "data/synthetic.py": "writes synthetic datasets for tests and demos (python -m common.data.synthetic)",
    "data/scene.py": "renders the synthetic fields of view that data/synthetic.py writes",
    "data/synthetic_slides.py": "writes synthetic whole slides for tests and benchmarks",
    "bundle/bioimageio.py": "writes bioimage.io packages (python -m common.bundle export --format bioimageio)",
}


def read_metadata(bundle: Path) -> dict:
    meta_file = bundle / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{bundle}: not a bundle, {meta_file} is missing.")
    return json.loads(meta_file.read_text())


def zip_name(bundle: Path) -> str:
    """``<name>_v<version>.zip``, the file ``monai.bundle download --source github`` looks for."""
    return f"{bundle.name}_v{read_metadata(bundle)['version']}.zip"


def bundle_files(bundle: Path) -> list[Path]:
    """Files of the bundle folder that belong in a release: everything but run outputs, caches and checkpoints
    of interrupted runs (``models/checkpoint*``)."""
    files = []
    for path in sorted(bundle.rglob("*")):
        relative = path.relative_to(bundle)
        if not path.is_file() or RUN_OUTPUTS.intersection(relative.parts) or path.suffix == ".pyc":
            continue
        if relative.parts[0] == "models" and path.name.startswith("checkpoint"):
            continue
        files.append(path)
    return files


def weight_files(bundle: Path) -> list[Path]:
    return [path for path in bundle_files(bundle) if path.parts[-2] == "models" and path.suffix in WEIGHT_SUFFIXES]


def published_large_files(bundle: Path) -> tuple[list[str], set[str]]:
    """The entries of the bundle's own ``large_files.yml`` (weights an original method published, with their
    URLs) as its lines after the ``large_files:`` header, and the paths they name; none if it has no such file."""
    source = bundle / "large_files.yml"
    if not source.is_file():
        return [], set()
    lines = source.read_text().splitlines()
    headers = [index for index, line in enumerate(lines) if line.rstrip() == "large_files:"]
    if not headers:
        raise ValueError(f"{source}: expected a 'large_files:' list.")
    entries = lines[headers[0] + 1 :]
    paths = {match.group(1) for match in map(PATH_ENTRY.match, entries) if match}
    return entries, paths


def large_files_yaml(
    bundle: Path, weights: Iterable[Path], url_base: str | None = None, published: Iterable[str] = ()
) -> str:
    """``large_files.yml`` listing the ``published`` entries (lines, see :func:`published_large_files`), then each
    weight file with its SHA-256 (and its URL when ``url_base`` is given)."""
    lines = ["large_files:", *published]
    for path in weights:
        relative = path.relative_to(bundle).as_posix()
        lines.append(f'  - path: "{relative}"')
        if url_base:
            lines.append(f'    url: "{url_base.rstrip("/")}/{relative}"')
        lines += [f'    hash_val: "{hashlib.sha256(path.read_bytes()).hexdigest()}"', '    hash_type: "sha256"']
    return "\n".join(lines) + "\n"


def package_files(package_dir: Path) -> list[Path]:
    """The package's modules that bundles carry: every ``.py`` file but caches and :data:`NOT_EXPORTED`."""
    return sorted(
        p
        for p in package_dir.rglob("*.py")
        if "__pycache__" not in p.parts and p.relative_to(package_dir).as_posix() not in NOT_EXPORTED
    )


def copy_package(out_dir: str | Path, package_dir: Path | None = None) -> Path:
    """Copy the ``common`` package as bundles carry it (:func:`package_files`) to ``<out_dir>/common``."""
    package_dir = package_dir or Path(common.__file__).resolve().parent
    target = Path(out_dir) / package_dir.name
    for path in package_files(package_dir):
        destination = target / path.relative_to(package_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    return target


def third_party_imports(package_dir: Path, skip: Iterable[str] = ("deploy", "napari")) -> dict[str, set[str]]:
    """Distributions imported at module level by the package's modules, with the files importing each.

    Standard-library modules, the package itself and imports inside functions or ``try`` blocks (optional
    dependencies) are left out, as are the sub-packages in ``skip`` (``common.deploy`` and ``common.napari`` have
    their own extras).
    """
    found: dict[str, set[str]] = {}
    for path in package_files(package_dir):
        relative = path.relative_to(package_dir)
        if relative.parts[0] in skip:
            continue
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in (package_dir.name, "__future__"):
                    continue
                found.setdefault(IMPORT_TO_DISTRIBUTION.get(top, top), set()).add(relative.as_posix())
    return found


def check_requirements(bundle: Path, package_dir: Path) -> None:
    """Raise if the copied package imports a distribution that ``required_packages_version`` does not list."""
    listed = {name.lower() for name in read_metadata(bundle).get("required_packages_version", {})}
    missing = {
        d: files
        for d, files in third_party_imports(package_dir).items()
        if d.lower() not in listed | BASE_DISTRIBUTIONS
    }
    if missing:
        detail = "; ".join(f"{d} (imported by {', '.join(sorted(f))})" for d, f in sorted(missing.items()))
        raise ValueError(f"{bundle / 'configs' / 'metadata.json'}: required_packages_version lacks {detail}.")


def export_bundle(
    bundle: str | Path, out_dir: str | Path, url_base: str | None = None, overwrite: bool = False
) -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip``: one top folder ``<name>/`` holding the bundle's files, its
    weights with a ``large_files.yml`` of their hashes, and a copy of the ``common`` package.

    A bundle's own ``large_files.yml`` names weights an original method published (URL, no hash); the exported
    one keeps those entries before the bundle's weights, and the published files are left out of the zip
    (``python -m monai.bundle download_large_files`` fetches them).

    Raises:
        FileExistsError: the zip exists and ``overwrite`` is False.
        ValueError: ``common`` imports a package the bundle's ``required_packages_version`` does not list.
    """
    bundle = Path(bundle).resolve()
    package_dir = Path(common.__file__).resolve().parent
    check_requirements(bundle, package_dir)
    target = Path(out_dir) / zip_name(bundle)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; remove it or pass overwrite=True (--overwrite).")
    target.parent.mkdir(parents=True, exist_ok=True)
    published, published_paths = published_large_files(bundle)
    weights = [path for path in weight_files(bundle) if path.relative_to(bundle).as_posix() not in published_paths]
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in bundle_files(bundle):
            relative = path.relative_to(bundle).as_posix()
            if (path.name.startswith("large_files.") and path.parent == bundle) or relative in published_paths:
                continue  # written anew below; published weights are fetched from their URLs
            archive.write(path, f"{bundle.name}/{relative}")
        if weights or published:
            archive.writestr(f"{bundle.name}/large_files.yml", large_files_yaml(bundle, weights, url_base, published))
        for path in package_files(package_dir):
            archive.write(path, f"{bundle.name}/common/{path.relative_to(package_dir).as_posix()}")
    partial.replace(target)
    return target
