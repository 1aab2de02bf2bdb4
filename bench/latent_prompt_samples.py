"""What the trained latent prompt has become: benchmark trainings, sampled from noise.

For each trained project given (the `live.live` projects of an edit_quality work folder,
one per --lp-lr), per case: the clip's first frame (where the latent prompt starts), the
trained latent prompt decoded by the VAE, and the reference image; then a video sampled
from noise under the clip's prompt with the trained latent prompt in the conditional
branch (the paper's inference), and one with the reference's latents there
(`--latent-prompt reference`). A latent prompt that did not learn is the first frame; one
that learns the clip's look makes samples that show the clip's object and background.

    python bench/latent_prompt_samples.py bench/work/edit_quality-tuning-*/ --cases 0 1 2 3 \
        --out bench/results/lp-lr/samples.png
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def sample_rows(project_dir: Path, seed: int = 0, steps: int = 25, guidance: float = 5.0) -> dict:
    """The pictures of one trained project, and how far its latent prompt moved."""
    import torch
    from PIL import Image

    from livecli import ddim
    from livecli.config import ModelConfig
    from livecli.models.loading import load_vae
    from livecli.models.vae import decode_latents
    from livecli.sampling import guided_sample
    from livecli.stages import PREPARE, TRAIN
    from livecli.stages.runtime import Runtime, frame_count
    from livecli.store import Project

    project = Project(project_dir)
    runtime = Runtime.resolve(project, ModelConfig(model="shapes", device="cpu"))
    model = runtime.trained()
    trained = project.record(TRAIN)
    frames = project.stage_dir(PREPARE) / "frames"
    first = Image.open(sorted(frames.iterdir())[0]).convert("RGB")
    reference = Image.open(project.stage_dir(PREPARE) / "reference.png").convert("RGB")
    count = frame_count(project)
    schedule = ddim.ddim_schedule(model.scheduler_config, steps)
    prompt = project.manifest()["prompt"]
    with torch.inference_mode():
        text, null = model.encode([prompt]), model.encode([""])
        shape = (count, *model.reference.shape[1:])
        start = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        with_trained = guided_sample(model, start, schedule, text, null, guidance)
        with_reference = guided_sample(
            dataclasses.replace(model, latent_prompt=model.reference), start, schedule, text, null, guidance
        )
        vae = load_vae(runtime.source, runtime.device, runtime.dtype)
        latent_prompt = decode_latents(vae, model.latent_prompt)[0]
        videos = {
            "with LP": decode_latents(vae, with_trained),
            "with ref": decode_latents(vae, with_reference),
        }
    return {
        "pictures": [first, latent_prompt, reference],
        "videos": videos,
        "moved": trained.facts.get("latent_prompt_moved"),
        "lp_lr": trained.settings.get("lp_lr", trained.settings["lr"]),
        "prompt": prompt,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="+", type=Path, help="edit_quality work folders (one per --lp-lr)")
    parser.add_argument("--cases", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "lp-lr" / "samples.png")
    args = parser.parse_args()
    os.environ.setdefault("LIVE_QUIET", "1")
    from PIL import Image

    from bench.edit_quality import stacked
    from livecli.contact_sheet import contact_sheet

    sheets = []
    for case in args.cases:
        for work in args.work:
            project = work / f"case{case}" / "live.live"
            if not (project / "train" / "record.toml").is_file():
                print(f"skipping {project}: not trained", file=sys.stderr)
                continue
            found = sample_rows(project)
            first, latent_prompt, reference = found["pictures"]
            title = [
                f"case {case}, --lp-lr {found['lp_lr']:g}: latent prompt moved {found['moved']:.1%}",
                "row 1: the first frame, the trained latent prompt (decoded); then samples from noise",
            ]
            count = len(next(iter(found["videos"].values())))
            blank = Image.new("RGB", first.size, "white")  # a sheet's rows are as long as its shortest
            rows = {"start, LP": [first, latent_prompt] + [blank] * (count - 2), **found["videos"]}
            sheets.append(contact_sheet(reference, rows, title))
            print(f"case {case}, lp-lr {found['lp_lr']:g}: moved {found['moved']:.1%}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    stacked(sheets).quantize(colors=256).save(args.out, optimize=True)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
