"""What the step benchmarks share: one setting per fresh process, and its peak memory."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def peak_memory(device) -> dict:
    """This process's peak RSS, and the GPU's peak allocation when it ran on one."""
    import torch

    peaks = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if device.type == "cuda":
        peaks["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return peaks


def device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def run_isolated(script: str, arguments: list[str]) -> dict:
    """Run `script --one …` in a fresh process: its JSON line, or {"error": why}.

    A fresh process gives each setting its own peak memory, and one that runs out of
    memory does not end the benchmark.
    """
    done = subprocess.run([sys.executable, script, *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": "killed (out of memory?)" if done.returncode < 0 or not lines else lines[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])
