"""The ``gpupair-search`` command line: commands (:mod:`.app`), their options, the study run loop, Slurm."""
