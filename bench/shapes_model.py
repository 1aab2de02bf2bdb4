"""Benchmark (not a test): how well the shipped `shapes` model follows captions.

1. Caption following: samples (DDIM 50 steps, guidance 5 unless --guidance) for seeded
   captions of three kinds: combinations seen in training, held-out shape–colour pairs
   ("a green star", never seen) and held-out shape–pattern pairs ("a star on a checkered
   background"); the judge reads each sample; accuracy per question.
2. Textual inversion from one reference image of each held-out object (a token learnt as
   LIVE's image objective learns it, on the 2D model), then samples of
   "a <tok> on a … background" on other backgrounds: does the judge read the object?

Writes bench/results/shapes_model.json and .md, and shapes_model.png (rows: seen,
held-out objects, held-out scenes, then one row per learnt token).

    python bench/shapes_model.py
    python bench/shapes_model.py --captions 48 --guidance 3 5 7.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from bench.shapes import quality  # noqa: E402
from livecli.models import text as text_model  # noqa: E402
from livecli.shapes.judge import load_judge  # noqa: E402
from livecli.shapes.model import JUDGE_FILE, MODEL_DIR  # noqa: E402
from livecli.shapes.scenes import COLOUR_NAMES, HELD_OUT_OBJECTS, PATTERNS, Placed, Scene, random_background, render  # noqa: E402

KINDS = ("seen", "held-out-objects", "held-out-scenes")


def invert_object(
    pipeline, reference, prompt: str, init_word: str, steps: int, lr: float, seed: int
) -> tuple[int, torch.Tensor]:
    """Textual inversion of one image: the token's embedding, as LIVE's image objective trains it."""
    tokenizer, encoder, unet, vae = pipeline.tokenizer, pipeline.text_encoder, pipeline.unet, pipeline.vae
    for module in (encoder, unet, vae):
        module.requires_grad_(False)
    placeholder = text_model.add_placeholder(tokenizer, encoder, "<new>", init_word)
    vector = torch.nn.Parameter(placeholder.init.clone().float())
    optimizer = torch.optim.AdamW([vector], lr=lr, weight_decay=0.0)
    ids = text_model.tokenize(tokenizer, [prompt.replace("<tok>", "<new>")])
    with torch.inference_mode():
        pixels = quality_pixels(reference)
        latents = (vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor).clone()
    schedule = pipeline.scheduler
    alphas = schedule.alphas_cumprod
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        noise = torch.randn((4, *latents.shape[1:]), generator=generator)
        timesteps = torch.randint(0, len(alphas), (4,), generator=generator)
        a = alphas[timesteps].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        with text_model.learned_token(encoder, placeholder.id, vector):
            context = text_model.encode(encoder, ids).expand(4, -1, -1)
        loss = F.mse_loss(unet(noisy, timesteps, context).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return placeholder.id, vector.detach()


def quality_pixels(image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), np.float32)
    return torch.from_numpy(array).permute(2, 0, 1)[None] / 127.5 - 1.0


def textual_inversion(
    model_dir: Path, judge, samples: int, steps: int, lr: float, guidance: float
) -> tuple[dict, list]:
    """Each held-out object learnt from one reference, then sampled on `samples` backgrounds."""
    from bench.shapes.quality import Prompted

    results, rows = {}, []
    for k, (shape, colour) in enumerate(sorted(HELD_OUT_OBJECTS)):
        rng = np.random.default_rng([7, k])
        background_colour = next(c for c in COLOUR_NAMES[k + 1 :] + COLOUR_NAMES if c != colour)
        background = random_background(rng, "plain", background_colour)
        reference = render(Scene(background, Placed(shape, colour, 32.0, 32.0, 15.0)))
        init_word = shape  # a word for the reference object, as `live train --init-word` takes it
        pipeline = quality.load_pipeline(model_dir)  # a fresh one: no token from the last object
        _, vector = invert_object(
            pipeline, reference, f"a <tok> on a plain {background_colour} background", init_word, steps, lr, seed=k
        )
        prompted = []
        while len(prompted) < samples:
            pattern, bg = PATTERNS[rng.integers(len(PATTERNS))], COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
            if bg != colour:
                prompted.append(Prompted(shape, colour, pattern, bg))
        captions = [f"a <new> on a {p.pattern} {p.background} background" for p in prompted]
        text_model.install_token(pipeline.tokenizer, pipeline.text_encoder, "<new>", vector)
        images = quality.sample(pipeline, captions, seed=100 + k, guidance=guidance)
        scores = quality.judge_samples(judge, images, prompted)
        results[f"{colour} {shape}"] = scores
        rows.append([reference] + images)
        print(
            f"textual inversion, {colour} {shape}: " + ", ".join(f"{n} {v:.0%}" for n, v in scores.items()),
            file=sys.stderr,
        )
    return results, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_DIR)
    parser.add_argument("--judge", type=Path, default=JUDGE_FILE)
    parser.add_argument("--captions", type=int, default=120, help="captions per kind")
    parser.add_argument("--guidance", type=float, nargs="+", default=[quality.GUIDANCE])
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--ti-steps", type=int, default=300, help="textual-inversion steps (0: skip)")
    parser.add_argument("--ti-lr", type=float, default=5e-3)
    parser.add_argument("--ti-samples", type=int, default=12)
    args = parser.parse_args()

    torch.manual_seed(0)
    pipeline = quality.load_pipeline(args.model)
    judge = load_judge(args.judge)
    report: dict = {"model": str(args.model), "steps": args.steps, "captions": args.captions, "caption_following": {}}
    grid_rows = []
    for guidance in args.guidance:
        figures = {}
        for kind in KINDS:
            prompted = quality.caption_set(kind, args.captions)
            started = time.perf_counter()
            images = quality.sample(pipeline, [p.caption for p in prompted], steps=args.steps, guidance=guidance)
            figures[kind] = {
                **quality.judge_samples(judge, images, prompted),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(
                f"guidance {guidance:g}, {kind}: "
                + ", ".join(f"{n} {v:.0%}" for n, v in figures[kind].items() if n != "seconds"),
                file=sys.stderr,
            )
            if guidance == args.guidance[0]:
                grid_rows.append(images[:12])
        report["caption_following"][f"{guidance:g}"] = figures
    if args.ti_steps:
        report["textual_inversion"], rows = textual_inversion(
            args.model, judge, args.ti_samples, args.ti_steps, args.ti_lr, args.guidance[0]
        )
        report["textual_inversion_settings"] = {"steps": args.ti_steps, "lr": args.ti_lr, "samples": args.ti_samples}
        grid_rows += [row[:13] for row in rows]

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "shapes_model.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| guidance | captions | shape | colour | pattern | background | all |", "|---|---|---|---|---|---|---|"]
    for guidance, figures in report["caption_following"].items():
        for kind, scores in figures.items():
            lines.append(
                f"| {guidance} | {kind} | "
                + " | ".join(f"{scores[n]:.0%}" for n in ("shape", "colour", "pattern", "background", "all"))
                + " |"
            )
    if "textual_inversion" in report:
        lines += ["", "| learnt object | shape | colour | pattern | background | all |", "|---|---|---|---|---|---|"]
        for name, scores in report["textual_inversion"].items():
            lines.append(
                f"| {name} | "
                + " | ".join(f"{scores[n]:.0%}" for n in ("shape", "colour", "pattern", "background", "all"))
                + " |"
            )
    markdown = "\n".join(lines)
    (results / "shapes_model.md").write_text(markdown + "\n")
    columns = max(len(row) for row in grid_rows)
    flat = [image for row in grid_rows for image in row + [row[0].copy().point(lambda v: 255)] * (columns - len(row))]
    quality.grid(flat, columns).save(results / "shapes_model.png")
    print(markdown)


if __name__ == "__main__":
    main()
