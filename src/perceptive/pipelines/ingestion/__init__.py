"""ingestion: AOI -> tiles and grid -> one year of L1C (``l1c_cube``) and reference labels."""
