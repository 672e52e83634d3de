"""Several ``monai.bundle run`` workflows in one process, each as the CLI runs it, so that a test pays Python's and
torch's start-up once instead of once per run (and, under torchrun, once per rank instead of per run and rank)::

    python -m tests.support.bundle_runs plan.json
    python -m torch.distributed.run --nproc_per_node=2 -m tests.support.bundle_runs plan.json

``plan.json``: ``{"runs": [step, ...], "record": path}``. A step is a run, ``{"bundle": folder, "run_id": id,
"config_names": [file under configs/, ...], "overrides": {id: value}}`` (``monai.bundle.scripts.run``, the function
``python -m monai.bundle run`` calls, from the bundle folder with its metadata.json and logging.conf), or a
deletion, ``{"remove": folder, "pattern": glob, "count": k, "record": path}`` (the first ``k`` files of ``folder``
matching ``pattern``, sorted; their paths relative to ``folder`` go to ``record`` as JSON). A step with ``"rank":
r`` runs on that rank alone (a deletion on rank 0 unless it says otherwise); the others run on every rank, each a
run that sets up its own process group. A run on one rank therefore runs without a process group: a
single-process run, beside one on another rank. The next run on every rank waits in its ``init_process_group``
for the ranks still busy.

Each rank writes ``<record>.rank<r>.json``: per step it ran, ``step`` (its index), ``process_group_left`` (whether
``torch.distributed`` was still initialised after it) and ``seconds``. The first failing step ends the process
with its error (torchrun then stops the other rank).
"""

import json
import os
import socket
import sys
import time
from pathlib import Path

import torch.distributed as dist
from monai.bundle.scripts import run
from torch.distributed import TCPStore


def remove(step: dict) -> None:
    folder = Path(step["remove"])
    removed = sorted(folder.glob(step["pattern"]))[: step["count"]]
    for path in removed:
        path.unlink()
    Path(step["record"]).write_text(json.dumps([path.relative_to(folder).as_posix() for path in removed]))


def run_bundle(step: dict) -> None:
    bundle = Path(step["bundle"])
    here = os.getcwd()
    os.chdir(bundle)  # as the CLI is run: relative paths in the configs (configs/inference.json) resolve
    try:
        run(
            run_id=step["run_id"],
            meta_file=str(bundle / "configs" / "metadata.json"),
            config_file=[str(bundle / "configs" / name) for name in step["config_names"]],
            logging_file=str(bundle / "configs" / "logging.conf"),
            **step["overrides"],
        )
    finally:
        os.chdir(here)


def fresh_rendezvous(index: int, agent: tuple[str, int]) -> None:
    """Point the next run's ``init_process_group`` (``env://``) at a new store of its own: torchrun's agent store
    keeps the keys of the previous run's process group, whose successor has the same names, and a rank would read
    the stale addresses. Rank 0 picks a free port and passes it through the agent store."""
    store = TCPStore(agent[0], agent[1], is_master=False)
    key = f"bundle_runs/{index}/port"
    if int(os.environ["RANK"]) == 0:
        with socket.socket() as probe:
            probe.bind((agent[0], 0))
            store.set(key, str(probe.getsockname()[1]))
    os.environ.update(MASTER_PORT=store.get(key).decode(), TORCHELASTIC_USE_AGENT_STORE="False")


def main(plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    rank = int(os.environ.get("RANK", "0"))
    agent = (os.environ.get("MASTER_ADDR", ""), int(os.environ.get("MASTER_PORT", "0")))
    record = []
    for index, step in enumerate(plan["runs"]):
        if step.get("rank", 0 if "remove" in step else rank) != rank:
            continue
        start = time.perf_counter()
        if "remove" in step:
            remove(step)
        else:
            if "rank" not in step and "RANK" in os.environ:
                fresh_rendezvous(index, agent)
            run_bundle(step)
        record.append(
            {"step": index, "process_group_left": dist.is_initialized(), "seconds": time.perf_counter() - start}
        )
    Path(f"{plan['record']}.rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1])
