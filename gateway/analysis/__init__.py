"""Experiment analysis: sufficient statistics and tests (pure), and the SQL edge (report.py)."""
