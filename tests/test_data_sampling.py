"""MEDIAR's data-centric pieces: several datasets in one datalist, modality discovery and amplified sampling,
cell memory replay."""

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from common.data import (
    ReplayLoader,
    amplified_datalist,
    amplified_repeats,
    cluster_embeddings,
    combined_datalist,
    discover_modalities,
)
from common.data.synthetic import write_dataset


def mediar_round_robin(assignment, min_samples):
    """MEDIAR's datasetter: clusters under ``min_samples`` are cycled through ``min_samples`` times."""
    copies = Counter()
    for cluster in sorted(set(assignment)):
        members = [i for i, c in enumerate(assignment) if c == cluster]
        if len(members) >= min_samples:
            copies.update(members)
        else:
            copies.update(members[i % len(members)] for i in range(min_samples))
    return [copies[i] for i in range(len(assignment))]


def test_repeats_match_mediars_round_robin():
    rng = np.random.default_rng(0)
    assignment = rng.choice(6, size=200, p=[0.5, 0.3, 0.1, 0.05, 0.04, 0.01])
    repeats = amplified_repeats(assignment, min_samples=20)
    assert repeats.tolist() == mediar_round_robin(assignment.tolist(), 20)
    per_cluster = np.bincount(assignment, weights=repeats)
    assert (per_cluster >= 20).all()


def test_kmeans_finds_separated_modalities():
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=10, size=(3, 8))
    truth = np.repeat([0, 1, 2], [30, 8, 3])
    clusters = cluster_embeddings(centres[truth] + rng.normal(scale=0.1, size=(len(truth), 8)), 3)
    assert len(set(zip(truth.tolist(), clusters.tolist()))) == 3  # one cluster per modality
    with pytest.raises(ValueError, match="clusters"):
        cluster_embeddings(np.zeros((2, 4)), 3)


class ImageFeatures(torch.nn.Module):
    """An encoder whose one feature map is the image itself."""

    def forward(self, x):
        return [x]


class MeanEncoder(torch.nn.Module):
    """Stands in for MEDIAR-Former: it has an ``encoder``."""

    def __init__(self):
        super().__init__()
        self.encoder = ImageFeatures()


def test_discovery_writes_a_sampling_file_that_the_datalist_reads(tmp_path):
    items = [
        {"id": f"cell_{i:05d}", "image": f"cell_{i:05d}.png", "brightness": 0.1 if i < 12 else 0.9} for i in range(15)
    ]  # two modalities: 12 dark images, 3 bright ones
    load = lambda item: {"image": torch.full((3, 32, 32), item["brightness"])}  # noqa: E731
    content = discover_modalities(
        MeanEncoder(), items, load, tmp_path / "sampling.json", clusters=2, min_samples=6, size=16
    )
    assert sorted(content["cluster_sizes"]) == [3, 12]
    assert [content["items"][item["id"]]["repeats"] for item in items] == [1] * 12 + [2] * 3
    amplified = amplified_datalist(items, tmp_path / "sampling.json")
    assert len(amplified) == 18 and Counter(item["id"] for item in amplified)["cell_00014"] == 2
    assert amplified_datalist(items, None) == items  # no sampling file: each item once
    with pytest.raises(FileExistsError, match="sampling.json"):
        discover_modalities(MeanEncoder(), items, load, tmp_path / "sampling.json", clusters=2)
    with pytest.raises(KeyError, match="no entry for item 'other'"):
        amplified_datalist(items + [{"id": "other"}], tmp_path / "sampling.json")
    with pytest.raises(FileNotFoundError, match="absent.json"):
        amplified_datalist(items, tmp_path / "absent.json")


def test_combined_datalist_keeps_ids_unique(tmp_path):
    write_dataset("neurips", tmp_path / "a", n=3, size=64, seed=0)
    write_dataset("neurips", tmp_path / "b", n=2, size=64, seed=1)
    write_dataset("dsb2018", tmp_path / "c", n=2, size=64, seed=2)
    items = combined_datalist(
        [
            {"layout": "neurips", "root": tmp_path / "a", "name": "cellpose"},
            {"layout": "neurips", "root": tmp_path / "b"},
            {"layout": "dsb2018", "root": tmp_path / "c"},
        ]
    )
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == 7
    assert ids[0] == "cellpose/cell_00001" and ids[3] == "neurips/cell_00001" and ids[5].startswith("dsb2018/")
    assert all("label" in item for item in items)
    with pytest.raises(KeyError, match=r"datasets\[0\]: missing \['root'\]"):
        combined_datalist([{"layout": "neurips"}])


def test_replay_adds_a_batch_of_other_data_to_each_batch():
    target = [{"image": torch.full((1, 4, 4), float(i)), "id": f"t{i}"} for i in range(8)]
    public = [{"image": torch.full((1, 4, 4), -1.0 - i), "id": f"p{i}", "extra": i} for i in range(3)]
    loader = ReplayLoader(DataLoader(target, batch_size=4), DataLoader(public, batch_size=1))
    for _ in range(2):  # two epochs: the replay data is cycled, never exhausted
        batches = list(loader)
        assert len(loader) == len(batches) == 2
        for batch in batches:
            assert batch["image"].shape == (5, 1, 4, 4)
            assert (batch["image"][:4] >= 0).all() and batch["image"][4, 0, 0, 0] < 0  # target first, replay last
            assert len(batch["id"]) == 5 and "extra" not in batch
    with pytest.raises(ValueError, match="replay data loader yields no batch"):
        next(iter(ReplayLoader(DataLoader(target, batch_size=4), [])))
