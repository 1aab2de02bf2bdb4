"""Train the `shapes` model and its judge from scratch: `python -m bench.shapes.train --out DIR`
(from the repository root; development tooling, not part of the `live` package).

Four steps, each resumable from the checkpoint it leaves in DIR (every few minutes and on
Ctrl-C), each skipped once done:

1. scenes: a pool of seeded scenes (every combination) and their captions;
2. judge: the classifier that reads shape, colours and pattern;
3. vae: an autoencoder ×4 trained on 32×32 crops, then whole scenes, until it keeps shapes
   (≥ 30 dB and the judge reading ≥ 95 % of its reconstructions right) or runs out of steps;
4. unet: UNet and text encoder together, on the pool's latents (computed once) without the
   held-out combinations, ε-prediction with min-SNR weights, 10 % empty captions for
   classifier-free guidance, and an EMA of the weights, which is what ships.

The result is `DIR/model` (a diffusers folder), `DIR/judge.safetensors` and
`DIR/report.json`; `--install` copies the first two into the package. Every batch is
drawn from (seed, step), so a resumed run trains on what an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.shapes import parts
from livecli.models.loading import quiet_libraries
from livecli.models.tiny import SD_SCHEDULER, sd_pipeline
from livecli.progress import bar, console, say
from livecli.shapes.judge import QUESTIONS, Judge, accuracy, load_judge, roughen
from livecli.shapes.model import PACKAGE_DIR
from livecli.shapes.scenes import SHAPES, caption, is_held_out, random_scene, render, scene_rng

TARGET_PSNR = 30.0
TARGET_JUDGE = 0.95


@dataclass(frozen=True)
class Plan:
    seed: int = 0
    scenes: int = 60_000
    check_scenes: int = 1024
    """Scenes drawn apart from the pool, to measure on."""
    judge_steps: int = 1500
    judge_batch: int = 128
    judge_lr: float = 2e-3
    vae_steps: int = 3000
    vae_max_steps: int = 6000
    """The VAE goes on, 1,000 steps at a time, while it misses the targets, up to this."""
    vae_batch: int = 32
    vae_crop: int = 32
    vae_whole_steps: int = 400
    """The last steps of each round train on whole 64×64 scenes (GroupNorm sees whole images)."""
    vae_lr: float = 1e-3
    unet_steps: int = 14_000
    unet_batch: int = 32
    unet_lr: float = 5e-4
    ema_decay: float = 0.999
    empty_caption: float = 0.1
    """Captions left empty, so that classifier-free guidance has an unconditional model."""
    uncoloured_caption: float = 0.25
    """Captions that leave the object's colour out ("a star on …"), the form edits use."""
    warmup: int = 200
    checkpoint_seconds: float = 180.0


QUICK = Plan(
    scenes=256, check_scenes=64, judge_steps=20, judge_batch=32, vae_steps=12, vae_max_steps=12,
    vae_whole_steps=4, unet_steps=12, unet_batch=8, warmup=4, checkpoint_seconds=5.0,
)  # fmt: skip
"""Minutes, not hours: checks that every step runs, not that anything is learnt."""


# --------------------------------------------------------------------------- the optimisation loop


