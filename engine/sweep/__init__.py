"""Parameter sweeps, optimisation and walk-forward, locally and on a Dask cluster.

See docs/sweeps.md.
"""
