"""sampling: features_cube + reference_labels -> label_raster -> samples (train / validation)."""
