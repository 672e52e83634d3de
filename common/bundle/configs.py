"""A bundle's ``inference.json`` as a config parser, for the runs that use its models without running it: evaluation
(``evaluate.json`` takes its ``network`` and ``inferer``) and the offline checks (``verify.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

__all__ = ["inference_config", "override_ids"]


def override_ids(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``overrides`` as config ids, as the command line writes them: a dict value sets the entries it names, so
    ``{"checkpoints": {"base": f}}`` is ``{"checkpoints#base": f}`` and ``{"checkpoints": {}}`` sets nothing."""
    ids: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            ids.update(override_ids(value, f"{prefix}{key}#"))
        else:
            ids[f"{prefix}{key}"] = value
    return ids


def inference_config(config_file: str | Path, overrides: Mapping[str, Any] | None = None) -> ConfigParser:
    """The parser of ``config_file`` (a bundle's ``configs/inference.json``; a relative path is read from the working
    directory, as ``--config_file``), with ``_meta_`` from the ``metadata.json`` beside it and ``overrides`` (config
    id -> value, read by :func:`override_ids`; values may be built objects, e.g. another config's ``network_def``).

    Parse it once (``get_parsed_content`` of its ids, e.g. ``network`` then ``inferer``) so that the ids share
    their components: the inferer then runs the very networks ``network`` returns.

    Raises:
        FileNotFoundError: naming ``config_file``.
        KeyError: naming an override id whose parent section ``config_file`` lacks.
    """
    config_file = Path(config_file)
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file.absolute()}: no such inference config (run from the bundle folder, or give its path)."
        )
    parser = ConfigParser()
    parser.read_config(str(config_file))
    if (config_file.parent / "metadata.json").is_file():
        parser.read_meta(str(config_file.parent / "metadata.json"))
    for config_id, value in override_ids(overrides or {}).items():
        try:
            parser[config_id] = value
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise KeyError(
                f"{config_file}: cannot set {config_id!r}, its section is not in the config ({error!r})."
            ) from error
    return parser
