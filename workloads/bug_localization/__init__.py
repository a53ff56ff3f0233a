"""bug-localization-by-dnn-and-rvsm workload (scikit-learn MLP, k-fold in parallel)."""
