"""Checks before GPUs are paid for: preflight (every check), plan (GPU-hours and judge dollars), memory (peak
GPU memory)."""
