"""Tests for the loss terms in msa_lib.losses (UMDF: mmd, js_divergence; SDUMC: rmse,
rank_n_contrast).

The public functions clamp their results into the mathematically guaranteed range (MMD^2 >= 0,
0 <= JS <= log 2) against round-off. A test of those bounds *through* the clamp could never fail,
so the properties below are checked on the unclamped values (``clamp=False``) and the values
themselves against direct numpy oracles written from the formulas.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from msa_lib.losses import js_divergence, mmd, paired_mmd, rank_n_contrast, rmse

LOG2 = math.log(2.0)


pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------------------------------------
# MMD (UMDF Eq. 1-3)
# ---------------------------------------------------------------------------------------------


def _np_bandwidths(x: np.ndarray, y: np.ndarray, kernel_mul: float, kernel_num: int) -> list[float]:
    """s_i = base * kernel_mul**(i - kernel_num // 2), base = mean sq. distance over distinct pairs."""
    z = np.concatenate([x, y], axis=0)
    total, count = 0.0, 0
    for i in range(len(z)):
        for j in range(len(z)):
            if i != j:
                total += float(np.sum((z[i] - z[j]) ** 2))
                count += 1
    base = total / count
    return [base * kernel_mul ** (i - kernel_num // 2) for i in range(kernel_num)]


def _np_mmd(x: np.ndarray, y: np.ndarray, kernel_mul: float = 2.0, kernel_num: int = 5) -> float:
    """Biased V-statistic of the squared multi-kernel MMD, by explicit double loops."""
    bws = _np_bandwidths(x, y, kernel_mul, kernel_num)

    def k(u: np.ndarray, v: np.ndarray) -> float:
        d2 = float(np.sum((u - v) ** 2))
        return sum(math.exp(-d2 / s) for s in bws)  # kernels summed, not averaged

    def mean_k(a: np.ndarray, b: np.ndarray) -> float:
        return sum(k(a[i], b[j]) for i in range(len(a)) for j in range(len(b))) / (len(a) * len(b))

    return mean_k(x, x) + mean_k(y, y) - 2.0 * mean_k(x, y)


@pytest.mark.parametrize(
    ("n", "m", "dim", "kernel_mul", "kernel_num"),
    [(6, 6, 4, 2.0, 5), (5, 8, 3, 2.0, 5), (7, 4, 2, 1.5, 4), (4, 5, 3, 3.0, 1)],
)
def test_mmd_matches_double_loop_oracle(n: int, m: int, dim: int, kernel_mul: float, kernel_num: int) -> None:
    g = torch.Generator().manual_seed(n * 100 + m * 10 + kernel_num)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = 0.7 * torch.randn(m, dim, generator=g, dtype=torch.float64) + 0.5
    expected = _np_mmd(x.numpy(), y.numpy(), kernel_mul, kernel_num)
    assert expected > 1e-3  # the draws are genuinely different, so the comparison is informative
    got = mmd(x, y, kernel_mul=kernel_mul, kernel_num=kernel_num, clamp=False)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # float32 input gives the same value up to float32 round-off
    got32 = mmd(x.float(), y.float(), kernel_mul=kernel_mul, kernel_num=kernel_num, clamp=False)
    assert got32.item() == pytest.approx(expected, abs=1e-5)


def _np_paired_mmd(x: np.ndarray, y: np.ndarray, kernel_mul: float = 2.0, kernel_num: int = 5) -> float:
    """(1/n) sum_i [k(x_i, x_i) + k(y_i, y_i) - 2 k(x_i, y_i)], by an explicit loop."""
    bws = _np_bandwidths(x, y, kernel_mul, kernel_num)

    def k(u: np.ndarray, v: np.ndarray) -> float:
        d2 = float(np.sum((u - v) ** 2))
        return sum(math.exp(-d2 / s) for s in bws)

    return sum(k(x[i], x[i]) + k(y[i], y[i]) - 2.0 * k(x[i], y[i]) for i in range(len(x))) / len(x)


@pytest.mark.parametrize(("n", "dim", "kernel_mul", "kernel_num"), [(6, 4, 2.0, 5), (3, 2, 1.5, 4), (5, 3, 3.0, 1)])
def test_paired_mmd_matches_loop_oracle(n: int, dim: int, kernel_mul: float, kernel_num: int) -> None:
    rng = np.random.default_rng(n + dim)
    x, y = rng.normal(size=(n, dim)), rng.normal(size=(n, dim)) + 0.5
    got = paired_mmd(torch.tensor(x), torch.tensor(y), kernel_mul, kernel_num)
    assert float(got) == pytest.approx(_np_paired_mmd(x, y, kernel_mul, kernel_num), rel=1e-10)


def test_paired_mmd_sees_pairs_that_batch_mmd_does_not() -> None:
    """Shuffling y's rows leaves the batch MMD unchanged but breaks every pair."""
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = x[torch.roll(torch.arange(8), 1)]
    assert float(mmd(x, y)) == pytest.approx(0.0, abs=1e-12)
    assert float(paired_mmd(x, x)) == 0.0
    assert float(paired_mmd(x, y)) > 0.5


def test_paired_mmd_needs_equal_rows() -> None:
    with pytest.raises(ValueError, match="same n"):
        paired_mmd(torch.zeros(3, 2), torch.zeros(4, 2))


def test_mmd_unclamped_is_nonnegative_on_random_draws() -> None:
    # A squared RKHS norm: >= 0 up to round-off for any samples (checked without the clamp).
    g = torch.Generator().manual_seed(0)
    for draw in range(60):
        n = 2 + draw % 6
        m = 2 + (draw * 5) % 7
        dim = 1 + draw % 4
        scale = 10.0 ** ((draw % 5) - 2)  # 0.01 .. 100
        x = scale * torch.randn(n, dim, generator=g)
        y = scale * (torch.randn(m, dim, generator=g) * (1 + draw % 3) + 0.3 * (draw % 4))
        value = mmd(x, y, kernel_mul=1.0 + 0.5 * (draw % 3), kernel_num=1 + draw % 5, clamp=False)
        assert torch.isfinite(value)
        assert value.item() >= -1e-6, (draw, value.item())


def test_mmd_is_exactly_zero_for_identical_samples() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 5, generator=g)
    assert mmd(x, x.clone(), clamp=False).item() == 0.0
    same = torch.ones(8, 5)  # all points identical: zero base bandwidth must not give NaN
    value = mmd(same, same.clone(), clamp=False)
    assert torch.isfinite(value) and value.item() == 0.0


def test_mmd_grows_when_one_sample_is_shifted() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 5, generator=g)
    values = [mmd(x, x + shift, clamp=False).item() for shift in (0.0, 0.25, 1.0, 3.0)]
    assert values[0] == 0.0
    assert values[1] > 1e-4
    assert values[0] < values[1] < values[2] < values[3]


def _torch_mmd_fixed_bandwidth(x: torch.Tensor, y: torch.Tensor, bws: list[float]) -> torch.Tensor:
    """V-statistic with the bandwidths given as plain constants (no path through them)."""

    def mean_k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(torch.exp(-d2 / s) for s in bws).mean()

    return mean_k(x, x) + mean_k(y, y) - 2.0 * mean_k(x, y)


def test_mmd_gradient_flows_to_both_samples_but_not_through_the_bandwidth() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = (torch.randn(6, 3, generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
    mmd(x, y, clamp=False).backward()
    assert x.grad is not None and y.grad is not None
    assert x.grad.abs().max() > 1e-3 and y.grad.abs().max() > 1e-3

    # Reference: same estimate with the bandwidths frozen as constants -> identical gradient.
    bws = _np_bandwidths(x.detach().numpy(), y.detach().numpy(), 2.0, 5)
    xr, yr = x.detach().clone().requires_grad_(True), y.detach().clone().requires_grad_(True)
    _torch_mmd_fixed_bandwidth(xr, yr, bws).backward()
    assert torch.allclose(x.grad, xr.grad, rtol=1e-7, atol=1e-9)
    assert torch.allclose(y.grad, yr.grad, rtol=1e-7, atol=1e-9)

    # ... and it is not the full derivative: a central difference of the function, which does see
    # the bandwidth's dependence on x, disagrees (so the comparison above has teeth).
    eps = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            xp, xm = x.detach().clone(), x.detach().clone()
            xp[idx] += eps
            xm[idx] -= eps
            fd[idx] = (mmd(xp, y, clamp=False) - mmd(xm, y, clamp=False)) / (2 * eps)
    assert (fd - x.grad).abs().max() > 1e-4


def test_mmd_gradient_is_finite_for_identical_points() -> None:
    x = torch.ones(4, 3, requires_grad=True)
    mmd(x, torch.ones(4, 3), clamp=False).backward()
    assert torch.isfinite(x.grad).all()


def test_mmd_public_value_is_the_clamped_one() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(5, 3, generator=g), torch.randn(7, 3, generator=g) + 1.0
    raw = mmd(x, y, clamp=False)
    assert raw.item() > 1e-3
    assert mmd(x, y).item() == raw.item()
    assert mmd(x, x.clone()).item() == 0.0
    # The same sample in another order: MMD^2 is 0 mathematically, but round-off can leave the raw
    # value slightly below 0; ``clamp=False`` must expose that and the default must clamp it.
    raws = []
    for seed in range(40):
        gs = torch.Generator().manual_seed(seed)
        a = torch.randn(6, 3, generator=gs)
        b = a[torch.randperm(6, generator=gs)]
        raw_ab = mmd(a, b, clamp=False).item()
        assert abs(raw_ab) <= 1e-5
        assert mmd(a, b).item() == max(raw_ab, 0.0)
        raws.append(raw_ab)
    assert min(raws) < 0.0


@pytest.mark.parametrize(
    ("x_shape", "y_shape"),
    [((4, 3), (4, 2)), ((4, 3), (3,)), ((0, 3), (4, 3)), ((2, 4, 3), (4, 3))],
)
def test_mmd_shape_errors_name_the_shapes(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    pattern = re.escape(str(tuple(x_shape))) + ".*" + re.escape(str(tuple(y_shape)))
    with pytest.raises(ValueError, match=pattern):
        mmd(torch.zeros(x_shape), torch.zeros(y_shape))


def test_mmd_rejects_bad_kernel_settings() -> None:
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="kernel_num"):
        mmd(x, x, kernel_num=0)
    with pytest.raises(ValueError, match="kernel_mul"):
        mmd(x, x, kernel_mul=0.0)


# ---------------------------------------------------------------------------------------------
# Jensen-Shannon divergence (UMDF Eq. 4-5)
# ---------------------------------------------------------------------------------------------


def _np_js(logits_p: np.ndarray, logits_q: np.ndarray) -> float:
    """0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2, natural log, averaged over leading dims."""

    def softmax(a: np.ndarray) -> np.ndarray:
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # sum_k a_k log(a_k / b_k) with the convention 0 log 0 = 0 (softmax can underflow to 0)
        safe_a, safe_b = np.where(a > 0, a, 1.0), np.where(a > 0, b, 1.0)
        return np.sum(np.where(a > 0, a * np.log(safe_a / safe_b), 0.0), axis=-1)

    p, q = softmax(logits_p.astype(np.float64)), softmax(logits_q.astype(np.float64))
    m = 0.5 * (p + q)
    kl_pm, kl_qm = kl(p, m), kl(q, m)
    return float(np.mean(0.5 * kl_pm + 0.5 * kl_qm))


@pytest.mark.parametrize("shape", [(6, 4, 2), (5, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_js_matches_numpy_oracle(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(len(shape))
    for scale in (0.5, 2.0, 5.0):
        p = scale * torch.randn(*shape, generator=g, dtype=dtype)
        q = scale * torch.randn(*shape, generator=g, dtype=dtype)
        expected = _np_js(p.numpy(), q.numpy())
        assert expected > 1e-3
        assert js_divergence(p, q, clamp=False).item() == pytest.approx(expected, abs=1e-6)


def test_js_is_symmetric_and_zero_for_equal_inputs() -> None:
    g = torch.Generator().manual_seed(5)
    for shape in ((6, 4, 2), (5, 3)):
        p = 3.0 * torch.randn(*shape, generator=g)
        q = 3.0 * torch.randn(*shape, generator=g)
        pq, qp = js_divergence(p, q, clamp=False), js_divergence(q, p, clamp=False)
        assert pq.item() > 1e-3
        assert pq.item() == pytest.approx(qp.item(), abs=1e-7)
        assert abs(js_divergence(p, p.clone(), clamp=False).item()) <= 1e-7
        # softmax is shift-invariant: equal distributions from different logits also give 0
        assert abs(js_divergence(p, p + 7.0, clamp=False).item()) <= 1e-6


def test_js_unclamped_is_bounded_by_log2_for_extreme_logits() -> None:
    g = torch.Generator().manual_seed(6)
    for draw in range(20):
        shape = (8, 4, 2) if draw % 2 else (8, 3)
        signs_p = torch.randint(0, 2, shape, generator=g) * 2 - 1
        signs_q = torch.randint(0, 2, shape, generator=g) * 2 - 1
        for p, q in (
            (50.0 * signs_p, 50.0 * signs_q),
            (torch.rand(shape, generator=g) * 100 - 50, torch.rand(shape, generator=g) * 100 - 50),
        ):
            value = js_divergence(p.float(), q.float(), clamp=False)
            assert torch.isfinite(value)
            assert -1e-7 <= value.item() <= LOG2 + 1e-6, (draw, value.item())


@pytest.mark.parametrize("big", [50.0, 1e4])
def test_js_reaches_log2_for_opposite_one_hot_distributions(big: float) -> None:
    binary_p = torch.tensor([[big, -big], [-big, big]])
    three_p = torch.tensor([[big, -big, -big], [-big, -big, big]])
    three_q = torch.tensor([[-big, big, -big], [big, -big, -big]])
    for p, q in ((binary_p, binary_p.flip(-1)), (three_p, three_q)):
        value = js_divergence(p, q, clamp=False)
        assert torch.isfinite(value)
        assert value.item() == pytest.approx(LOG2, abs=1e-6)
        assert value.item() <= LOG2 + 1e-6


def test_js_is_stable_for_huge_logits() -> None:
    p = torch.tensor([[1e4, -1e4, 0.0], [3e3, 1e4, -1e4]], requires_grad=True)
    q = torch.tensor([[-1e4, 1e4, 5e3], [1e4, 1e4, -1e4]])
    value = js_divergence(p, q, clamp=False)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(_np_js(p.detach().numpy(), q.numpy()), abs=1e-6)
    value.backward()
    assert torch.isfinite(p.grad).all()
    assert js_divergence(p.detach(), p.detach().clone(), clamp=False).item() == 0.0


def test_js_public_value_is_the_clamped_one() -> None:
    g = torch.Generator().manual_seed(7)
    p, q = torch.randn(6, 4, 2, generator=g), torch.randn(6, 4, 2, generator=g)
    raw = js_divergence(p, q, clamp=False)
    assert 1e-4 < raw.item() < LOG2
    assert js_divergence(p, q).item() == raw.item()
    # Equal distributions from shifted logits: JS is 0 mathematically, but round-off can leave the
    # raw value slightly below 0; ``clamp=False`` must expose that and the default must clamp it.
    raws = []
    for seed in range(40):
        gs = torch.Generator().manual_seed(seed)
        a = 3.0 * torch.randn(4, 3, generator=gs)
        b = a + 5.0 * torch.randn(4, 1, generator=gs)
        raw_ab = js_divergence(a, b, clamp=False).item()
        assert abs(raw_ab) <= 1e-6
        assert js_divergence(a, b).item() == max(raw_ab, 0.0)
        raws.append(raw_ab)
    assert min(raws) < 0.0


@pytest.mark.parametrize(
    ("p_shape", "q_shape"), [((6, 4, 2), (6, 2)), ((6, 3), (6, 4)), ((), ()), ((4, 0), (4, 0))]
)
def test_js_shape_errors_name_the_shapes(p_shape: tuple[int, ...], q_shape: tuple[int, ...]) -> None:
    pattern = re.escape(str(tuple(p_shape))) + ".*" + re.escape(str(tuple(q_shape)))
    with pytest.raises(ValueError, match=pattern):
        js_divergence(torch.zeros(p_shape), torch.zeros(q_shape))


# ---------------------------------------------------------------------------------------------
# RMSE (SDUMC Eq. 9-10)
# ---------------------------------------------------------------------------------------------


def test_rmse_matches_hand_computation() -> None:
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    # squared differences 0, 4, 9, 0 -> mean 13 / 4
    assert rmse(a, b).item() == pytest.approx(math.sqrt(13.0 / 4.0 + 1e-8), rel=1e-12)
    assert rmse(a, b, eps=0.0).item() == pytest.approx(math.sqrt(3.25), rel=1e-12)
    assert rmse(a, a.clone()).item() == pytest.approx(1e-4, rel=1e-12)  # sqrt(eps)


def test_rmse_gradient_is_finite_at_equal_inputs() -> None:
    a = torch.randn(4, 3, generator=torch.Generator().manual_seed(8), requires_grad=True)
    rmse(a, a.detach().clone()).backward()
    assert torch.isfinite(a.grad).all() and (a.grad == 0).all()
    # without eps the derivative of sqrt at 0 is not finite: the eps is what the test above relies on
    b = a.detach().clone().requires_grad_(True)
    rmse(b, b.detach().clone(), eps=0.0).backward()
    assert not torch.isfinite(b.grad).all()


def test_rmse_shape_error_names_the_shapes() -> None:
    with pytest.raises(ValueError, match=re.escape("(4, 3)") + ".*" + re.escape("(4, 1)")):
        rmse(torch.zeros(4, 3), torch.zeros(4, 1))


# ---------------------------------------------------------------------------------------------
# Rank-N-Contrast (SDUMC Eq. 11-12)
# ---------------------------------------------------------------------------------------------


def _loop_rank_n_contrast(features: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """SDUMC Eq. 11-12 by a plain triple loop over anchor i, positive j and k in S_ij."""
    m = len(features)

    def logit(i: int, j: int) -> float:
        return -math.sqrt(float(np.sum((features[i] - features[j]) ** 2))) / temperature

    total = 0.0
    for i in range(m):
        l_i = 0.0
        for j in range(m):
            if j == i:
                continue
            d_ij = abs(float(labels[i]) - float(labels[j]))
            s_ij = [logit(i, k) for k in range(m) if k != i and abs(float(labels[i]) - float(labels[k])) >= d_ij]
            top = max(s_ij)  # log-sum-exp shifted by the max, so large distances do not underflow
            l_i += logit(i, j) - (top + math.log(sum(math.exp(v - top) for v in s_ij)))
        total += -l_i / (m - 1)
    return total / m


def _rnc_inputs(m: int, dim: int, ties: bool, seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    features = scale * torch.randn(m, dim, generator=g, dtype=torch.float64)
    if ties:  # a few discrete values: many equal label distances
        labels = torch.randint(-2, 3, (m,), generator=g).to(torch.float64)
    else:
        labels = 3.0 * torch.rand(m, generator=g, dtype=torch.float64)
    return features, labels


@pytest.mark.parametrize("m", [2, 5, 17])
@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("temperature", [2.0, 0.5])
def test_rank_n_contrast_matches_triple_loop(m: int, ties: bool, temperature: float) -> None:
    features, labels = _rnc_inputs(m, 4, ties, seed=m + 100 * ties)
    if ties and m > 2:
        d = (labels[:, None] - labels[None, :]).abs()
        assert any(len(set(d[i].tolist())) < m for i in range(m))  # some row really has tied distances
    expected = _loop_rank_n_contrast(features.numpy(), labels.numpy(), temperature)
    got = rank_n_contrast(features, labels, temperature=temperature)
    assert got.item() == pytest.approx(expected, abs=1e-5)
    got32 = rank_n_contrast(features.float(), labels.float(), temperature=temperature)
    assert got32.item() == pytest.approx(expected, abs=1e-4)


def test_rank_n_contrast_ties_change_the_value() -> None:
    """Ties matter: breaking them (a tiny jitter on the labels) changes S_ij and the loss, so the
    oracle comparison above does check the tie rule (all k with d_ik >= d_ij)."""
    features, labels = _rnc_inputs(9, 3, ties=True, seed=11)
    jitter = 1e-6 * torch.arange(9, dtype=torch.float64)
    tied, untied = rank_n_contrast(features, labels), rank_n_contrast(features, labels + jitter)
    assert abs(tied.item() - untied.item()) > 1e-3
    assert untied.item() == pytest.approx(
        _loop_rank_n_contrast(features.numpy(), (labels + jitter).numpy(), 2.0), abs=1e-6)


def test_rank_n_contrast_is_stable_for_far_apart_features() -> None:
    """exp(sim / t) underflows to 0 at distances ~1e4; the loss stays finite and exact (log space)."""
    features, labels = _rnc_inputs(7, 3, ties=True, seed=12, scale=1e4)
    features = features.float().requires_grad_(True)
    value = rank_n_contrast(features, labels.float())
    assert torch.isfinite(value)
    expected = _loop_rank_n_contrast(features.detach().double().numpy(), labels.numpy(), 2.0)
    assert expected > 10.0  # far in the underflow regime of a naive exp / log
    assert value.item() == pytest.approx(expected, rel=1e-4)
    value.backward()
    assert torch.isfinite(features.grad).all()


def test_rank_n_contrast_gradient_matches_finite_differences() -> None:
    features, labels = _rnc_inputs(6, 3, ties=True, seed=13)
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: rank_n_contrast(f, labels), (features,))


def test_rank_n_contrast_is_invariant_to_permuting_the_batch() -> None:
    features, labels = _rnc_inputs(17, 5, ties=True, seed=14)
    value = rank_n_contrast(features, labels).item()
    g = torch.Generator().manual_seed(15)
    for _ in range(5):
        perm = torch.randperm(17, generator=g)
        assert rank_n_contrast(features[perm], labels[perm]).item() == pytest.approx(value, abs=1e-12)
    # permuting the labels alone does change the loss (so the check above is informative)
    assert abs(rank_n_contrast(features, labels[perm]).item() - value) > 1e-3


def test_rank_n_contrast_gradient_is_finite_for_duplicated_rows() -> None:
    for dtype in (torch.float32, torch.float64):
        features, labels = _rnc_inputs(6, 4, ties=False, seed=16)
        features = features.to(dtype)
        features[1] = features[0]  # distance 0 between rows 0 and 1
        features[4] = features[0]
        features.requires_grad_(True)
        value = rank_n_contrast(features, labels.to(dtype))
        assert torch.isfinite(value)
        value.backward()
        assert torch.isfinite(features.grad).all()
        assert features.grad.abs().max() > 1e-3
        # every row identical: all distances 0
        same = torch.ones(5, 3, dtype=dtype, requires_grad=True)
        rank_n_contrast(same, torch.arange(5, dtype=dtype)).backward()
        assert torch.isfinite(same.grad).all()


class _LargestOutput(TorchDispatchMode):
    """Records the largest numel of any tensor output of any op dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor):
                self.largest = max(self.largest, leaf.numel())
        return out


def test_rank_n_contrast_memory_is_quadratic() -> None:
    m, dim = 96 * 2, 64  # SDUMC: M = 2N, N = 96
    bound = 4 * m * m  # far below M^3 = 48 M^2
    features, labels = _rnc_inputs(m, dim, ties=True, seed=17)
    features = features.float().requires_grad_(True)
    with _LargestOutput() as forward:
        value = rank_n_contrast(features, labels.float())
    with _LargestOutput() as backward:
        value.backward()
    assert forward.ops > 0 and backward.ops > 0  # the mode does see the backward pass
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert forward.largest <= bound, forward.largest
    assert backward.largest <= bound, backward.largest
    # The same mode does catch an M^3 tensor: a naive broadcast of the S_ij masks.
    with _LargestOutput() as naive:
        d = (labels[:, None] - labels[None, :]).abs()
        masks = d[:, None, :] >= d[:, :, None]  # (M, M, M): [i, j, k] = k in S_ij
    assert masks.numel() == m ** 3
    assert naive.largest > bound


@pytest.mark.parametrize(
    ("f_shape", "y_shape"),
    [((1, 4), (1,)), ((0, 4), (0,)), ((5, 4), (5, 1)), ((5, 4), (4,)), ((5,), (5,)), ((2, 5, 4), (2,))],
)
def test_rank_n_contrast_shape_errors_name_the_shapes(f_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    pattern = re.escape(str(tuple(f_shape))) + ".*" + re.escape(str(tuple(y_shape)))
    with pytest.raises(ValueError, match=pattern):
        rank_n_contrast(torch.zeros(f_shape), torch.zeros(y_shape))


def test_rank_n_contrast_rejects_nonpositive_temperature() -> None:
    with pytest.raises(ValueError, match="temperature"):
        rank_n_contrast(torch.randn(3, 2), torch.zeros(3), temperature=0.0)
