"""Evaluators say WHAT gives an architecture its score (training, a table lookup...)."""
