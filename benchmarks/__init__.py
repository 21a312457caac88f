"""Measurements of the service, run from the project root as modules (`python -m benchmarks.<name>`)."""
