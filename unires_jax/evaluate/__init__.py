"""Evaluation runs: the demo over held-out sample photos."""
