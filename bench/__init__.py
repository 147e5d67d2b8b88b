"""Benchmarks that print figures (ingest throughput and latency, deadline fire lag), not pass/fail."""
