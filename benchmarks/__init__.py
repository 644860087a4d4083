"""Benchmark scripts; run them from the repository root as modules.

    python -m benchmarks.bench_quality   # synthetic P1/P2 quality vs baselines
    python -m benchmarks.bench_speed     # throughput, fraction of peak, latency, memory

Both write their tables into docs/benchmarks.md between markers (see _report.py).
"""
