"""Whole slides larger than memory: blockwise inference of any bundle on Dask, with seams stitched."""
