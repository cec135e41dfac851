"""Baselines of the paper."""
