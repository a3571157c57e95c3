"""Datasets: where they live, download with checksums, and the fixed train/validation split."""
