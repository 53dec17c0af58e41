"""Judging only: everything that reads the world's truth (oracle, offline evaluation, A/A and A/B
simulation of the analysis, closed-loop traffic)."""
