"""cluster_end_points: histogram seeds, grown regions, one cluster per sink."""

import pytest
import torch

from common.flows import cluster_end_points
from common.flows.cluster import find_seeds, grow_seeds


def points_around(centre, count, spread=0.12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.tensor(centre, dtype=torch.float32) + spread * torch.randn(count, 2, generator=generator)


def test_two_sinks_make_two_clusters_and_stray_points_none():
    ends = torch.cat([points_around((10, 10), 50), points_around((30, 40), 80, seed=1), torch.tensor([[5.0, 45.0]])])
    clusters, seeds = cluster_end_points(ends, (48, 64))
    assert seeds.tolist() == [[10, 10], [30, 40]]  # ascending count
    assert torch.all(clusters[:50] == 1) and torch.all(clusters[50:130] == 2)
    assert clusters[130] == 0


def test_few_points_make_no_seed():
    clusters, seeds = cluster_end_points(points_around((8, 8), 10, spread=0.0), (16, 16))
    assert seeds.shape == (0, 2) and not clusters.any()
    clusters, seeds = cluster_end_points(points_around((8, 8), 11, spread=0.0), (16, 16))
    assert seeds.tolist() == [[8, 8]] and torch.all(clusters == 1)


def test_seeds_are_local_maxima():
    histogram = torch.zeros((20, 20))
    histogram[5, 5], histogram[6, 7], histogram[15, 15] = 30, 20, 12
    assert find_seeds(histogram).tolist() == [[15, 15], [5, 5]]


def test_regions_grow_through_populated_bins_only_within_the_window():
    histogram = torch.zeros((30, 30))
    histogram[10, 3:28] = 5  # a populated row, longer than the growth reach
    histogram[12, 10] = 5  # populated but not connected
    region, flat = grow_seeds(histogram, torch.tensor([[10, 15]]))
    grown = torch.zeros(30 * 30, dtype=torch.bool)
    grown[flat[region]] = True
    grown = grown.view(30, 30)
    assert grown[10, 10:21].all() and not grown[10, 9] and not grown[10, 21]  # 5 steps each way
    assert not grown[12, 10] and grown.sum() == 11


def test_windows_at_the_image_edge_stay_inside():
    ends = points_around((0, 0), 40).clamp(min=0)
    clusters, seeds = cluster_end_points(ends, (6, 6))
    assert seeds.tolist() == [[0, 0]] and torch.all(clusters == 1)


def test_bad_input():
    with pytest.raises(ValueError, match="end_points"):
        cluster_end_points(torch.zeros((5, 3)), (8, 8))
