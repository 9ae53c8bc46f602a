"""Embedded synthetic default: a fair, deterministic test bed for missing-modality methods.

Generative process (documented in ``book/data.md``), per sample i:

1. A latent target z_i: one sentiment score (MOSI/MOSEI/SIMS) or four emotion scores (IEMOCAP),
   z_i ~ N(0, I). The label is a fixed function of z_i (scaled, clipped and quantised like the
   real annotations).
2. A *shared* factor c_i = W_c z_i + n_i (n_i ~ N(0, s_c^2 I)), the same for every modality, so a
   missing modality can be partly recovered from the others.
3. A *private* factor per modality p_im = W_pm (z_i + e_im) + n_im: modality-specific evidence
   with its own noise e_im, so every extra modality adds independent information.
4. Frames: a random subset of each sample's valid frames is *salient*; salient frames carry
   A_m [a_m c_i ; a_m p_im]; every frame carries per-frame nuisance B_m u_it plus Gaussian noise.
   Dropping frames therefore removes information, and dropping a whole modality more so.
   Text has the least evidence noise (and, with 768 dimensions, the most redundant view of the
   factors), so it carries the most signal; audio and vision carry less.

Noise levels are set so that complete-modality Acc-2 sits well below 100 % (tests check this
with a ridge probe). Everything is drawn from ``numpy.random.default_rng`` seeded streams: the
same (preset, size, seed) gives the same arrays, and the "world" (projections) does not depend
on ``size``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .container import IEMOCAP_EMOTIONS, MODALITIES, MSADataset, MSASplit
from .identity import GENERATOR_VERSION

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Preset:
    """Shapes and label conventions of one real dataset."""

    kind: str
    dims: dict[str, int]
    seq_lens: dict[str, int]
    aligned: bool
    split_sizes: tuple[int, int, int]
    n_targets: int = 1
    label_scale: float = 1.4
    label_clip: float = 3.0
    label_step: float = 0.2


PRESETS: dict[str, Preset] = {
    "mosi": Preset("mosi", {"text": 768, "audio": 5, "vision": 20}, {"text": 50, "audio": 50, "vision": 50},
                   True, (1284, 229, 686)),
    "mosei": Preset("mosei", {"text": 768, "audio": 74, "vision": 35}, {"text": 50, "audio": 50, "vision": 50},
                    True, (16326, 1871, 4659)),
    "sims": Preset("sims", {"text": 768, "audio": 33, "vision": 709}, {"text": 39, "audio": 400, "vision": 55},
                   False, (1368, 456, 457), label_scale=0.55, label_clip=1.0, label_step=0.2),
    "iemocap": Preset("iemocap", {"text": 300, "audio": 74, "vision": 35}, {"text": 20, "audio": 20, "vision": 20},
                      True, (2717, 798, 938), n_targets=4),
}

# Modality-specific generative constants: signal weight on salient frames and the std of the
# modality's private evidence noise. The evidence noise is what ranks the modalities: text
# carries the most sentiment information, vision and audio less (the synthetic-data page
# measures it with a ridge probe per preset).
SIGNAL = {"text": 0.8, "audio": 1.0, "vision": 0.8}
EVIDENCE_NOISE = {"text": 0.6, "audio": 1.2, "vision": 1.4}
LATENT = 8  # dimension of the shared and of each private factor
SALIENT_FRACTION = 0.3
# Longer sequences average away more noise; scale the signal so that per-sample evidence does
# not grow with T beyond this reference length (keeps text the most informative on SIMS).
REFERENCE_LEN = 50
FRAME_NOISE = 1.0
SHARED_NOISE = 4.0
PRIVATE_NOISE = 1.0
# Emotion thresholds so that IEMOCAP-like positives are the minority class (about 20-35 %).
EMOTION_THRESHOLDS = np.array([0.5, 0.7, 0.6, 0.4])


def _world(preset: Preset, rng: np.random.Generator) -> dict:
    """Fixed projections shared by all splits."""
    k, q = LATENT, preset.n_targets
    world = {
        "W_c": rng.normal(size=(q, k)) / np.sqrt(q),
        "W_p": {m: rng.normal(size=(q, k)) / np.sqrt(q) for m in MODALITIES},
        "A": {},
        "B": {},
    }
    for m in MODALITIES:
        d = preset.dims[m]
        world["A"][m] = rng.normal(size=(2 * k, d)) / np.sqrt(2 * k)
        world["B"][m] = rng.normal(size=(k, d)) / np.sqrt(k)
    return world


def _lengths(rng: np.random.Generator, n: int, preset: Preset) -> dict[str, np.ndarray]:
    if preset.aligned:
        t = preset.seq_lens["text"]
        common = rng.integers(max(2, t // 4), t + 1, size=n)
        return {m: common.copy() for m in MODALITIES}
    return {
        m: rng.integers(max(2, preset.seq_lens[m] // 4), preset.seq_lens[m] + 1, size=n) for m in MODALITIES
    }


def _labels(z: np.ndarray, preset: Preset) -> np.ndarray:
    y = np.clip(preset.label_scale * z[:, 0], -preset.label_clip, preset.label_clip)
    return (np.round(y / preset.label_step) * preset.label_step).astype(np.float32)


def _modality_frames(
    rng: np.random.Generator, preset: Preset, world: dict, m: str, shared: np.ndarray, private: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    n, t, d = len(lengths), preset.seq_lens[m], preset.dims[m]
    valid = np.arange(t)[None, :] < lengths[:, None]
    salient = (rng.random((n, t)) < SALIENT_FRACTION) & valid
    # at least one salient frame per sample: the first valid frame if none was drawn
    salient[~salient.any(axis=1), 0] = True
    weight = SIGNAL[m] * np.sqrt(REFERENCE_LEN / max(t, REFERENCE_LEN))
    content = weight * np.concatenate([shared, private], axis=1) @ world["A"][m]  # (n, d)
    nuisance = rng.normal(size=(n, t, LATENT)).astype(np.float32) @ world["B"][m]
    x = nuisance + FRAME_NOISE * rng.normal(size=(n, t, d))
    x += salient[:, :, None] * content[:, None, :]
    x *= valid[:, :, None]
    return x.astype(np.float32)


def _split(rng: np.random.Generator, preset: Preset, world: dict, n: int, name: str) -> MSASplit:
    q = preset.n_targets
    z = rng.normal(size=(n, q))
    shared = z @ world["W_c"] + SHARED_NOISE * rng.normal(size=(n, LATENT))
    evidence = {m: z + EVIDENCE_NOISE[m] * rng.normal(size=(n, q)) for m in MODALITIES}
    private = {m: evidence[m] @ world["W_p"][m] + PRIVATE_NOISE * rng.normal(size=(n, LATENT)) for m in MODALITIES}
    lengths = _lengths(rng, n, preset)
    feats = {m: _modality_frames(rng, preset, world, m, shared, private[m], lengths[m]) for m in MODALITIES}
    labels = unimodal = class_labels = None
    if preset.kind == "iemocap":
        class_labels = (z > EMOTION_THRESHOLDS[None, :q]).astype(np.int64)
    else:
        labels = _labels(z, preset)
        if preset.kind == "sims":
            unimodal = {m: _labels(evidence[m], preset) for m in MODALITIES}
    return MSASplit(
        text=feats["text"], audio=feats["audio"], vision=feats["vision"], lengths=lengths, labels=labels,
        ids=[f"synthetic_{name}_{i}" for i in range(n)], raw_text=None, unimodal_labels=unimodal,
        class_labels=class_labels, name=name, source=f"synthetic:{preset.kind}",
    )


def make_synthetic(preset: str = "mosi", size: float = 1.0, seed: int = 0, max_len: int | None = None,
                   eval_samples: int | None = None) -> MSADataset:
    """Generate the embedded synthetic dataset ``preset`` (mosi, mosei, sims, iemocap).

    ``size`` scales the real split sizes (e.g. 0.1 → MOSI 128/23/69); each split keeps at least
    16 samples, and the valid and test splits at least ``eval_samples`` (so test metrics vary
    little with the data draw even when training data is small). ``max_len`` caps every
    modality's sequence length (a compute budget: attention cost grows with the square of it).
    Deterministic in (preset, size, seed, max_len, eval_samples).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}")
    if not (0 < size <= 1.0):
        raise ValueError(f"synthetic size factor must lie in (0, 1], got {size}")
    if max_len is not None and max_len < 2:
        raise ValueError(f"synthetic max_len must be at least 2 frames, got {max_len}")
    if eval_samples is not None and eval_samples < 1:
        raise ValueError(f"synthetic eval_samples must be positive, got {eval_samples}")
    p = PRESETS[preset]
    if max_len is not None:
        p = replace(p, seq_lens={m: min(t, max_len) for m, t in p.seq_lens.items()})
    root = np.random.SeedSequence([seed, sum(map(ord, preset))])
    world_seq, *split_seqs = root.spawn(1 + len(SPLITS))
    world = _world(p, np.random.default_rng(world_seq))
    splits = {}
    for name, n_full, seq in zip(SPLITS, p.split_sizes, split_seqs):
        n = max(16, int(round(n_full * size)))
        if name != "train" and eval_samples:
            n = max(n, eval_samples)
        splits[name] = _split(np.random.default_rng(seq), p, world, n, name)
    return MSADataset(
        name=preset, kind="iemocap" if preset == "iemocap" else ("sims" if preset == "sims" else "mosi"),
        splits=splits, aligned=p.aligned, source=f"synthetic:{preset}",
        class_names=IEMOCAP_EMOTIONS if preset == "iemocap" else None,
        notes={"size": str(size), "seed": str(seed), "max_len": str(max_len), "eval_samples": str(eval_samples),
               "generator": GENERATOR_VERSION},
    )


def preset_table():
    """The presets as the book shows them (computed from :data:`PRESETS`)."""
    import pandas as pd

    rows = []
    for name, p in PRESETS.items():
        labels = (f"{p.n_targets} binary emotions" if p.kind == "iemocap" else
                  f"[-{p.label_clip:g}, {p.label_clip:g}], steps of {p.label_step:g}"
                  + (" + unimodal labels" if p.kind == "sims" else ""))
        lens = sorted(set(p.seq_lens.values()))
        rows.append({"preset": f"synthetic:{name}", "text / audio / vision dims": " / ".join(
            str(p.dims[m]) for m in MODALITIES), "sequence lengths": " / ".join(map(str, [p.seq_lens[m] for m in MODALITIES]))
            if len(lens) > 1 else f"{lens[0]} (aligned)", "labels": labels,
            "full train / valid / test": " / ".join(map(str, p.split_sizes)),
            "salient frames": f"{SALIENT_FRACTION:.0%}"})
    return pd.DataFrame(rows).set_index("preset")
