"""Every bundle config reads top to bottom: each ``@id`` it references is defined above the reference.

A config is read as a user reads it: a file on its own (``train.json``, ``inference.json``), or an overlay after
the files it is layered on (``evaluate.json`` after ``train.json``), the base files first. An id counts as defined
once its key has been read; a ``#``-path into a section (``train#dataset``, ``load_transforms#0``) counts as
defined once that key of the section has been read. No forward reference is allowed: ``validate`` comes above
``train`` because the trainer's ``ValidationHandler`` and checkpoint handlers name the validator.
"""

import json
from pathlib import Path

import pytest
from monai.bundle.reference_resolver import ReferenceResolver

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
STANDALONE = ("train.json", "inference.json")
NOT_CONFIGS = ("metadata.json",)
# an overlay is read after train.json unless it is layered on more (the model cards' commands)
LAYERED_ON = {"pretrain_phase2.json": ("train.json", "pretrain.json"), "large_image.json": ("inference.json",)}
SEP = "#"  # as the configs write it; MONAI reads "#" and "::" alike
ALWAYS_DEFINED = ("_meta_",)  # added by `monai.bundle run` from metadata.json


def normalize(config_id: str) -> str:
    return str(config_id).replace(ReferenceResolver.sep, SEP)


def references(value: str) -> list[str]:
    """The ids a config string references: ``"@id"`` or every ``@id`` in a ``"$..."`` expression."""
    if value.startswith(ReferenceResolver.ref):
        return [normalize(value[len(ReferenceResolver.ref) :])]
    if value.startswith("$"):
        return [normalize(ref) for ref in ReferenceResolver.match_refs_pattern(value)]
    return []


def walk(item, path: str):
    """Yield ``("define", id)`` and ``("use", id, where)`` events of a config item in reading order."""
    if isinstance(item, dict):
        children = item.items()
    elif isinstance(item, list):
        children = ((str(index), value) for index, value in enumerate(item))
    else:
        if isinstance(item, str):
            for ref in references(item):
                yield ("use", ref, path)
        return
    for key, value in children:
        child = f"{path}{SEP}{normalize(key)}" if path else normalize(key)
        yield ("define", child)
        yield from walk(value, child)


def forward_references(files: list[Path]) -> list[str]:
    """References in ``files`` (read in order, each top to bottom) to ids not defined above them."""
    events = [(path.name, event) for path in files for event in walk(json.loads(path.read_text()), "")]
    defined_anywhere = {event[1] for _, event in events if event[0] == "define"}
    defined, problems = set(ALWAYS_DEFINED), []
    for name, event in events:
        if event[0] == "define":
            defined.add(event[1])
            continue
        _, ref, where = event
        if ref in defined or ref.split(SEP)[0] in ALWAYS_DEFINED:
            continue
        problems.append(
            f"{name}: {where} uses @{ref} above its definition"
            if ref in defined_anywhere
            else f"{name}: {where} uses @{ref}, defined nowhere in {[f.name for f in files]}"
        )
    return problems


def reading_orders() -> list:
    """One pytest param per config as read: (bundle name, [files in reading order])."""
    params = []
    for bundle in sorted(path for path in BUNDLES.iterdir() if (path / "configs").is_dir()):
        configs = bundle / "configs"
        for config in sorted(configs.glob("*.json")):
            if config.name in NOT_CONFIGS:
                continue
            files = (
                [config]
                if config.name in STANDALONE
                else [configs / base for base in LAYERED_ON.get(config.name, ("train.json",))] + [config]
            )
            params.append(pytest.param(files, id=f"{bundle.name}/{config.name}"))
    return params


@pytest.mark.parametrize("files", reading_orders())
def test_config_reads_top_to_bottom(files):
    assert forward_references(files) == []


def test_checker_finds_a_forward_reference(tmp_path):
    base = tmp_path / "train.json"
    base.write_text(
        json.dumps(
            {"a": "$@b + 1", "b": 1, "train": {"h": "@validate#e", "x": "@train#y", "y": 2}, "validate": {"e": 3}}
        )
    )
    overlay = tmp_path / "evaluate.json"
    overlay.write_text(json.dumps({"c": "@d", "d": "@a", "validate#e": "@missing"}))
    assert forward_references([base, overlay]) == [
        "train.json: a uses @b above its definition",
        "train.json: train#h uses @validate#e above its definition",
        "train.json: train#x uses @train#y above its definition",
        "evaluate.json: c uses @d above its definition",
        "evaluate.json: validate#e uses @missing, defined nowhere in ['train.json', 'evaluate.json']",
    ]