def learning_rate(plan: Plan, peak: float, step: int, steps: int) -> float:
    """Linear warm-up, then a cosine down to a tenth."""
    if step < plan.warmup:
        return peak * (step + 1) / plan.warmup
    progress = (step - plan.warmup) / max(1, steps - plan.warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def save_atomic(state: dict, path: Path) -> None:
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def optimise(
    name: str,
    folder: Path,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    lr: float,
    steps: int,
    plan: Plan,
    loss_at: Callable[[int], torch.Tensor],
    after_step: Callable[[int], None] = lambda step: None,
    extra_state: dict[str, nn.Module] | None = None,
) -> None:
    """Run `loss_at(step)` for steps not yet done, checkpointing every few minutes and on Ctrl-C."""
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "checkpoint.pt"
    saved = {**modules, **(extra_state or {})}
    start, spent = 0, 0.0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)
        for key, module in saved.items():
            module.load_state_dict(state[key])
        optimizer.load_state_dict(state["optimizer"])
        start, spent = state["step"], state.get("seconds", 0.0)

    began = time.monotonic()

    def save(step: int) -> None:
        seconds = spent + time.monotonic() - began
        state = {key: module.state_dict() for key, module in saved.items()}
        save_atomic({**state, "optimizer": optimizer.state_dict(), "step": step, "seconds": seconds}, checkpoint)
        record(folder.parent, **{f"{name}_seconds": round(seconds)})
        if not console.is_terminal:  # a log file gets a line per checkpoint instead of a bar
            say(
                f"{name}: step {step:,} of {steps:,}, loss {np.mean(recent) if recent else float('nan'):.4f}, "
                f"{seconds / 60:.1f} min"
            )

    if start >= steps:
        return
    if start:
        say(f"{name}: resuming at step {start:,} of {steps:,}")
    for module in modules.values():
        module.train()
    last_save, recent = time.monotonic(), []
    with bar(name, total=steps, completed=start) as advance:
        done = start
        try:
            for step in range(start, steps):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(plan, lr, step, steps)
                loss = loss_at(step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for m in modules.values() for p in m.parameters()], 1.0)
                optimizer.step()
                after_step(step)
                done = step + 1
                recent = (recent + [loss.item()])[-50:]
                advance(1, description=f"{name} loss {np.mean(recent):.4f}")
                if time.monotonic() - last_save > plan.checkpoint_seconds:
                    save(done)
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            save(done)  # the steps finished so far: a resumed run goes on exactly where this one stopped
            say(f"{name}: stopped after step {done:,}; run the same command again to resume")
            raise SystemExit(130) from None
    save(steps)
    for module in modules.values():
        module.eval()


