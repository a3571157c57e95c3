"""Builders: architecture -> torch nn.Module. No training code."""
