"""From a user's request to an upsampled volume: the request plan, the tiled engine and the public API."""
