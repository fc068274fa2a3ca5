"""perceptive: a year of Sentinel-2 L1C over an area of interest turned into a land-cover map."""

__version__ = "0.1.0"
