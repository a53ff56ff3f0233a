"""Person re-ID workloads (layumi/Person_reID_baseline_pytorch style): densenet121, hrnet18, pcb."""
