"""Test-wide settings: no W&B network, deterministic CPU."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
