"""Study logic on Optuna: trials from pairs, adaptive batch-size extension, plots, export, and the CLI."""
