"""Scorers: turn a chunk of pairs into one score per pair, in the chunk's order."""
