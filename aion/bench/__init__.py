"""`aion bench`: the benchmark harness (docs/benchmarks.md)."""
