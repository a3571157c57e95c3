"""Backends: WHERE evaluations run (inline, process pool, Ray)."""
