"""Training DP-NSL models: data sampling, the training loop, validation, resumable state, learning curves."""
