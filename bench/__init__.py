"""Benchmarks and the tools that train and score the shapes model: run from the repository root."""
