"""prediction: features_cube + model -> lulc_map, confidence_map (GeoTIFF), class areas, map plot."""
