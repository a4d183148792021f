"""Process memory as Linux reports it: benchmarks run each variant in a fresh process and read these."""
from __future__ import annotations


def proc_status_bytes(field: str) -> int:
    """A field of /proc/self/status in bytes: VmRSS (resident now) or VmHWM (peak resident)."""
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    """Set VmHWM back to the current resident size (Linux >= 4.0), so a peak measures what follows."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
