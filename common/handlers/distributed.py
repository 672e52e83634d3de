"""Collections split across ``torchrun`` ranks: each rank takes an interleaved shard, rank 0 gathers the results.

:func:`shard` splits a collection of N items as ``DistributedSampler(shuffle=False, even_divisible=False)`` and
``monai.data.partition_dataset`` split it: rank r of W takes items ``r, r + W, r + 2W, ...``, so every item goes
to exactly one rank, also when W does not divide N (sharding the datalist rather than the sampler's indices, a
rank caches and loads only its own items). :func:`gather_shards` undoes that split: it all-gathers every
rank's per-item results and puts them back in the collection's order, which is what a single process would have
produced. Without an initialised ``torch.distributed`` process group (a plain ``monai.bundle run``) every helper
behaves as for one rank of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch.distributed as dist

__all__ = ["all_gather", "barrier", "gather_shards", "rank_and_world", "shard", "shard_index"]

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the default process group; ``(0, 1)`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(items: Sequence[T], every_rank: bool = False) -> list[T]:
    """This rank's items of ``items``: ``items[rank::world]`` (all of them without a process group).

    Args:
        items: the whole collection, the same on every rank.
        every_rank: raise ValueError (on every rank alike) when some rank would get no item: a rank that runs no
            iteration never reaches the end-of-run gathering the others wait in (an evaluation's report).
    """
    rank, world = rank_and_world()
    if every_rank and len(items) < world:
        raise ValueError(f"{len(items)} items for {world} processes: each needs one; run fewer processes.")
    return list(items[rank::world])


def shard_index(local: int) -> int:
    """Position in the whole collection of this rank's ``local``-th item (``local * world + rank``)."""
    rank, world = rank_and_world()
    return local * world + rank


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def all_gather(value: Any) -> list:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank; ``[value]`` without a group."""
    world = rank_and_world()[1]
    if world == 1:
        return [value]
    gathered: list = [None] * world
    dist.all_gather_object(gathered, value)
    return gathered


def gather_shards(local: Sequence[T]) -> list[T]:
    """The per-item results of every rank's :func:`shard`, in the order of the whole collection, on every rank.

    Args:
        local: this rank's results, one per item of its shard, in the shard's order (picklable).

    Returns:
        ``N`` results: the one of item ``i`` is rank ``i % W``'s ``(i // W)``-th.

    Raises:
        ValueError: the ranks' counts are not those of one collection's interleaved shards (rank r holds
            ``ceil((N - r) / W)`` items), e.g. a rank that evaluated the whole collection instead of its shard.
    """
    shards = all_gather(list(local))
    sizes = [len(part) for part in shards]
    total = sum(sizes)
    expected = [len(range(rank, total, len(shards))) for rank in range(len(shards))]
    if sizes != expected:
        raise ValueError(
            f"gather_shards: the ranks hold {sizes} items, not the interleaved shards {expected} of {total} items; "
            f"each rank must process items rank, rank + world size, ... (common.handlers.distributed.shard)."
        )
    return [shards[index % len(shards)][index // len(shards)] for index in range(total)]
