"""MRT-OAST-like code clone detection workload (transformer over code-token pairs)."""
