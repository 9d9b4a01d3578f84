"""The task overlay: dissemination of tasks by gossip and verifiable peer review."""
