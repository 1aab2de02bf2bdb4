"""What invert and edit share: the trained model they run on (`Runtime`), loaded once and
only when needed, and the windows a clip runs in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from livecli.config import DEFAULT_WINDOW, EditConfig, InvertConfig, ModelConfig, check_overlap
from livecli.errors import ProjectError
from livecli.models.loading import ModelSource, resolve_device, resolve_dtype, resolve_model
from livecli.models.trained import TrainedModel, load_trained
from livecli.stages import PREPARE, TRAIN
from livecli.stages import prepare as prepare_stage
from livecli.stages import train as train_stage
from livecli.store import Project, Record
from livecli.windows import Window, plan_windows, window_settings


@dataclass
class Runtime:
    """The model, device and precision that a run of invert (and edit) works with.

    The trained model is loaded on first use only: an up-to-date stage never loads it,
    and edit hands its copy to the inversion it needs.
    """

    project: Project
    source: ModelSource
    device: torch.device
    dtype: torch.dtype
    compile_unet: bool = False
    _trained: TrainedModel | None = None

    @classmethod
    def resolve(cls, project: Project, model: ModelConfig) -> Runtime:
        source = resolve_model(model.model, config=model.model_config)
        device = resolve_device(model.device)
        return cls(project, source, device, resolve_dtype(model.dtype, device), model.compile)

    def check_model(self, trained: Record) -> None:
        """The project's training was made on this model."""
        if trained.inputs.get("model") != self.source.key:
            raise ProjectError(
                f"the project was trained on another model than {self.source.id} (or the model's files changed)",
                hint="pass the model it was trained on with --model, or run `live train` again",
            )

    def release(self) -> None:
        """Drop the trained model (before decoding, so that the VAE has the memory)."""
        self._trained = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def trained(self) -> TrainedModel:
        if self._trained is None:
            latents = prepare_stage.latents(self.project)
            files = train_stage.trained_files(self.project, self.project.record(TRAIN))
            # Several references: the first is the latent prompt (of the unconditional branch, and of
            # --latent-prompt reference). On the demo's clip with four references the one nearest the
            # clip's latents (another background) showed the object in 0 % of frames, the first in 38 %.
            reference = latents["reference"][:1]
            self._trained = load_trained(files, reference, self.source, self.device, self.dtype, self.compile_unet)
        return self._trained


def frame_count(project: Project) -> int:
    """The number of prepared frames, from the prepare record."""
    return int(project.record(PREPARE).facts["frames_shape"][0])


@dataclass(frozen=True)
class Windows:
    """The windows invert and edit run a clip in: --window (else the training's) and
    --overlap, checked against each other once (`of`), planned once over the clip."""

    frames: int
    window: int
    overlap: int

    @classmethod
    def of(cls, config: InvertConfig | EditConfig, frames: int, trained_window: int | None) -> Windows:
        window, overlap = resolve_windows(config, trained_window)
        return cls(frames, window, overlap)

    @cached_property
    def planned(self) -> list[Window]:
        return plan_windows(self.frames, self.window, self.overlap)

    @property
    def settings(self) -> dict[str, int]:
        """As a record keeps them: only where the clip needs more than one window."""
        return window_settings(self.frames, self.window, self.overlap)


def resolve_windows(config: InvertConfig | EditConfig, trained_window: int | None) -> tuple[int, int]:
    """(window, overlap): --window, else the training's (`trained_window`, None before a
    training or where it ran the clip whole); an overlap that does not fit it is an error.
    The one check of the two together: `live run` and batch jobs make it with the
    training's config before anything runs, invert and edit with its record."""
    window = config.window or trained_window or DEFAULT_WINDOW
    check_overlap(type(config), config.overlap, window)
    return window, config.overlap
