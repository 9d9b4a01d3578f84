"""dl: a JAX simulator of DecentraLearn (federated, gossip and hybrid learning on simulated phones)."""

__version__ = "0.1.0"
