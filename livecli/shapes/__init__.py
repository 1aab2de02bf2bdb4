"""The `shapes` model: drawn scenes, the judge that reads them, and the shipped weights.

The script that trains them and the benchmarks that score them are in `bench/shapes/`."""
