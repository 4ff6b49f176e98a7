"""proximity's own scripts (not shipped with the package): the benchmark, the risk fit, sample makers."""
