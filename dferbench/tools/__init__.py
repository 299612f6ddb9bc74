"""Maintainer tools: benchmarks and docs rendering (not part of the public API)."""
