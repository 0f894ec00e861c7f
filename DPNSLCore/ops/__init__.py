"""Slice-axis mathematics: grid and scale rules, acquisition operators A, interpolation matrices, B-splines."""
