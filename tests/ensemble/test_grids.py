"""ensemble.grids.nearest_neighbour_grid: samples above their nearest real images (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ensemble.grids import image_grid, nearest_neighbour_grid, save_grid


def test_nearest_neighbour_grid_puts_each_neighbour_below_its_sample(tmp_path):
    samples = np.stack([np.full((4, 4), 10 + i, np.uint8) for i in range(5)])
    neighbours = np.stack([np.full((4, 4), 100 + i, np.uint8) for i in range(5)])
    tiles = nearest_neighbour_grid(samples, neighbours, nrow=3)
    assert tiles.shape == (12, 4, 4)  # two rows of pairs, the last padded with blank tiles
    assert [int(t[0, 0]) for t in tiles] == [10, 11, 12, 100, 101, 102, 13, 14, 0, 103, 104, 0]
    grid = image_grid(tiles, nrow=3, padding=0)
    assert grid.shape == (16, 12) and grid[4, 0] == 100 and grid[0, 0] == 10
    path = save_grid(tiles, tmp_path / "nn.png", nrow=3)
    assert np.asarray(Image.open(path)).shape == image_grid(tiles, nrow=3).shape


def test_nearest_neighbour_grid_checks_its_inputs():
    a = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="one neighbour per sample"):
        nearest_neighbour_grid(a, a[:2])
    with pytest.raises(ValueError, match="nrow"):
        nearest_neighbour_grid(a, a, nrow=0)
