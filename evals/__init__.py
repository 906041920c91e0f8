"""Evals: replays of recorded grid days through routing policies and agents."""
