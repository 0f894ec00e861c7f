"""Reading and writing volumes with their geometry, and the intensity rules of each modality."""
