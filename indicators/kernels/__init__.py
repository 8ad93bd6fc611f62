"""indicators/kernels package."""
