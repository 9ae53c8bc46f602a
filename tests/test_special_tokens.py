"""[CLS]/[SEP] protection is a property of models that read token ids, never of the data file.

An MMSA ``aligned_50.pkl`` carries ``text_bert`` (ids / attention mask / segments) beside the BERT
*features*. A model reading the features (UMDF, TFN) must lose every valid text frame at
``frame:1.0``: the [CLS] feature vector summarises the whole sentence. A model reading the ids
keeps [CLS]/[SEP] (the ids stay valid BERT input) and sees [UNK] everywhere else.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from msa_lib.data import load_dataset
from msa_lib.missing import UNK_ID
from msa_lib.models.base import ModelOutput, MSAModel
from msa_lib.models.umdf import UMDF, UMDFConfig
from msa_lib.train import SplitTensors, Trainer, TrainConfig, evaluate

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore:Corr is undefined:RuntimeWarning")]
CLS, SEP, T = 101, 102, 7


def write_aligned_mmsa(path: Path, n: int = 12, seed: int = 0) -> Path:
    """An aligned MMSA pickle with text_bert, post-padded, nonzero features on every valid frame."""
    rng = np.random.default_rng(seed)
    data = {}
    for split in ("train", "valid", "test"):
        lens = rng.integers(3, T + 1, size=n)
        valid = np.arange(T)[None, :] < lens[:, None]
        ids = np.zeros((n, 3, T), dtype=np.int64)
        for i, length in enumerate(lens):
            ids[i, 0, :length] = rng.integers(1000, 20000, size=length)
            ids[i, 0, 0], ids[i, 0, length - 1] = CLS, SEP
            ids[i, 1, :length] = 1
        feats = {m: (rng.uniform(0.5, 1.5, size=(n, T, d)) * valid[..., None]).astype(np.float32)
                 for m, d in (("text", 8), ("audio", 3), ("vision", 4))}
        data[split] = {**feats, "text_bert": ids, "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
                       "id": np.array([f"{split}{i}" for i in range(n)], dtype=object)}
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=4)
    return path


class Recorder:
    """Wraps a model's forward to keep the last batch it saw."""

    def __init__(self, model: MSAModel):
        self.model, self.batches = model, []
        forward = model.forward

        def recording(batch):
            self.batches.append(batch)
            return forward(batch)

        model.forward = recording


class TokenModel(MSAModel):
    """A minimal model that reads token ids (as a BERT-based model would)."""

    uses_token_ids = True

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        return ModelOutput(prediction=self.bias.expand(batch.size) + 0.0 * batch.text_ids[:, 0, :].sum(1))


@pytest.fixture(scope="module")
def bert_file(tmp_path_factory) -> Path:
    return write_aligned_mmsa(tmp_path_factory.mktemp("mmsa") / "aligned_50.pkl")


def valid_text(batch) -> torch.Tensor:
    return torch.arange(batch.features["text"].shape[1])[None, :] < batch.lengths["text"][:, None]


def test_feature_model_loses_every_text_frame_at_frame_one(bert_file: Path) -> None:
    """UMDF on a file with text_bert: frame:1.0 zeroes every valid text frame, in evaluation and in
    training views ([CLS] and [SEP] included)."""
    data = load_dataset("mine", str(bert_file))
    assert data["test"].text_bert is not None
    model = UMDF(data.dims, UMDFConfig(d=8, n_heads=2, n_layers=1))
    rec = Recorder(model)
    evaluate(model, data, "frame:1.0")
    seen = rec.batches[-1]
    assert (seen.features["text"][valid_text(seen)] == 0).all()
    assert not seen.keep["text"].any()

    trainer = Trainer(model, data, TrainConfig(epochs=1), train_protocol="frame:1.0:resample")
    trainer.start_stage()
    tensors = SplitTensors(data["train"])
    view = trainer.make_views(tensors.batch(torch.arange(tensors.n), tensors))
    for v in view.views:
        assert (v.features["text"][valid_text(v)] == 0).all()


def test_token_id_model_keeps_cls_and_sep_and_sees_unk_elsewhere(bert_file: Path) -> None:
    data = load_dataset("mine", str(bert_file))
    model = TokenModel()
    rec = Recorder(model)
    evaluate(model, data, "frame:1.0")
    seen = rec.batches[-1]
    ids, lengths = seen.text_ids[:, 0, :], seen.lengths["text"]
    rows = torch.arange(len(ids))
    assert (ids[:, 0] == CLS).all() and (ids[rows, lengths - 1] == SEP).all()
    inner = valid_text(seen)
    inner[:, 0] = False
    inner[rows, lengths - 1] = False
    assert inner.any() and (ids[inner] == UNK_ID).all()
    assert (seen.text_ids[:, 1, :] == torch.from_numpy(data["test"].text_bert[:, 1, :])).all()  # mask unchanged
