"""Gymnasium environments of this package."""
