"""Helpers shared by the test tiers (importable as ``support``: pytest's pythonpath)."""
