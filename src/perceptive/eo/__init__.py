"""perceptive.eo: Earth-observation functions on xarray/numpy; knows nothing about Kedro."""
