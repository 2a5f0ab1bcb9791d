"""Performance benchmarks run from the CLI (`magnet-eval bench ...`): latency and throughput vs batch size."""
