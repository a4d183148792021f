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


def peak_bytes_beyond_now(run, device: str) -> int:
    """Bytes at peak while `run()` runs, beyond what is allocated (CUDA) or resident (CPU) before it."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    reset_peak()  # earlier peaks (the inputs' own creation) must not count
    before = proc_status_bytes("VmRSS")
    run()
    return proc_status_bytes("VmHWM") - before
