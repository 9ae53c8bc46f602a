"""Embedded synthetic default: a fair, deterministic test bed for missing-modality methods.

Generative process (documented in ``book/data.md``; version ``GENERATOR_VERSION`` 3), per sample i:

1. A latent target z_i: one sentiment score (MOSI/MOSEI/SIMS) or four emotion scores (IEMOCAP),
   z_i ~ N(0, I). The label is a fixed function of z_i (scaled, clipped and quantised like the
   real annotations; IEMOCAP emotions are z_ic > tau_c).
2. A *shared* factor c_i = W_c z_i + n_i (n_i ~ N(0, SHARED_NOISE^2 I)), the same for every
   modality, so a missing modality can be partly recovered from the others.
3. A *private* factor per modality p_im = W_pm (z_i + e_im) + n'_im: modality-specific evidence
   with its own sample-level error e_im ~ N(0, EVIDENCE_NOISE[m]^2), so every extra modality adds
   independent information. The loadings W have orthogonal rows of fixed norm (only their
   orientation is random), so every preset gets the same information geometry.
4. Frames: every valid frame t < T_i reads the content s_im = [c_i; p_im] with its own noise,
   x_imt = A_m' s_im + sqrt(T_i) (A_m' r_imt + B_m' u_imt + eps_imt): reading noise r (std
   READING_NOISE[m]) in the content's own directions, nuisance u in a fixed subspace and isotropic
   feature noise eps. The sqrt(T_i) makes the noise of a sample's *mean* frame independent of its
   length: a sample tells as much with 39 frames as with 400 (SIMS text vs audio) or when the book
   profile caps it at 20. Dropping frames averages fewer readings, so it costs information at
   every rate; dropping a whole modality costs its private evidence.

Text has the smallest evidence and reading noise, so it is the most informative single modality;
audio and vision carry less (IEMOCAP: audio more than vision). :mod:`msa_lib.probe` computes, with a
ridge probe, every ordering this promises (text first, complete set ≥ every subset, non-increasing
in the frame-drop rate) for every preset; the synthetic-data page shows the table.

Version 3 replaced version 2's randomly drawn salient frames: the share of salient frames in a
sample's mean varied with its length (few frames: a noisy share), which made long sequences more
informative than short ones (SIMS audio beat text), made some subsets beat the complete set, and
made the loss from dropping frames flat and noisy at low rates.

Noise levels are set so that complete-modality Acc-2 sits well below 100 % (tests check this
with a ridge probe). Everything is drawn from ``numpy.random.default_rng`` seeded streams: the
same (preset, size, seed) gives the same arrays, and the "world" (projections) does not depend
on ``size``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .container import IEMOCAP_EMOTIONS, MODALITIES, MSADataset, MSASplit, feature_names
from .identity import GENERATOR_VERSION
from .padding import post_padded_sides

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

    @property
    def dataset_kind(self) -> str:
        """The ``MSADataset.kind`` of its draws, i.e. how they are scored (MOSEI's as MOSI's)."""
        return self.kind if self.kind in ("sims", "iemocap") else "mosi"


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

# Modality-specific generative constants. Every valid frame reads the sample's content with its own
# latent noise; READING_NOISE[m] is the std of that noise averaged over all of a sample's frames
# (each frame's std is READING_NOISE[m] * sqrt(length)), so a sample tells as much however long its
# sequence is (SIMS audio's 400 frames no more than text's 39; the book profile's 20-frame cap
# no less than the full length), and dropping frames removes information at every rate.
# EVIDENCE_NOISE[m] is the modality's sample-level error (what even a noiseless reading would not
# tell). Both are smallest for text: text carries the most sentiment information.
READING_NOISE = {"text": 1.5, "audio": 2.2, "vision": 2.6}
EVIDENCE_NOISE = {"text": 0.3, "audio": 0.4, "vision": 0.45}
LATENT = 8  # dimension of the shared and of each private factor
SHARED_NOISE = 4.0
PRIVATE_NOISE = 0.3
# Per-frame nuisance (a fixed 8-dim subspace per modality) and isotropic feature noise, as the std
# of their mean over a sample's frames (like READING_NOISE).
NUISANCE_NOISE = 0.3
FRAME_NOISE = 0.3
# Emotion thresholds so that IEMOCAP-like positives are the minority class (about 20-35 %).
EMOTION_THRESHOLDS = np.array([0.5, 0.7, 0.6, 0.4])
_CHUNK = 512  # samples drawn at once (bounds the float32 scratch memory of the full MOSEI preset)


def _loadings(rng: np.random.Generator, q: int, k: int) -> np.ndarray:
    """(q, k) loadings of the q targets on a k-dim factor: orthogonal rows of squared norm k / q, in
    a random orientation (every preset gets the same information geometry, not a lucky draw)."""
    basis, _ = np.linalg.qr(rng.normal(size=(k, q)))
    return np.sqrt(k / q) * basis.T


def _world(preset: Preset, rng: np.random.Generator) -> dict:
    """Fixed projections shared by all splits."""
    k, q = LATENT, preset.n_targets
    world = {
        "W_c": _loadings(rng, q, k),
        "W_p": {m: _loadings(rng, q, k) for m in MODALITIES},
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
    rng: np.random.Generator, preset: Preset, world: dict, m: str, content: np.ndarray, lengths: np.ndarray,
) -> np.ndarray:
    """(n, t, d) float32 frames x_it = A_m' s_i + sqrt(T_i) (A_m' r_it + B_m' u_it + e_it), zero beyond
    the sample's length T_i: content s_i, reading noise r_it (std READING_NOISE[m]), nuisance u_it
    (std NUISANCE_NOISE), feature noise e_it (std FRAME_NOISE). The sqrt(T_i) makes the noise of the
    mean over the sample's frames independent of its length."""
    n, t, d = len(lengths), preset.seq_lens[m], preset.dims[m]
    project = np.concatenate([world["A"][m], world["B"][m]]).astype(np.float32)  # (3k, d)
    signal = (content @ world["A"][m]).astype(np.float32)  # (n, d)
    scale = np.sqrt(lengths).astype(np.float32)
    out = np.empty((n, t, d), dtype=np.float32)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        latent = rng.standard_normal((hi - lo, t, 3 * LATENT), dtype=np.float32)
        latent[..., : 2 * LATENT] *= READING_NOISE[m]
        latent[..., 2 * LATENT:] *= NUISANCE_NOISE
        x = latent @ project
        x += FRAME_NOISE * rng.standard_normal((hi - lo, t, d), dtype=np.float32)
        x *= scale[lo:hi, None, None]
        x += signal[lo:hi, None, :]
        x *= (np.arange(t)[None, :] < lengths[lo:hi, None])[:, :, None]
        out[lo:hi] = x
    return out


