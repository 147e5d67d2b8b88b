"""Ingest benchmark; run `bench/ingest.py` from the repository root (see bench/README.md)."""
