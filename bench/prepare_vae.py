"""Benchmark (not a test): VAE encoding in `live prepare` with an SD-v1.4-shaped VAE.

Random weights, built offline with the SD v1.x VAE configuration; encodes 8 frames and the
reference image at each size and batch size, and prints seconds and peak resident memory
of a fresh process per setting (ratios within one run are what to compare).

    python bench/prepare_vae.py                 # 256 and 512 px, batches 1, 4, 9
    python bench/prepare_vae.py --sizes 512 --batches 4
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from sd_shapes import SD_VAE


def one(size: int, batch: int) -> dict:
    import torch
    from diffusers import AutoencoderKL
    from PIL import Image

    from livecli.models.vae import encode_images

    torch.manual_seed(0)
    vae = AutoencoderKL(**SD_VAE).eval().requires_grad_(False)
    images = [Image.effect_noise((size, size), 40).convert("RGB") for _ in range(9)]
    started = time.perf_counter()
    latents = encode_images(vae, images, batch)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "size": size,
        "batch": batch,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb),
        "shape": list(latents.shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 9])
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    print(f"{'size':>5} {'batch':>5} {'seconds':>8} {'peak RSS MB':>12}")
    for size in args.sizes:
        for batch in args.batches:
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(size), str(batch)], capture_output=True, text=True, check=True
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{row['size']:>5} {row['batch']:>5} {row['seconds']:>8} {row['peak_rss_mb']:>12}")


if __name__ == "__main__":
    main()