def _split(rng: np.random.Generator, preset: Preset, world: dict, n: int, name: str) -> MSASplit:
    q = preset.n_targets
    z = rng.normal(size=(n, q))
    shared = z @ world["W_c"] + SHARED_NOISE * rng.normal(size=(n, LATENT))
    evidence = {m: z + EVIDENCE_NOISE[m] * rng.normal(size=(n, q)) for m in MODALITIES}
    private = {m: evidence[m] @ world["W_p"][m] + PRIVATE_NOISE * rng.normal(size=(n, LATENT)) for m in MODALITIES}
    lengths = _lengths(rng, n, preset)
    feats = {m: _modality_frames(rng, preset, world, m, np.concatenate([shared, private[m]], axis=1), lengths[m])
             for m in MODALITIES}
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


def split_sizes(preset: str, size: float = 1.0, eval_samples: int | None = None) -> dict[str, int]:
    """Samples per split of :func:`make_synthetic` ``(preset, size, eval_samples=...)``, without drawing them."""
    sizes = {}
    for name, n_full in zip(SPLITS, PRESETS[preset].split_sizes):
        n = max(16, int(round(n_full * size)))
        sizes[name] = max(n, eval_samples) if name != "train" and eval_samples else n
    return sizes


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
    sizes = split_sizes(preset, size, eval_samples)
    splits = {name: _split(np.random.default_rng(seq), p, world, sizes[name], name) for name, seq in zip(SPLITS, split_seqs)}
    return MSADataset(
        name=preset, kind=p.dataset_kind,
        splits=splits, source=f"synthetic:{preset}",
        class_names=IEMOCAP_EMOTIONS if preset == "iemocap" else None,
        padding={s: post_padded_sides(sp) for s, sp in splits.items()},
        feature_names=feature_names(p.dims), file_format="synthetic",
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
            "full train / valid / test": " / ".join(map(str, p.split_sizes))})
    return pd.DataFrame(rows).set_index("preset")
