"""dl: a JAX simulator of DecentraLearn (federated, gossip and hybrid learning on phones)."""

__version__ = "0.1.0"
