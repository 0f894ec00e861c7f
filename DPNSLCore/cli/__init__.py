"""Command lines: ``dpnsl upsample|train|evaluate|bench|curves`` and ``python -m DPNSLCore.<command>``."""
