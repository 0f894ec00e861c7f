"""Normalised stacks from volumes, and the slice windows training and adaptation draw from them."""
