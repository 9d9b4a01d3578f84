"""Training algorithms that run on the virtual clock (FedAvg now; async FL and gossip later)."""
