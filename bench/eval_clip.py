"""Benchmark (not a test): what `live eval` costs with a CLIP ViT-L/14-shaped model.

Random weights built offline from openai/clip-vit-large-patch14's configuration (the
default `--clip-model`; its 428 M parameters are what cost). One evaluation embeds the
text, the reference image, the edited and source frames and their crops around the mask,
and computes PSNR/SSIM; `--all` over N edits embeds the source frames and the reference
once. Each setting runs in a fresh process (its own peak memory).

    python bench/eval_clip.py                      # 8 and 24 frames at 512 px
    python bench/eval_clip.py --frames 8 --size 256
"""

from __future__ import annotations

import argparse
import json
import time

from isolated import device_name, peak_memory, run_isolated

VIT_L14_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
}
VIT_L14_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
}


def one(frames: int, size: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from livecli.metrics import mask_tensor, score_video
    from livecli.models.clip import ClipEmbedder
    from livecli.models.tiny import build_tiny_clip

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    tokenizer = build_tiny_clip()[1]  # any CLIP tokenizer: ids index the random embedding
    config = CLIPConfig(
        text_config={**VIT_L14_TEXT, "vocab_size": len(tokenizer)}, vision_config=VIT_L14_VISION, projection_dim=768
    )
    model = CLIPModel(config).to(device=device, dtype=dtype).eval().requires_grad_(False)
    embedder = ClipEmbedder(model, tokenizer, CLIPImageProcessor(), device, dtype)

    rng = np.random.default_rng(0)
    video = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(frames)]
    source = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(frames)]
    masks = np.zeros((frames, size, size), dtype=np.uint8)
    masks[:, size // 4 : size // 2, size // 4 : 3 * size // 4] = 255
    mask = mask_tensor([Image.fromarray(m, mode="L") for m in masks])

    started = time.perf_counter()
    text = embedder.texts(["a man riding a dog"])[0]
    reference = embedder.images([source[0]])[0]
    score_video(embedder, video, source, text, reference, mask, margin=16)
    edit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    whole = embedder.images(source)
    score_video(embedder, source, source, text, reference, mask, margin=16, whole=whole)
    source_seconds = time.perf_counter() - started
    return {
        "frames": frames,
        "size": size,
        "edit_row_s": round(edit_seconds, 2),
        "source_row_s": round(source_seconds, 2),
        "images_per_s": round((2 * frames + 1) / edit_seconds, 2),
        "device": device_name(device),
        **peak_memory(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 24])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.frames[0], args.size)))
        return
    results = [run_isolated(__file__, ["--one", "--frames", str(f), "--size", str(args.size)]) for f in args.frames]
    print("| frames | size | edit row | source row | images/s | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in results:
        if "error" in row:
            print(f"| ? | ? | {row['error']} | | | |")
            continue
        print(
            f"| {row['frames']} | {row['size']} | {row['edit_row_s']} s | {row['source_row_s']} s | "
            f"{row['images_per_s']} | {row['peak_rss_mb'] / 1024:.1f} GB |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
