"""MEDIAR's modality discovery and amplified sampling: k-means on encoder embeddings of the training images,
then items of small clusters repeated so that every cluster has at least ``min_samples`` items per epoch.

The sampling file this writes is read by :func:`common.data.amplified_datalist` (``sampling_file`` in a
bundle's train config)::

    {"clusters": 40, "min_samples": 50, "cluster_sizes": [...],
     "items": {"<item id>": {"cluster": 3, "repeats": 7}, ...}}

A cluster of ``n < min_samples`` items is cycled through ``min_samples`` times, as MEDIAR does: its ``k``-th
item gets ``min_samples // n`` repeats, plus one for ``k < min_samples % n``; larger clusters keep one copy.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2
from torch import nn

from ..io.atomic import atomic_path

__all__ = ["encoder_embeddings", "cluster_embeddings", "amplified_repeats", "discover_modalities"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def encoder_embeddings(
    encoder: nn.Module, datalist: Sequence[Mapping], transform: Callable, size: int = 512, device=None
) -> np.ndarray:
    """(N, C) float64 embeddings: each image, loaded by ``transform`` as (C_in, H, W), is resized to ``size``
    squared (area interpolation), and the encoder's deepest feature map is averaged over space.

    ``encoder`` returns a list of feature maps, deepest last (``MEDIARFormer().encoder``).
    """
    encoder = encoder.eval().to(device) if device is not None else encoder.eval()
    rows = []
    for index, item in enumerate(datalist):
        image = torch.as_tensor(transform(dict(item))["image"], dtype=torch.float32, device=device)
        image = F.interpolate(image[None], size=(size, size), mode="area")
        rows.append(encoder(image)[-1].mean(dim=(2, 3))[0].double().cpu().numpy())
        if (index + 1) % 50 == 0 or index + 1 == len(datalist):
            logger.info("embedded %d / %d images", index + 1, len(datalist))
    return np.stack(rows)


def cluster_embeddings(embeddings: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """(N,) int cluster of each (N, C) embedding by k-means (k-means++ seeding, fixed ``seed``)."""
    if not 1 <= clusters <= len(embeddings):
        raise ValueError(f"clusters: expected 1 to {len(embeddings)} (the number of images), got {clusters}.")
    _, assignment = kmeans2(np.asarray(embeddings, np.float64), clusters, minit="++", seed=seed)
    return assignment.astype(np.int64)


def amplified_repeats(assignment: np.ndarray, min_samples: int = 50) -> np.ndarray:
    """(N,) repeats of each item so that each cluster of ``assignment`` gives at least ``min_samples`` items."""
    assignment = np.asarray(assignment)
    repeats = np.ones(len(assignment), np.int64)
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment == cluster)
        n = len(members)
        if n < min_samples:
            repeats[members] = min_samples // n + (np.arange(n) < min_samples % n)
    return repeats


def discover_modalities(
    network: nn.Module,
    datalist: Sequence[Mapping],
    transform: Callable,
    output: str | os.PathLike,
    clusters: int = 40,
    min_samples: int = 50,
    size: int = 512,
    seed: int = 0,
    device=None,
) -> dict:
    """Embed ``datalist`` with ``network.encoder``, cluster, and write the sampling file ``output``.

    Args:
        network: a model with an ``encoder`` (MEDIAR: the phase-1 pre-trained MEDIAR-Former).
        datalist: the training items (with ``"id"``); ``transform`` loads one as ``{"image": (C, H, W)}``.
        output: the sampling file to write; an existing file is never replaced.
        clusters, min_samples: k of k-means and the least items per cluster per epoch (MEDIAR: 40 and 50).
        size, seed, device: see :func:`encoder_embeddings` and :func:`cluster_embeddings`.

    Returns:
        the content written.
    """
    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output}: sampling file exists; remove it or choose another output.")
    ids = [str(item.get("id", item.get("image"))) for item in datalist]
    if len(set(ids)) != len(ids):
        raise ValueError("datalist: item ids are not unique; the sampling file names items by id.")
    encoder = getattr(network, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"network: expected a model with an encoder module, got {type(network).__name__}.")
    embeddings = encoder_embeddings(encoder, datalist, transform, size, device)
    assignment = cluster_embeddings(embeddings, clusters, seed)
    repeats = amplified_repeats(assignment, min_samples)
    content = {
        "clusters": int(clusters),
        "min_samples": int(min_samples),
        "cluster_sizes": np.bincount(assignment, minlength=clusters).tolist(),
        "items": {i: {"cluster": int(c), "repeats": int(r)} for i, c, r in zip(ids, assignment, repeats)},
    }
    with atomic_path(output) as partial:  # a kill leaves the previous file or none, never half of one
        partial.write_text(json.dumps(content, indent=1) + "\n")
    logger.info(
        "%d images in %d clusters (sizes %s): %d items per epoch; written to %s",
        len(ids),
        clusters,
        content["cluster_sizes"],
        int(repeats.sum()),
        output,
    )
    return content
