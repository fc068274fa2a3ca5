"""feature_engineering: l1c_cube -> masks_cube (clouds, valid data) -> features_cube on a date grid."""