def batch_rng(plan: Plan, stage: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Everything a step draws, from (seed, stage, step) alone: a resumed run draws the same."""
    return np.random.default_rng([plan.seed, stage, step]), torch.Generator().manual_seed(
        plan.seed * 1_000_003 + stage * 10_000_019 + step
    )


# --------------------------------------------------------------------------- 1. scenes


@dataclass
class Scenes:
    pixels: torch.Tensor
    """uint8 [N, 64, 64, 3]."""
    labels: dict[str, np.ndarray]
    captions: list[str]
    held_out: np.ndarray
    """bool [N]: a combination the text-to-image model must not see."""

    def as_input(self, index) -> torch.Tensor:
        return self.pixels[index].permute(0, 3, 1, 2).float() / 127.5 - 1.0


def draw_scenes(seed: int, count: int, description: str) -> Scenes:
    pixels = np.empty((count, 64, 64, 3), np.uint8)
    labels = {name: np.empty(count, np.int64) for name in QUESTIONS}
    captions, held_out = [], np.empty(count, bool)
    with bar(description, total=count) as advance:
        for index in range(count):
            scene = random_scene(scene_rng(seed, index), held_out=None)
            pixels[index] = np.asarray(render(scene))
            for name, value in scene.labels().items():
                labels[name][index] = value
            captions.append(scene.caption)
            held_out[index] = is_held_out(scene.object.shape, scene.object.colour, scene.background.pattern)
            if index % 256 == 255 or index == count - 1:
                advance(256 if index % 256 == 255 else count % 256)
    return Scenes(torch.from_numpy(pixels), labels, captions, held_out)


def load_scenes(out: Path, seed: int, count: int, name: str) -> Scenes:
    """Drawn once and kept in DIR (drawing 60,000 takes a minute)."""
    path = out / f"{name}.pt"
    if path.is_file():
        state = torch.load(path, weights_only=False)
        return Scenes(state["pixels"], state["labels"], state["captions"], state["held_out"])
    scenes = draw_scenes(seed, count, f"drawing {name}")
    save_atomic(asdict(scenes), path)
    return scenes


# --------------------------------------------------------------------------- 2. judge


def train_judge(out: Path, plan: Plan, pool: Scenes, check: Scenes) -> Judge:
    path = out / "judge.safetensors"
    if path.is_file():
        return load_judge(path)
    from safetensors.torch import save_file

    torch.manual_seed(plan.seed)
    judge = Judge()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=plan.judge_lr, weight_decay=1e-4)

    def loss_at(step: int) -> torch.Tensor:
        rng, generator = batch_rng(plan, 1, step)
        index = rng.integers(len(pool.pixels), size=plan.judge_batch)
        logits = judge(roughen(pool.as_input(index), generator))
        return sum(F.cross_entropy(logits[name], torch.from_numpy(pool.labels[name][index])) for name in QUESTIONS)

    optimise("judge", out / "judge", {"judge": judge}, optimizer, plan.judge_lr, plan.judge_steps, plan, loss_at)
    judge.eval().requires_grad_(False)
    record(out, judge_on_drawings=accuracy(judge.read(check.as_input(slice(None))), check.labels))
    save_file(judge.state_dict(), path)
    return judge


# --------------------------------------------------------------------------- 3. VAE


@torch.inference_mode()
def reconstruct(vae, pixels: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    return torch.cat(
        [
            vae(pixels[k : k + batch_size], sample_posterior=False).sample.clamp(-1, 1)
            for k in range(0, len(pixels), batch_size)
        ]
    )


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-image PSNR in dB for pixels in [-1, 1]."""
    mse = ((a - b) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def train_vae(out: Path, plan: Plan, pool: Scenes, check: Scenes, judge: Judge):
    from diffusers import AutoencoderKL

    folder = out / "vae"
    if (folder / "config.json").is_file():
        return AutoencoderKL.from_pretrained(folder).eval().requires_grad_(False)
    torch.manual_seed(plan.seed + 1)
    vae = parts.build_vae()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=plan.vae_lr, weight_decay=0.0)
    truth = check.as_input(slice(None))
    steps = plan.vae_steps
    while True:
        whole_from = steps - plan.vae_whole_steps

        def loss_at(step: int, whole_from: int = whole_from) -> torch.Tensor:
            rng, generator = batch_rng(plan, 2, step)
            pixels = pool.as_input(rng.integers(len(pool.pixels), size=plan.vae_batch))
            if step < whole_from:
                x, y = rng.integers(0, (64 - plan.vae_crop) // 4 + 1, size=2) * 4
                pixels = pixels[:, :, y : y + plan.vae_crop, x : x + plan.vae_crop]
            posterior = vae.encode(pixels).latent_dist
            latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
            decoded = vae.decode(latents).sample
            return F.mse_loss(decoded, pixels) + 0.1 * F.l1_loss(decoded, pixels) + 1e-6 * posterior.kl().mean()

        optimise("vae", out / "vae-training", {"vae": vae}, optimizer, plan.vae_lr, steps, plan, loss_at)
        vae.eval()
        rebuilt = reconstruct(vae, truth)
        scores = {
            "psnr": psnr(rebuilt, truth),
            "steps": steps,
            "judge_on_reconstructions": accuracy(judge.read(rebuilt), check.labels),
        }
        record(out, vae=scores)
        say(
            f"vae after {steps:,} steps: {scores['psnr']:.2f} dB, judge reads "
            f"{scores['judge_on_reconstructions']['all']:.1%} of reconstructions right"
        )
        good = scores["psnr"] >= TARGET_PSNR and scores["judge_on_reconstructions"]["all"] >= TARGET_JUDGE
        if good or steps >= plan.vae_max_steps:
            break
        steps = min(steps + 1000, plan.vae_max_steps)
    with torch.inference_mode():
        latents = torch.cat(
            [
                vae.encode(pool.as_input(slice(k, k + 256))).latent_dist.mean
                for k in range(0, min(len(pool.pixels), 4096), 256)
            ]
        )
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    vae.save_pretrained(folder, safe_serialization=True)
    return vae.requires_grad_(False)


# --------------------------------------------------------------------------- 4. UNet and text encoder


def uncoloured(text: str) -> str:
    """The caption without the object's colour: "a red star on …" -> "a star on …"."""
    words = text.split()
    if len(words) < 3 or words[2] not in SHAPES:
        return text
    return caption(words[2], None, words[5], words[6])


def encode_pool(out: Path, vae, pool: Scenes) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every pool scene (× the scaling factor), computed once."""
    path = out / "latents.pt"
    if path.is_file():
        state = torch.load(path, weights_only=True)
        return state["mean"], state["std"]
    scale = vae.config.scaling_factor
    means, stds = [], []
    with torch.inference_mode(), bar("encoding scenes", total=len(pool.pixels)) as advance:
        for k in range(0, len(pool.pixels), 256):
            posterior = vae.encode(pool.as_input(slice(k, k + 256))).latent_dist
            means.append(posterior.mean * scale)
            stds.append(posterior.std * scale)
            advance(len(means[-1]))
    mean, std = torch.cat(means), torch.cat(stds)
    save_atomic({"mean": mean, "std": std}, path)
    return mean, std


class EMA(nn.Module):
    """An exponential moving average of some parameters, kept as buffers so it checkpoints."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.names = [name for name, _ in module.named_parameters()]
        for k, param in enumerate(module.parameters()):
            self.register_buffer(f"p{k}", param.detach().clone())

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for k, param in enumerate(module.parameters()):
            getattr(self, f"p{k}").lerp_(param.detach(), 1 - decay)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        for k, param in enumerate(module.parameters()):
            param.copy_(getattr(self, f"p{k}"))


def train_unet(out: Path, plan: Plan, pool: Scenes, vae) -> None:
    from diffusers import DDPMScheduler

    tokenizer = parts.build_tokenizer()
    torch.manual_seed(plan.seed + 2)
    text_encoder = parts.build_text_encoder(tokenizer)
    unet = parts.build_unet()
    mean, std = encode_pool(out, vae, pool)
    train = np.flatnonzero(~pool.held_out)
    short = [uncoloured(caption) for caption in pool.captions]
    captions = sorted({pool.captions[k] for k in train} | {short[k] for k in train}) + [""]
    caption_ids = tokenizer(captions, padding="max_length", max_length=parts.MAX_TOKENS, return_tensors="pt").input_ids
    caption_of = {caption: k for k, caption in enumerate(captions)}
    full_caption = torch.tensor([caption_of.get(caption, len(captions) - 1) for caption in pool.captions])
    short_caption = torch.tensor([caption_of.get(caption, len(captions) - 1) for caption in short])
    schedule = DDPMScheduler(**{k: v for k, v in SD_SCHEDULER.items() if k != "set_alpha_to_one"})
    alphas = schedule.alphas_cumprod
    snr = alphas / (1 - alphas)
    weights = snr.clamp(max=5.0) / snr  # min-SNR-5 (Hang et al. 2023): converges faster than plain ε-MSE

    both = nn.ModuleDict({"unet": unet, "text_encoder": text_encoder})
    ema = EMA(both, plan.ema_decay)
    optimizer = torch.optim.AdamW(both.parameters(), lr=plan.unet_lr, weight_decay=1e-2)

    def loss_at(step: int) -> torch.Tensor:
        rng, generator = batch_rng(plan, 3, step)
        index = torch.from_numpy(train[rng.integers(len(train), size=plan.unet_batch)])
        latents = mean[index] + std[index] * torch.randn(mean[index].shape, generator=generator)
        draw = rng.random(plan.unet_batch)
        ids = torch.where(torch.from_numpy(draw < plan.uncoloured_caption), short_caption[index], full_caption[index])
        ids[torch.from_numpy(draw > 1 - plan.empty_caption)] = len(captions) - 1
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, len(alphas), (plan.unet_batch,), generator=generator)
        noisy = schedule.add_noise(latents, noise, timesteps)
        context = text_encoder(caption_ids[ids]).last_hidden_state
        predicted = unet(noisy, timesteps, context).sample
        return (weights[timesteps] * (predicted - noise).pow(2).flatten(1).mean(1)).mean()

    optimise(
        "unet", out / "unet-training", {"both": both}, optimizer, plan.unet_lr, plan.unet_steps, plan, loss_at,
        after_step=lambda step: ema.update(both, step), extra_state={"ema": ema},
    )  # fmt: skip
    ema.copy_to(both)
    pipeline = sd_pipeline(vae, text_encoder.to(torch.float16), tokenizer, unet.to(torch.float16))
    partial = out / "model.partial"
    shutil.rmtree(partial, ignore_errors=True)
    pipeline.save_pretrained(partial, safe_serialization=True)
    os.replace(partial, out / "model")


# --------------------------------------------------------------------------- report and install


def measure(out: Path, plan: Plan, judge: Judge) -> None:
    """Caption following of the trained model, as bench/shapes_model.py measures it (fewer captions)."""
    from bench.shapes import quality

    pipeline = quality.load_pipeline(out / "model")
    count = 8 if plan == replace(QUICK, seed=plan.seed) else 96
    figures = {}
    for kind in ("seen", "held-out-objects", "held-out-scenes"):
        prompted = quality.caption_set(kind, count, seed=plan.seed)
        images = quality.sample(pipeline, [p.caption for p in prompted], seed=plan.seed)
        figures[kind] = quality.judge_samples(judge, images, prompted)
        say(f"caption following, {kind}: " + ", ".join(f"{name} {value:.0%}" for name, value in figures[kind].items()))
    record(out, caption_following={"guidance": quality.GUIDANCE, "steps": 50, "captions": count, **figures})


def read_report(out: Path) -> dict:
    path = out / "report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def record(out: Path, **figures) -> None:
    report = read_report(out)
    report.update(figures)
    atomic = out / "report.json.partial"
    atomic.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(atomic, out / "report.json")


def install(out: Path) -> None:
    """Copy the trained model and judge into the package, where `--model shapes` finds them."""
    target = PACKAGE_DIR
    shutil.rmtree(target / "model", ignore_errors=True)
    shutil.copytree(out / "model", target / "model")
    shutil.copy2(out / "judge.safetensors", target / "judge.safetensors")
    shutil.copy2(out / "report.json", target / "report.json")
    say(f"installed the model and judge into {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shapes.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for checkpoints and results; run again to resume"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick", action="store_true", help="a few steps of each part: checks the script, learns nothing"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    parser.add_argument(
        "--install", action="store_true", help="copy the result into the package (livecli/shapes/weights)"
    )
    args = parser.parse_args(argv)
    plan = replace(QUICK if args.quick else Plan(), seed=args.seed)
    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "plan.json"
    if settings.is_file() and json.loads(settings.read_text()) != asdict(plan):
        print(f"error: {out} was started with other settings ({settings}); use another --out", file=sys.stderr)
        return 1
    settings.write_text(json.dumps(asdict(plan), indent=2) + "\n")
    started = time.monotonic()
    pool = load_scenes(out, plan.seed, plan.scenes, "scenes")
    check = load_scenes(out, plan.seed + 1, plan.check_scenes, "check-scenes")
    judge = train_judge(out, plan, pool, check)
    vae = train_vae(out, plan, pool, check, judge)
    if not (out / "model").is_dir():
        train_unet(out, plan, pool, vae)
    if "caption_following" not in read_report(out):
        measure(out, plan, judge)
    record(out, seconds_this_run=round(time.monotonic() - started))
    say(f"done: {out / 'model'}, {out / 'judge.safetensors'}, {out / 'report.json'}")
    if args.install:
        install(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
