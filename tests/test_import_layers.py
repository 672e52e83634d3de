"""The subpackages of ``common`` import downwards only: each may import those listed before it, never one after.

The order is the one the code needs: numerical helpers (``ops``) at the bottom; readers and writers; flow fields;
transforms (which name the key of a bad input and the sample's source file); datasets; losses and metrics
(numerics only, never transforms); post-processing (network output to instances, built on transforms and
flows); networks; inferers; handlers (which report metrics); bundle tooling and deployment on top. A new
subpackage must be placed here.
"""

import ast
from pathlib import Path

import common

LAYERS = [
    "ops",
    "io",
    "flows",
    "transforms",
    "data",
    "losses",
    "metrics",
    "postprocess",
    "networks",
    "baselines",
    "inferers",
    "handlers",
    "bundle",
    "slides",
    "deploy",
    "napari",
]
ROOT = Path(common.__file__).parent


def _imported_subpackages(path: Path) -> set[str]:
    """Subpackages of ``common`` that the module at ``path`` imports (absolute or relative imports)."""
    package = path.relative_to(ROOT).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = list(package[: len(package) - node.level + 1])
                names = [base + (node.module.split(".") if node.module else [alias.name]) for alias in node.names]
                names = [["common", *name] for name in names]
            else:
                names = [(node.module or "").split(".") + [alias.name] for alias in node.names]
        else:
            continue
        found.update(name[1] for name in names if len(name) > 1 and name[0] == "common")
    return found


def test_every_subpackage_has_a_layer():
    subpackages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}
    assert subpackages <= set(LAYERS), f"place {sorted(subpackages - set(LAYERS))} in LAYERS"


def test_subpackages_import_only_layers_below():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2:
            continue  # common/__init__.py and top-level modules
        layer = LAYERS.index(parts[0])
        for imported in _imported_subpackages(path):
            if imported in LAYERS and LAYERS.index(imported) > layer:
                upward.append(f"{path.relative_to(ROOT.parent)} ({parts[0]}) imports common.{imported}")
    assert not upward, "\n".join(upward)


def test_the_helpers_detect_an_upward_import(tmp_path):
    assert _imported_subpackages(ROOT / "metrics" / "cellseg.py") >= {"ops", "metrics"}
    assert "metrics" in _imported_subpackages(ROOT / "handlers" / "instance_report.py")
