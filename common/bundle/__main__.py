"""Bundle tooling from the command line.

python -m common.bundle export bundles/<name> --out dist/     # dist/<name>_v<version>.zip
python -m common.bundle export --all --out dist/              # every bundle under --bundles
python -m common.bundle export bundles/<name> --format bioimageio --out dist/  # <name>_v<version>.bioimageio.zip
python -m common.bundle verify dist/<name>_v<version>.zip --schema meta_schema_20240725.json
python -m common.bundle copy-common build/map_app/          # build/map_app/common, as bundles carry it
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from common.bundle.export import copy_package, export_bundle
from common.bundle.verify import BundleCheckError, verify_bundle


def parse_override(item: str) -> tuple[str, object]:
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def bioimageio_exporter():
    """``common.bundle.bioimageio.export_bioimageio``, which the copy of ``common`` inside exported bundles leaves out
    (``common.bundle.export.NOT_EXPORTED``: it needs ``common.data.synthetic``), hence imported by name."""
    try:
        return importlib.import_module("common.bundle.bioimageio").export_bioimageio
    except ModuleNotFoundError as error:
        if error.name != "common.bundle.bioimageio":
            raise
        raise ModuleNotFoundError(
            "export --format bioimageio: run it from the repository's common package; the copy inside an exported "
            "bundle leaves common/bundle/bioimageio.py out."
        ) from error


def add_overrides(command: argparse.ArgumentParser, purpose: str) -> None:
    """The repeatable ``--set ID=JSON`` option of ``command`` (``args.set``, read by :func:`parse_override`)."""
    example = "e.g. --set backbone='\"efficientnet-b0\"'"
    command.add_argument("--set", action="append", default=[], metavar="ID=JSON", help=f"{purpose}, {example}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m common.bundle", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write self-contained bundle zips")
    export.add_argument("bundle", nargs="*", type=Path, help="bundle folders")
    export.add_argument("--all", action="store_true", help="every folder with configs/metadata.json under --bundles")
    export.add_argument("--bundles", type=Path, default=Path("bundles"), help="folder of bundles (default: bundles)")
    export.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")
    export.add_argument("--url-base", help="where the weights will be published, for large_files.yml")
    export.add_argument("--overwrite", action="store_true", help="replace zips that exist")
    export.add_argument(
        "--format",
        choices=("monai", "bioimageio"),
        default="monai",
        help="monai: self-contained bundle zip (default); bioimageio: bioimage.io model package of the network",
    )
    export.add_argument("--model", help="bioimageio: checkpoint to package (default: the bundle's primary model)")
    add_overrides(export, "bioimageio: override an inference.json id")
    verify = commands.add_parser("verify", help="model-zoo checks of a bundle folder or zip, offline")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--schema", type=Path, help="metadata schema file (meta_schema_20240725.json)")
    add_overrides(verify, "override a config id where the network is built")
    copy = commands.add_parser("copy-common", help="copy the common package as exported bundles carry it")
    copy.add_argument("out", type=Path, help="folder to copy common/ into")
    args = parser.parse_args(argv)
    if args.command == "export" and not (args.bundle or args.all):
        parser.error("export: name bundle folders or pass --all")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "copy-common":
        copy_package(args.out)
        return 0
    if args.command == "verify":
        try:
            verify_bundle(args.bundle, args.schema, overrides=dict(parse_override(item) for item in args.set))
        except (BundleCheckError, FileNotFoundError) as error:
            print(error, file=sys.stderr)
            return 1
        return 0
    bundles = list(args.bundle)
    if args.all:
        bundles += sorted(p.parent.parent for p in args.bundles.glob("*/configs/metadata.json"))
        if not bundles:
            print(f"no bundle under {args.bundles}", file=sys.stderr)
            return 1
    for bundle in bundles:
        try:
            if args.format == "bioimageio":
                overrides = dict(parse_override(item) for item in args.set)
                exporter = bioimageio_exporter()
                print(exporter(bundle, args.out, args.model, overrides, overwrite=args.overwrite))
            else:
                print(export_bundle(bundle, args.out, url_base=args.url_base, overwrite=args.overwrite))
        except (FileExistsError, FileNotFoundError, ModuleNotFoundError, ValueError) as error:
            print(error, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
