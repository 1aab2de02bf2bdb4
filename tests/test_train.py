"""`live train` on the tiny model: artefacts, the embedding-row, delta and resume properties, bad input."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clips import write_clip, write_image
from helpers import PREPARE_ARGS, copied_here, count_checkpointed_calls, interrupt_after, tree_digest
from livecli.models import deltas as attention_deltas
from livecli.models.loading import load_denoiser, resolve_model
from livecli.models.video_unet import inflate
from livecli.objectives import LiveTrainer
from livecli.store import read_toml, write_toml

PROJECT = Path("clip.live")
TRAIN = PROJECT / "train"
ARTEFACTS = ("attention_deltas.safetensors", "token.safetensors", "latent_prompt.safetensors")


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return {f"{name}:{key}": value for name in ARTEFACTS for key, value in load_file(folder / name).items()}


def assert_same_tensors(a: Path, b: Path) -> None:
    first, second = tensors(a), tensors(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def loss_rows(folder: Path) -> list[dict]:
    with open(folder / "losses.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory) -> Path:
    """The `train/` folder of an uninterrupted 6-step run, for the resume tests to equal."""
    from livecli.cli import main

    folder = tmp_path_factory.mktemp("six")
    clip, image = write_clip(folder / "clip.mp4", frames=12), write_image(folder / "ref.png")
    assert main(["train", str(clip), str(image), *PREPARE_ARGS, "-p", str(folder / "clip.live"), "--steps", "6"]) == 0
    return folder / "clip.live" / "train"


def test_train_writes_its_artefacts_and_lowers_both_losses(cli, clip, image, monkeypatch):
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "30")
    assert result.code == 0, result.err
    assert "prepare: 8 frames" in result.err and "train: 30 steps, token <@#$>" in result.err
    found = read_toml(TRAIN / "record.toml")["facts"]["found_reference_masks"]  # the tiny model's search, random
    masks = ["reference_masks"] if any(coverage > 0 for coverage in found.values()) else []
    assert sorted(p.name for p in TRAIN.iterdir()) == sorted([*ARTEFACTS, *masks, "losses.csv", "record.toml"])

    rows = loss_rows(TRAIN)
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert list(rows[0]) == ["step", "video_loss", "text_loss", "loss", "lr", "ti_lr", "seconds"]
    assert all(
        float(r["loss"]) == pytest.approx(float(r["video_loss"]) + float(r["text_loss"]), rel=1e-4) for r in rows
    )

    # Both objectives, measured on the same fixed draws before and after training, fell.
    facts = read_toml(TRAIN / "record.toml")["facts"]
    before, after = facts["fixed_draw_loss_before"], facts["fixed_draw_loss_after"]
    assert after["video"] < before["video"] and after["text"] < before["text"]

    latent_prompt = load_file(TRAIN / "latent_prompt.safetensors")["latent_prompt"]
    first_frame = load_file(PROJECT / "prepare" / "latents.safetensors")["frames"][:1]
    assert latent_prompt.shape == (1, 4, 8, 8) and not torch.equal(latent_prompt, first_frame)
    assert (latent_prompt - first_frame).abs().max() < 30 * 3e-5 * 1.5, "moved by at most ~lr per step"
    deltas = load_file(TRAIN / "attention_deltas.safetensors")
    queries = [k for k in deltas if ".temporal." not in k]
    assert queries and all(deltas[k].dtype == torch.float64 for k in queries)
    assert all(".block." not in k for k in deltas), "keys are the base UNet's names"
    assert any(deltas[k].abs().max() > 0 for k in queries)

    # The same command again is up to date: nothing is loaded or trained.
    digest = tree_digest(PROJECT)
    monkeypatch.setattr(LiveTrainer, "__init__", lambda *a, **k: pytest.fail("trained again"))
    again = cli("train", clip, image, *PREPARE_ARGS, "--steps", "30")
    assert again.code == 0 and "train: up to date" in again.err
    assert tree_digest(PROJECT) == digest


def test_deltas_turn_the_base_unet_into_the_trained_one(cli, clip, image, capture_trainer):
    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "6").code == 0
    trained = capture_trainer[0].video_unet.unet.state_dict()

    torch.manual_seed(12345)  # other temporal weights than training started from: the deltas must set them
    video = inflate(load_denoiser(resolve_model("tiny"), torch.device("cpu"), torch.float32).unet)
    before = {k: v.clone() for k, v in video.unet.state_dict().items()}
    attention_deltas.apply_deltas(video, attention_deltas.load_deltas(TRAIN / "attention_deltas.safetensors"))
    rebuilt = video.unet.state_dict()
    assert rebuilt.keys() == trained.keys()
    for name in trained:
        assert torch.equal(rebuilt[name], trained[name]), name
    changed = [n for n in trained if not torch.equal(before[n], trained[n])]
    assert changed and all(".to_q." in n or ".temporal." in n for n in changed)


def test_interrupted_run_resumes_to_the_uninterrupted_result(cli, clip, image, monkeypatch, six_steps):
    interrupt_after(monkeypatch, 3)
    stopped = cli("train", clip, image, *PREPARE_ARGS, "--steps", "6")
    assert stopped.code == 130
    assert "checkpoint saved at step 3 of 6" in stopped.err
    assert not TRAIN.exists() and not list(PROJECT.glob(".*.incomplete"))
    state = read_toml(PROJECT / "checkpoints" / "train" / "state.toml")
    assert state["step"] == 3 and state["steps"] == 6
    status = cli("status", "--json")
    assert "stopped at step 3 of 6" in status.out

    monkeypatch.setenv("LIVE_QUIET", "0")  # the resume notice is chatter that quiet mode hides
    resumed = cli("train", clip, image, *PREPARE_ARGS, "--steps", "6")
    assert resumed.code == 0, resumed.err
    assert "resuming at step 3 of 6" in resumed.err
    assert_same_tensors(TRAIN, six_steps)
    assert without_seconds(loss_rows(TRAIN)) == without_seconds(loss_rows(six_steps))
    assert read_toml(TRAIN / "record.toml")["facts"]["resumed_from"] == 3


def test_sigterm_saves_a_checkpoint_that_resumes_to_the_uninterrupted_result(cli, clip, image, monkeypatch, six_steps):
    monkeypatch.setenv("LIVE_QUIET", "0")
    interrupt_after(monkeypatch, 2, signal.SIGTERM)  # what SLURM sends before its time limit
    stopped = cli("train", clip, image, *PREPARE_ARGS, "--steps", "6", "--checkpoint-every", "100")
    assert stopped.code == 143, stopped.err
    assert "terminated: checkpoint saved at step 2 of 6" in stopped.err
    assert "(a second SIGTERM to stop at once)" in stopped.err and "Ctrl-C" not in stopped.err
    assert read_toml(PROJECT / "checkpoints" / "train" / "state.toml")["step"] == 2
    resumed = cli("train", clip, image, *PREPARE_ARGS, "--steps", "6")
    assert resumed.code == 0, resumed.err
    assert_same_tensors(TRAIN, six_steps)


def _edit_step(folder: Path, losses_kept: int) -> None:
    """A hand edit of the checkpoint's step (3 -> 2), keeping `losses_kept` rows of losses.csv
    and writing its new digest into state.toml, as a careful editor would."""
    from livecli.store import sha256_file

    rows = (folder / "losses.csv").read_text().splitlines()
    (folder / "losses.csv").write_text("\n".join(rows[: losses_kept + 1]) + "\n")
    state = read_toml(folder / "state.toml")
    files = {**state["files"], "losses.csv": sha256_file(folder / "losses.csv")}
    write_toml(folder / "state.toml", {**state, "step": 2, "files": files})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "state.toml").write_text('run = "'), "state.toml is damaged"),
        (
            lambda folder: (folder / "losses.csv").write_text(
                "\n".join((folder / "losses.csv").read_text().splitlines()[:2]) + "\n"
            ),
            "losses.csv is damaged",
        ),
        (lambda folder: (folder / "token.safetensors").write_bytes(b"\0" * 8), "token.safetensors is damaged"),
        (lambda folder: _edit_step(folder, losses_kept=3), "holds 3 steps' losses for a checkpoint at step 2"),
        (lambda folder: _edit_step(folder, losses_kept=2), "counts 3 AdamW steps for a checkpoint at step 2"),
    ],
    ids=["state-truncated", "losses-truncated", "token-truncated", "step-edited", "step-and-losses-edited"],
)
def test_a_checkpoint_whose_parts_disagree_is_refused_not_restarted(cli, made, damage, message):
    copied_here(made("train", "clip.mp4", "ref.png", *PREPARE_ARGS, "--steps", "3"))  # trained once, copied
    damage(PROJECT / "checkpoints" / "train")
    result = cli("train", "--steps", "4")
    assert result.code == 1 and message in result.error_lines[0], result.err
    assert "--force" in result.err and "Traceback" not in result.err


def test_more_steps_continue_a_finished_run(cli, clip, image, six_steps, monkeypatch):
    monkeypatch.setenv("LIVE_QUIET", "0")
    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "4", "--checkpoint-every", "3").code == 0
    more = cli("train", "--steps", "6")
    assert more.code == 0, more.err
    assert "prepare: up to date" in more.err and "resuming at step 4 of 6" in more.err
    assert_same_tensors(TRAIN, six_steps)


def test_gradient_checkpointing_changes_nothing(cli, clip, image, six_steps, monkeypatch):
    checkpointed = count_checkpointed_calls(monkeypatch)
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "6", "--gradient-checkpointing")
    assert result.code == 0, result.err
    assert checkpointed  # the flag reached the UNet
    assert_same_tensors(TRAIN, six_steps)


def test_checkpointing_the_highest_resolutions_changes_nothing(cli, clip, image, six_steps, monkeypatch):
    checkpointed = count_checkpointed_calls(monkeypatch)
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "6", "--gradient-checkpointing", "on")
    assert result.code == 0, result.err
    assert checkpointed
    assert read_toml(TRAIN / "record.toml")["facts"]["gradient_checkpointing"] == "on"
    assert_same_tensors(TRAIN, six_steps)


@pytest.mark.parametrize(("free_gb", "mode"), [(1000.0, "off"), (0.0, "all")])
def test_auto_checkpointing_follows_the_free_memory(cli, clip, image, monkeypatch, free_gb, mode):
    from livecli import resources

    monkeypatch.setattr(resources, "free_bytes", lambda device: int(free_gb * resources.GB))
    monkeypatch.setenv(resources.SKIP, "1")  # prepare's check would refuse the clip first
    checkpointed = count_checkpointed_calls(monkeypatch)
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "2")
    assert result.code == 0, result.err
    assert read_toml(TRAIN / "record.toml")["facts"]["gradient_checkpointing"] == mode
    assert bool(checkpointed) == (mode != "off")


def test_changed_settings_train_afresh_and_force_restarts(cli, clip, image, monkeypatch):
    monkeypatch.setenv("LIVE_QUIET", "0")
    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "2").code == 0
    first = tensors(TRAIN)
    changed = cli("train", "--steps", "2", "--lr", "1e-4")
    assert changed.code == 0 and "changed since the last checkpoint; training from step 0" in changed.err
    assert read_toml(TRAIN / "record.toml")["settings"]["lr"] == 1e-4
    assert not torch.equal(
        tensors(TRAIN)["latent_prompt.safetensors:latent_prompt"], first["latent_prompt.safetensors:latent_prompt"]
    )

    forced = cli("train", "--steps", "2", "--lr", "1e-4", "--force")
    assert forced.code == 0 and "train: 2 steps" in forced.err and "resuming" not in forced.err


def test_a_changed_prepare_makes_training_stale(cli, clip, image):
    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "2").code == 0
    assert cli("prepare", clip, image, *PREPARE_ARGS[:-4], "--frames", "4", "--size", "64").code == 0
    states = {s["stage"]: s for s in __import__("json").loads(cli("status", "--json").out)["stages"]}
    assert states["train"]["state"] == "stale" and "prepare changed" in states["train"]["reason"]
    table = cli("status").out
    assert "note" in table and "changed" in table  # the table gains a note column for the reason
    again = cli("train", "--steps", "2")
    assert again.code == 0 and "train: 2 steps" in again.err
    assert read_toml(TRAIN / "record.toml")["facts"]["frames"] == 4


def test_bf16_mixed_precision_runs_on_the_cpu(cli, clip, image):
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "2", "--mixed-precision", "bf16")
    assert result.code == 0, result.err
    assert all(torch.isfinite(t).all() for t in tensors(TRAIN).values())


@pytest.fixture
def prepared(cli, clip, image) -> Path:
    assert cli("prepare", clip, image, *PREPARE_ARGS).code == 0
    return PROJECT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--token", "x"), "the tokenizer already knows --token 'x'"),
        (("--token", "<my token>"), "--token must be one string without spaces"),
        (("--token", "<my\x00tok>"), "--token must be one string without spaces or control characters"),
        (("--token", "jeep"), "--token 'jeep' occurs in the prompt"),
        (("--steps", "0"), "--steps must be at least 1"),
        (("--lr", "-1e-5"), "--lr must be a positive number"),
        (("--ti-lr", "0"), "--ti-lr must be a positive number"),
        (("--lp-lr", "-1"), "--lp-lr must be a positive number"),
        (
            ("--preset", "paper", "--steps", "500", "--lr", "1e-4"),
            "--lr 0.0001 contradicts --preset paper (the paper's: 3e-05)",
        ),
        (
            ("--preset", "paper", "--steps", "500", "--image-temporal"),
            "--image-temporal contradicts --preset paper (the paper's: off)",
        ),
        (("--preset", "paper", "--steps", "500", "--init-word", "dog"), "--init-word dog contradicts --preset paper"),
        (("--steps", "many"), "--steps must be a number or 'auto', got 'many'"),
        (("--lambda", "-1"), "--lambda must be 0 or more"),
        (("--checkpoint-every", "0"), "--checkpoint-every must be at least 1"),
        (("--mixed-precision", "fp8"), "--mixed-precision 'fp8' is not one of auto, no, fp16, bf16"),
        (("--mixed-precision", "fp16"), "--mixed-precision fp16 needs a GPU"),
        (("--gradient-checkpointing", "some"), "--gradient-checkpointing 'some' is not one of auto, on, all, off"),
        (("--prompt", "a car"), "--prompt goes with CLIP IMAGE"),
        (("--size", "128", "--frames", "4"), "--frames and --size go with CLIP IMAGE"),
        (("clip.mp4",), "CLIP needs IMAGE"),
        (("clip.mp4", "ref.png"), "CLIP IMAGE need --prompt and --object"),
        (
            ("--reference-prompt", "a dog on a lawn"),
            "--reference-prompt 'a dog on a lawn' names neither <tok> nor the object word 'car'",
        ),
        (("--reference-prompt", " "), "--reference-prompt is empty"),
        (("--init-word", " "), "--init-word is empty"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(cli, prepared, args, message):
    digest = tree_digest(prepared)
    result = cli(
        "train", *args, "--steps" if "--steps" not in args else "--seed", "2" if "--steps" not in args else "1"
    )
    assert result.code == 1, result.err
    assert len(result.error_lines) == 1 and message in result.error_lines[0], result.err
    assert "Traceback" not in result.err
    assert tree_digest(prepared) == digest and not (prepared / "train").exists()


def test_train_without_a_prepared_project_names_prepare(cli, tmp_path):
    result = cli("train")
    assert result.code == 1 and "no live project in the current directory" in result.error_lines[0]
    assert "live prepare" in result.err
    result = cli("train", "-p", tmp_path / "nothing.live")
    assert result.code == 1 and "has no prepared frames" in result.error_lines[0]
    assert "live prepare" in result.err and not (tmp_path / "nothing.live").exists()


def test_train_prepares_again_when_the_clip_changed(cli, clip, image):
    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "2").code == 0
    before = read_toml(PROJECT / "prepare" / "record.toml")["fingerprint"]
    write_clip(clip, frames=14)
    again = cli("train", "--steps", "2")
    assert again.code == 0, again.err
    assert "prepare: 8 frames" in again.err and "train: 2 steps" in again.err
    assert read_toml(PROJECT / "prepare" / "record.toml")["fingerprint"] != before


def test_train_uses_the_prepared_frames_when_the_sources_are_gone(cli, clip, image, tmp_path, tiny_sd):
    assert cli("prepare", clip, image, *PREPARE_ARGS).code == 0
    clip.unlink()
    result = cli("train", "--steps", "2")
    assert result.code == 0 and "prepare: up to date" in result.err

    tiny_sd.save_pretrained(tmp_path / "other-model")  # another model needs the frames encoded again
    other = cli("train", "--steps", "2", "--model", tmp_path / "other-model")
    assert other.code == 1 and "the project's clip or image is gone" in other.error_lines[0]
    assert "pass CLIP IMAGE" in other.err


def test_a_damaged_checkpoint_is_one_clear_error(cli, clip, image):
    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "2").code == 0
    (PROJECT / "checkpoints" / "train" / "optimizer.safetensors").write_bytes(b"not a tensor file")
    result = cli("train", "--steps", "3")
    assert result.code == 1 and "checkpoints/train/optimizer.safetensors is damaged" in result.error_lines[0]
    assert "--force" in result.err
    forced = cli("train", "--steps", "3", "--force")
    assert forced.code == 0 and "train: 3 steps" in forced.err


def test_preset_paper_trains_with_the_papers_settings_and_records_them(cli, clip, image, monkeypatch, capture_trainer):
    """The paper's 500 steps, cut short after step 2; the settings its record keeps are the
    paper's, whatever the defaults become; a flag repeating the paper's value is no contradiction."""
    from livecli.config import TrainConfig
    from livecli.fields import default_of, paper_settings

    config = TrainConfig(preset="paper")
    settings = config.settings()
    assert settings["preset"] == "paper"
    for name, value in paper_settings(TrainConfig).items():  # optional ones at their default are left out of records
        assert getattr(config, name) == value, name
        # the reference masking the stage records only where it applies (train.py): the paper's is the absence
        assert settings.get(name, default_of(TrainConfig, name)) == value or name in {"reference_mask", "show_object"}
    interrupt_after(monkeypatch, 2)
    stopped = cli("train", clip, image, *PREPARE_ARGS, "--preset", "paper", "--lr", "3e-5")
    assert stopped.code == 130 and "checkpoint saved at step 2 of 500" in stopped.err
    trainer = capture_trainer[-1]
    assert trainer.config.settings() == {**settings, "mixed_precision": "no"}
    assert trainer.token_prompts[0] == "a jeep <@#$> is moving on the road"  # the source prompt, the object's place
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [3e-5, 5e-3]  # the latent prompt at --lr


def test_lp_lr_is_the_latent_prompts_own_rate_and_the_record_says_how_far_it_moved(cli, clip, image):
    """One step: the attention weights see the same gradients either way (the latent prompt
    starts as the first frame in both), so they move alike; the latent prompt moves about
    --lp-lr / --lr times as far."""

    def one_step(*flags: str) -> tuple[dict[str, torch.Tensor], float, str]:
        result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "1", "--force", *flags)
        assert result.code == 0, result.err
        record = read_toml(TRAIN / "record.toml")
        return load_file(TRAIN / "attention_deltas.safetensors"), record["facts"]["latent_prompt_moved"], result.err

    same_deltas, slow, _ = one_step()
    deltas, fast, said = one_step("--lp-lr", "3e-2")
    assert deltas.keys() == same_deltas.keys() and all(torch.equal(deltas[k], same_deltas[k]) for k in deltas)
    assert 0 < slow and 300 < fast / slow < 3000  # Adam's first step: about lr per element
    assert read_toml(TRAIN / "record.toml")["settings"]["lp_lr"] == 3e-2
    assert f"latent prompt moved {fast:.1%}" in said  # the stage line says how far


def use_short_rule(monkeypatch) -> None:
    """`--steps auto` observing every 2 steps, stopping after 2 observations without a 2 % gain, at most 14."""
    import functools

    from livecli.stages import train as train_stage
    from livecli.stopping import EarlyStopping

    monkeypatch.setattr(
        train_stage, "EarlyStopping", functools.partial(EarlyStopping, every=2, patience=2, min_gain=0.02, max_steps=14)
    )


def test_steps_auto_stops_by_the_rule_and_keeps_the_best_step(cli, clip, image, monkeypatch, tmp_path):
    args = (clip, image, *PREPARE_ARGS, "--lr", "1e-3")
    use_short_rule(monkeypatch)
    interrupt_after(monkeypatch, 3)
    assert cli("train", *args, "--steps", "auto").code == 130
    resumed = cli("train", *args, "--steps", "auto")
    assert resumed.code == 0, resumed.err
    record = read_toml(TRAIN / "record.toml")
    auto = record["facts"]["auto_steps"]
    assert record["settings"]["steps"] == "auto"
    observed = dict(zip(auto["observed_steps"], auto["observed_losses"], strict=True))
    assert auto["observed_steps"] == list(range(0, auto["stopped_at"] + 1, 2)) and auto["stopped_at"] <= 14
    assert auto["kept_step"] == min(observed, key=observed.get)
    assert len(loss_rows(TRAIN)) == auto["stopped_at"]
    assert f"auto: {auto['stopped_at']} steps, kept step {auto['kept_step']}" in resumed.err

    # What it kept is what a run of that many steps makes: the observations did not change the training.
    fixed = tmp_path / "fixed.live"
    assert cli("train", *args, "-p", fixed, "--steps", str(max(auto["kept_step"], 1))).code == 0
    if auto["kept_step"]:
        assert_same_tensors(TRAIN, fixed / "train")

    uninterrupted = tmp_path / "whole.live"
    assert cli("train", *args, "-p", uninterrupted, "--steps", "auto").code == 0
    assert_same_tensors(TRAIN, uninterrupted / "train")
    assert read_toml(uninterrupted / "train" / "record.toml")["facts"]["auto_steps"] == auto
    assert "--steps must be a number or 'auto'" in cli("train", "--steps", "some").error_lines[0]


class _InfiniteGradient(torch.autograd.Function):
    """The identity, whose gradient is infinite: a finite loss with a non-finite gradient."""

    @staticmethod
    def forward(ctx, value):
        return value.clone()

    @staticmethod
    def backward(ctx, gradient):
        return gradient * float("inf")


@pytest.mark.parametrize("broken", ["loss", "gradient"])
def test_a_non_finite_step_stops_training_and_records_nothing_as_done(cli, prepared, monkeypatch, broken):
    monkeypatch.setenv("LIVE_QUIET", "0")
    calls = []
    video_loss, text_loss = LiveTrainer.video_loss, LiveTrainer.text_loss

    def video(self, generator=None, timestep=None):
        loss = video_loss(self, generator, timestep)
        if generator is None:  # a training step's, not a fixed draw's
            calls.append(1)
            if broken == "loss" and len(calls) == 4:
                return loss * float("nan")
        return loss

    def text(self, generator=None, timestep=None):
        loss = text_loss(self, generator, timestep)
        return _InfiniteGradient.apply(loss) if broken == "gradient" and len(calls) == 4 else loss

    with monkeypatch.context() as patched:
        patched.setattr(LiveTrainer, "video_loss", video)
        patched.setattr(LiveTrainer, "text_loss", text)
        result = cli("train", "--steps", "5", "--checkpoint-every", "2")
    assert result.code == 1 and "Traceback" not in result.err
    what = "the loss (video nan" if broken == "loss" else "the gradient is not finite"
    assert result.error_lines[0].startswith("error: training diverged at step 4: " + what), result.err
    assert "lower --lr (now 3e-05) or --ti-lr (now 0.005)" in result.err
    assert not (TRAIN / "record.toml").exists()
    assert read_toml(PROJECT / "checkpoints" / "train" / "state.toml")["step"] == 2  # the last finite state kept
    result = cli("train", "--steps", "5", "--checkpoint-every", "2")
    assert result.code == 0 and "resuming at step 2" in result.err, result.err


def test_a_learning_rate_that_would_diverge_is_refused_before_any_work(cli, prepared):
    before = tree_digest(PROJECT)
    for value in ("1e12", "1e38", "inf", "nan"):
        result = cli("train", "--lr", value)
        assert result.code == 1 and len(result.error_lines) == 1 and "--lr" in result.error_lines[0], result.err
    assert tree_digest(PROJECT) == before and not TRAIN.exists()


def test_a_prompt_past_what_the_text_encoder_reads_is_refused_before_training(cli, prepared, monkeypatch):
    steps = []
    monkeypatch.setattr(LiveTrainer, "step", lambda self: steps.append(1))
    result = cli("train", "--reference-prompt", "a photo of a very " * 6 + "shiny <tok>")
    assert result.code == 1 and steps == [] and "Traceback" not in result.err
    assert result.error_lines[0].startswith("error: the image objective's prompt 'a photo of")
    assert "tokens long and the text encoder reads 77; '<@#$>' is token" in result.error_lines[0]
    assert not TRAIN.exists()
