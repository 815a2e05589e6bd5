"""xgate's benchmarks (`make bench`): results are written to BENCHMARKS.md."""
