"""Trainer extension points: a model brings its own optimizers, stages, views; the config brings a
learning-rate schedule. A toy fourth model with two optimizers and a two-stage schedule needs one
model class and one chapter entry — no edit to the trainer, store, protocols or report modules."""
from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import msa_lib.chapters as chapters
import msa_lib.models as models
from msa_lib.core import Batch, masked_mean
from msa_lib.data.container import MODALITIES, MSADataset, MSASplit
from msa_lib.experiments import run_chapter, train_once_specs
from msa_lib.models.base import ModelOutput, MSAModel, OptimizerStep, Stage
from msa_lib.train import TrainConfig, Trainer, lr_scheduler

DIMS = {"text": 6, "audio": 3, "vision": 4}
T = 5


def tiny_dataset(seed: int = 0, n: int = 24) -> MSADataset:
    rng = np.random.default_rng(seed)

    def split(name: str, size: int) -> MSASplit:
        lengths = rng.integers(2, T + 1, size=size)
        valid = np.arange(T)[None, :] < lengths[:, None]
        feats = {m: (rng.normal(size=(size, T, d)) * valid[..., None]).astype(np.float32) for m, d in DIMS.items()}
        labels = np.clip(feats["text"].sum(axis=(1, 2)) / lengths, -3, 3).astype(np.float32)
        return MSASplit(text=feats["text"], audio=feats["audio"], vision=feats["vision"],
                        lengths={m: lengths.copy() for m in MODALITIES}, labels=labels,
                        ids=[f"{name}_{i}" for i in range(size)], name=name, source="tiny")

    return MSADataset(name="tiny", kind="mosi", splits={"train": split("train", n), "valid": split("valid", 10),
                                                        "test": split("test", 10)}, source="tiny")


@dataclass
class ToyConfig:
    """The toy's config: learning rates of its two optimizers, critic steps per main step."""

    main_lr: float = 1e-2
    critic_lr: float = 1e-2
    critic_steps: int = 3


class Toy(MSAModel):
    """Teacher (stage 1, complete data) -> frozen; student (stage 2) distilled from it, plus a
    critic with its own optimizer fitted on its own loss, ``critic_steps`` steps per main step."""

    def __init__(self, dims, config=None, n_classes=None):
        super().__init__()
        self.config = config or ToyConfig()
        d = sum(dims.values())
        self.teacher = nn.Linear(d, 1)
        self.student = nn.Sequential(nn.Linear(d, 4), nn.Tanh())
        self.head = nn.Linear(4, 1)
        self.critic = nn.Linear(4, 1)
        self.critic_calls = 0

    @staticmethod
    def pooled(batch: Batch) -> torch.Tensor:
        return torch.cat([masked_mean(batch.features[m], batch.lengths[m]) for m in MODALITIES], dim=1)

    def stages(self, config):
        return [Stage("teacher", protocol="complete", freeze=("student", "head", "critic")),
                Stage("student", freeze=("teacher",))]

    def configure_optimizers(self, config):
        main = [p for n, p in self.named_parameters() if not n.startswith("critic") and p.requires_grad]
        return [OptimizerStep(torch.optim.SGD(main, lr=self.config.main_lr)),
                OptimizerStep(torch.optim.SGD(self.critic.parameters(), lr=self.config.critic_lr),
                              loss=self.critic_loss, steps=self.config.critic_steps)]

    def critic_loss(self, batch: Batch) -> torch.Tensor:
        self.critic_calls += 1
        h = self.student(self.pooled(batch))  # flows into the student: must not update it
        return F.mse_loss(self.critic(h).squeeze(-1), batch.labels)

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.pooled(batch)
        if self.stage == "teacher":
            return ModelOutput(self.teacher(x).squeeze(-1))
        h = self.student(x)
        pred = self.head(h).squeeze(-1)
        losses = {"distill": F.mse_loss(pred, self.teacher(x).squeeze(-1).detach()),
                  "critic": self.critic(h).pow(2).mean()}  # flows into the critic: must not update it
        return ModelOutput(pred, losses)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def trainer_for(model: MSAModel, data: MSADataset, **cfg) -> Trainer:
    return Trainer(model, data, TrainConfig(**{"epochs": 2, "batch_size": 8, "patience": 5, "progress": False, **cfg}),
                   train_protocol="frame:0.3:resample", seed=1)


def test_stages_train_the_teacher_first_then_freeze_it():
    data = tiny_dataset()
    model = Toy(DIMS)
    before = snapshot(model)
    trainer = trainer_for(model, data)
    stage_of = []
    orig_fit_stage = trainer._fit_stage

    def spy(stage, *args):
        orig_fit_stage(stage, *args)
        stage_of.append((stage.name, snapshot(model.teacher), snapshot(model.student)))

    trainer._fit_stage = spy
    trainer.fit()
    (n1, teacher_1, student_1), (n2, teacher_2, student_2) = stage_of
    assert (n1, n2) == ("teacher", "student")
    assert not same(teacher_1, {k[len("teacher."):]: v for k, v in before.items() if k.startswith("teacher.")})
    assert same(student_1, {k[len("student."):]: v for k, v in before.items() if k.startswith("student.")})
    assert same(teacher_1, teacher_2)  # frozen during the student stage
    assert not same(student_1, student_2)
    assert [h["stage"] for h in trainer.history].count("teacher") == 2
    assert model.stage == "student" and all(p.requires_grad for p in model.parameters())


def test_a_frozen_module_stays_in_eval_mode_while_the_rest_trains():
    model = nn.Module()
    toy = Toy(DIMS)
    toy.teacher = nn.Sequential(nn.Linear(13, 1), nn.Dropout(0.5))
    trainer = trainer_for(toy, tiny_dataset())
    trainer.start_stage(Stage("student", freeze=("teacher",)))
    trainer.train_mode()
    assert not toy.teacher.training and toy.student.training
    del model


