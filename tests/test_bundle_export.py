"""common.bundle export and verify: what goes into a zip, and the errors for bad bundles."""

import ast
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from common.bundle import BundleCheckError, export_bundle, verify_bundle
from common.bundle.__main__ import main, parse_args, parse_override
from common.bundle.export import NOT_EXPORTED, third_party_imports

REPO = Path(__file__).resolve().parents[1]
DSB = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    copy = tmp_path / DSB.name
    shutil.copytree(DSB, copy, ignore=shutil.ignore_patterns("models", "eval", "predictions"))
    return copy


def test_run_outputs_and_resume_checkpoints_stay_out(bundle_copy, tmp_path):
    for name in ("models/model.pt", "models/checkpoint_epoch=3.pt", "eval/report.json", "predictions/a_label.tiff"):
        (bundle_copy / name).parent.mkdir(exist_ok=True)
        (bundle_copy / name).write_bytes(b"x")
    names = zipfile.ZipFile(export_bundle(bundle_copy, tmp_path / "dist")).namelist()
    assert f"{DSB.name}/models/model.pt" in names and f"{DSB.name}/large_files.yml" in names
    assert not [n for n in names if "checkpoint_epoch" in n or "/eval/" in n or "/predictions/" in n or ".pyc" in n]


def test_a_package_common_imports_must_be_listed(bundle_copy, tmp_path):
    meta_file = bundle_copy / "configs" / "metadata.json"
    metadata = json.loads(meta_file.read_text())
    del metadata["required_packages_version"]["scipy"]
    meta_file.write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"lacks scipy \(imported by [^)]+\.py"):
        export_bundle(bundle_copy, tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def imported_modules(package_dir: Path) -> set[str]:
    """Every module the package's files import, at any level (inside functions too), relative imports resolved."""
    found = set()
    for path in package_dir.rglob("*.py"):
        parts = ["common", *path.relative_to(package_dir).with_suffix("").parts]
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = (
                    ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
                    if node.level
                    else node.module
                )
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_test_and_synthetic_data_modules_stay_out_and_nothing_exported_needs_them(bundle_copy, tmp_path):
    names = zipfile.ZipFile(export_bundle(bundle_copy, tmp_path / "dist")).namelist()
    exported = {name.split("/common/", 1)[1] for name in names if "/common/" in name}
    assert "data/sampling.py" in exported and not set(NOT_EXPORTED) & exported
    assert main(["copy-common", str(tmp_path / "map_app")]) == 0  # what `make map-app` copies
    copied = tmp_path / "map_app" / "common"
    assert {path.relative_to(copied).as_posix() for path in copied.rglob("*.py")} == exported
    left_out = {"common." + name.removesuffix(".py").replace("/", ".") for name in NOT_EXPORTED}
    assert "common.data.scene" in imported_modules(REPO / "common")  # the check sees relative and absolute imports
    assert not left_out & imported_modules(copied)
    configs = " ".join(path.read_text() for path in (REPO / "bundles").glob("*/configs/*.json"))
    assert not [module for module in left_out if module in configs]


def test_imports_found_are_module_level_third_party_only():
    found = third_party_imports(REPO / "common")
    assert {"torch", "monai", "numpy", "scipy", "scikit-image", "tifffile"} <= set(found)
    assert not {"cellpose", "imagecodecs", "os", "common", "holoscan"} & set(found)


def test_verify_reports_missing_files_and_bad_zips(bundle_copy, tmp_path):
    (bundle_copy / "docs" / "README.md").unlink()
    lines = []
    with pytest.raises(BundleCheckError, match=r"files: missing \['docs/README.md'\]"):
        verify_bundle(bundle_copy, report=lines.append)
    assert lines == ["FAILED  files: missing ['docs/README.md']"]
    two_tops = tmp_path / "two.zip"
    with zipfile.ZipFile(two_tops, "w") as archive:
        archive.writestr("a/configs/metadata.json", "{}")
        archive.writestr("b/LICENSE", "")
    with pytest.raises(BundleCheckError, match="one top folder"):
        verify_bundle(two_tops)


def test_cli_exports_every_bundle(tmp_path, capsys):
    assert main(["export", "--all", "--bundles", str(REPO / "bundles"), "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.zip"))
    assert len(written) == len(list((REPO / "bundles").glob("*/configs/metadata.json"))) > 0
    assert main(["export", "--all", "--bundles", str(REPO / "bundles"), "--out", str(tmp_path)]) == 1
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export"])


@pytest.mark.parametrize("command", [["verify", "b"], ["export", "b"]])
def test_cli_overrides_repeat_and_read_as_json_or_text(command):
    args = parse_args([*command, "--set", 'backbone="efficientnet-b0"', "--set", "channels=[8, 16]", "--set", "x=y"])
    assert dict(parse_override(item) for item in args.set) == {
        "backbone": "efficientnet-b0",
        "channels": [8, 16],
        "x": "y",
    }
    assert parse_args(command).set == []


def test_published_weights_keep_their_entries_and_stay_out_of_the_zip(bundle_copy, tmp_path, monkeypatch):
    """DSB's large_files.yml names the original's published model: the export lists it (URL) before the
    bundle's own weights (hash), leaves the published file out, and MONAI's download_large_files reads both."""
    import monai.bundle.scripts

    pytest.importorskip("yaml", reason="monai.bundle download_large_files reads large_files.yml with pyyaml")
    (bundle_copy / "models" / "published").mkdir(parents=True)
    (bundle_copy / "models" / "published" / "model.pth").write_bytes(b"published")
    (bundle_copy / "models" / "model.pt").write_bytes(b"own")
    archive = zipfile.ZipFile(export_bundle(bundle_copy, tmp_path / "dist"))
    names = archive.namelist()
    assert f"{DSB.name}/models/model.pt" in names and f"{DSB.name}/models/published/model.pth" not in names
    archive.extractall(tmp_path / "unpacked")
    requested = []
    monkeypatch.setattr(monai.bundle.scripts, "download_url", lambda **kwargs: requested.append(kwargs))
    monai.bundle.scripts.download_large_files(str(tmp_path / "unpacked" / DSB.name))
    published, own = requested
    assert published["filepath"].endswith("models/published/model.pth") and "hash_val" not in published
    assert published["url"].startswith("https://huggingface.co/spaces/asphodel-thuang/microscopy-with-ml/")
    assert own["filepath"].endswith("models/model.pt") and own["hash_type"] == "sha256"
    assert own["hash_val"] == hashlib.sha256(b"own").hexdigest()
