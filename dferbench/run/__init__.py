"""Running units: configuration, the runner and training engine, result files, scale-out."""