@pytest.mark.parametrize("zero", ["main", "critic"])
def test_each_optimizer_applies_only_its_own_loss_to_its_own_parameters(zero):
    data = tiny_dataset()
    cfg = ToyConfig(main_lr=0.0 if zero == "main" else 1e-1, critic_lr=0.0 if zero == "critic" else 1e-1)
    model = Toy(DIMS, cfg)
    trainer = trainer_for(model, data)
    trainer.start_stage(Stage("student", freeze=("teacher",)))
    batch = next(iter([_batch(data)]))
    critic, student = snapshot(model.critic), snapshot(model.student)
    trainer.train_step(batch)
    if zero == "critic":  # the main loss has a gradient into the critic, but only the critic's optimizer may move it
        assert same(critic, snapshot(model.critic)) and not same(student, snapshot(model.student))
    else:  # the critic's loss has a gradient into the student, but only the main optimizer may move it
        assert same(student, snapshot(model.student)) and not same(critic, snapshot(model.critic))
    assert model.critic_calls == cfg.critic_steps


def _batch(data: MSADataset) -> Batch:
    from msa_lib.train import SplitTensors

    t = SplitTensors(data["train"])
    return t.batch(torch.arange(8), t)


def test_configure_optimizers_needs_exactly_one_main_optimizer():
    class NoMain(Toy):
        def configure_optimizers(self, config):
            return [OptimizerStep(torch.optim.SGD(self.critic.parameters(), lr=0.1), loss=self.critic_loss)]

    with pytest.raises(ValueError, match="exactly one main optimizer"):
        trainer_for(NoMain(DIMS), tiny_dataset()).start_stage()


def test_unknown_frozen_module_is_refused():
    with pytest.raises(ValueError, match="freezes unknown module"):
        trainer_for(Toy(DIMS), tiny_dataset()).start_stage(Stage("x", freeze=("nope",)))


def test_learning_rate_schedule_warmup_then_steps():
    cfg = TrainConfig(lr=0.3, warmup_epochs=2, lr_step_epochs=2, lr_gamma=0.5)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = lr_scheduler(opt, cfg)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [0.1, 0.2, 0.3, 0.3, 0.15, 0.15, 0.075], rtol=1e-6)
    assert lr_scheduler(opt, TrainConfig()) is None
    with pytest.raises(ValueError, match="lr_gamma"):
        TrainConfig(lr_gamma=0.0)


def test_trainer_records_the_scheduled_rate_per_epoch():
    trainer = trainer_for(Toy(DIMS), tiny_dataset(), epochs=3, lr=0.2, lr_step_epochs=1, lr_gamma=0.5)
    trainer.model.stages = lambda config: [Stage("only")]
    trainer.model.configure_optimizers = types.MethodType(MSAModel.configure_optimizers, trainer.model)
    trainer.model.forward = types.MethodType(lambda self, b: ModelOutput(self.teacher(self.pooled(b)).squeeze(-1)),
                                             trainer.model)
    trainer.fit()
    assert [round(h["lr"], 6) for h in trainer.history] == [0.2, 0.1, 0.05]


def test_training_views_are_transforms_of_the_batch():
    """A model may ask for any list of views, e.g. the masked batch and its time-reversed copy."""
    data = tiny_dataset()

    class Reverse(Toy):
        seen: list = []

        def stages(self, config):
            return [Stage()]

        def training_views(self, protocol):
            def reverse(batch, gen):
                return Batch(**{**batch.__dict__, "features": {m: x.flip(1) for m, x in batch.features.items()}})
            return [lambda batch, gen: batch, reverse]

        def forward(self, batch):
            if batch.views is not None:
                Reverse.seen.append([v.features["text"] for v in batch.views])
            return ModelOutput(self.teacher(self.pooled(batch)).squeeze(-1))

    trainer = trainer_for(Reverse(DIMS), data, epochs=1)
    trainer.start_stage()
    trainer.train_step(_batch(data))
    first, second = Reverse.seen[-1]
    assert torch.equal(second, first.flip(1)) and not torch.equal(first, second)


def test_toy_fourth_model_needs_one_model_and_one_chapter_entry(tmp_path, monkeypatch):
    """Register the toy with one MODELS entry and one chapter, run it through the same machinery as
    the real chapters (specs -> store -> runs), and read its weights back."""
    monkeypatch.setitem(models.MODELS, "toy", (Toy, ToyConfig))
    chapter = types.SimpleNamespace(NAME="toy", TITLE="Toy", MODELS=("toy",), SETTINGS={"tiny": {}})
    monkeypatch.setitem(chapters.CHAPTERS, "toy", chapter)
    data = tiny_dataset()

    def make(name, path, prof, seeds, choice, loaded):
        return train_once_specs("toy", name, seeds, "frame:0.3:resample", ("complete", "frame:0.5"),
                                train_config={"epochs": 2, "batch_size": 8}, label="toy")

    monkeypatch.setattr("msa_lib.experiments.load_dataset", lambda name, **kw: data)
    monkeypatch.setattr("msa_lib.experiments.data_options", lambda *a, **k: {})
    result = run_chapter("toy", make, "tiny", profile="smoke", seeds="1,2", results_dir=str(tmp_path), progress=False)
    res = result.first.results
    assert set(res.protocol) == {"complete", "frame:0.5"} and sorted(res.seed.unique()) == [1, 2]
    assert chapters.chapter_of_model("toy") is chapter
    spec = result.first.specs[0]
    model = Toy(DIMS)
    model.load_state_dict(result.store.load_weights(spec))
    record = result.store.load(spec)
    assert [h["stage"] for h in record["history"]][0] == "teacher"
