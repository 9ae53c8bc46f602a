"""Loss terms shared by the models of msa_lib.

Every function returns an unweighted scalar tensor; the trainer applies the weights from its
config. Each function names the paper equation(s) it implements so a reader can grep for them.

UMDF (AAAI 2024): :func:`mmd` and :func:`paired_mmd` (feature distillation, UMDF Eq. 1-3, two
readings of Eq. 3) and :func:`js_divergence`
(logits distillation for classification, UMDF Eq. 4-5).

MITR-DNet (ICASSP 2025): :func:`masked_smooth_l1` (reconstruction at the masked positions only, MITR
Eq. 16) and :func:`simsiam` (symmetric negative cosine with stop-gradient, MITR Eq. 18-19).

SDUMC: :func:`rmse` (RMSE between representations, SDUMC Eq. 9-10) and :func:`rank_n_contrast`
(the Rank-N-Contrast loss of Zha et al., NeurIPS 2023, as SDUMC Eq. 11-12 write it).

DAR (IJCAI 2025): :func:`info_nce` (InfoNCE with positive/negative masks, DAR Eq. 6),
:func:`gaussian_log_likelihood` (the maximum-likelihood fit of the CLUB estimator q_theta) and
:func:`club_upper_bound` (the CLUB mutual-information upper bound of Cheng et al., ICML 2020, DAR
Eq. 8-9).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _pairwise_sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """(n, D), (m, D) -> (n, m) squared Euclidean distances, clamped at 0 against round-off."""
    sq_a = (a * a).sum(dim=1, keepdim=True)  # (n, 1)
    sq_b = (b * b).sum(dim=1, keepdim=True)  # (m, 1)
    return (sq_a + sq_b.transpose(0, 1) - 2.0 * (a @ b.transpose(0, 1))).clamp_min(0.0)


def _check_samples(name: str, x: Tensor, y: Tensor, kernel_mul: float, kernel_num: int) -> None:
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1] or x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(
            f"{name} expects two non-empty 2-D samples x (n, D) and y (m, D) with the same feature "
            f"size D; got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    if kernel_num < 1 or not kernel_mul > 0:
        raise ValueError(f"{name} needs kernel_num >= 1 and kernel_mul > 0; got {kernel_num}, {kernel_mul}")


def _kernel(d_xx: Tensor, d_yy: Tensor, d_xy: Tensor, kernel_mul: float, kernel_num: int):
    """The multi-kernel Gaussian k(d2) = sum_i exp(-d2 / s_i) with the bandwidth ladder of :func:`mmd`
    (centred on the mean squared distance between distinct points of the pooled sample)."""
    n, m = d_xx.shape[0], d_yy.shape[0]
    total = n + m
    # Mean squared distance over the total*(total-1) ordered pairs of distinct pooled points
    # (the diagonal of d_xx / d_yy is ~0 and is not counted in the denominator, as in DAN).
    base = (d_xx.sum() + d_yy.sum() + 2.0 * d_xy.sum()).detach() / float(total * total - total)
    base = base.clamp_min(torch.finfo(base.dtype).eps)
    centre = kernel_num // 2
    bandwidths = [base * (kernel_mul ** (i - centre)) for i in range(kernel_num)]
    return lambda d2: sum(torch.exp(-d2 / bw) for bw in bandwidths)


def mmd(x: Tensor, y: Tensor, kernel_mul: float = 2.0, kernel_num: int = 5, *, clamp: bool = True) -> Tensor:
    """Squared multi-kernel Gaussian Maximum Mean Discrepancy between two samples.

    UMDF Eq. 1-3: ``D_H(p, q) = || E_p[phi(S_a)] - E_q[phi(S_b)] ||_H^2`` estimated on a
    mini-batch as the squared RKHS norm of the difference of the empirical kernel mean embeddings
    (UMDF Eq. 2). Written with kernels that is the *biased V-statistic*

        MMD^2 = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j)

    (Gretton et al. 2012, Eq. 5), which is a squared norm and therefore >= 0 up to floating-point
    round-off; by default the result is clamped at 0 against that round-off (``clamp=False``
    returns the raw estimate, e.g. to test the property itself). The paper calls Eq. 2 "unbiased", but the
    formula it writes is this V-statistic, which is what is implemented here.

    Kernel: bandwidths as in standard multi-kernel MMD (DAN, Long et al. 2015): the sum of
    ``kernel_num`` Gaussian kernels ``exp(-||u - v||^2 / s_i)`` with ``s_i = base * kernel_mul**(i -
    kernel_num // 2)``, i = 0..kernel_num-1, i.e. a geometric ladder of bandwidths centred on
    ``base`` = the mean pairwise squared distance between distinct points of the pooled sample
    ``[x; y]``. ``base`` is detached (a data-dependent heuristic, not something to optimise) and
    floored at the dtype's machine epsilon, so a batch of identical points gives exactly 0 rather
    than NaN. The kernels are summed (not averaged), as in the widely used DAN implementation;
    averaging would only rescale the loss by ``1 / kernel_num``.

    Args:
        x: (n, D) first sample (UMDF: last elements h_a of H_a over the mini-batch).
        y: (m, D) second sample (UMDF: h_b).
        kernel_mul: ratio between consecutive bandwidths (> 0).
        kernel_num: number of Gaussian kernels (>= 1).
        clamp: clamp the result at 0 (default). With ``False`` the unclamped V-statistic is
            returned; it can then be negative only by floating-point round-off.

    Returns:
        scalar tensor, >= 0 when ``clamp`` (else >= 0 up to round-off); exactly 0 when ``x`` and
        ``y`` hold the same values.
    """
    _check_samples("mmd", x, y, kernel_mul, kernel_num)
    # Blockwise distances: when x and y hold the same values, d_xx, d_yy and d_xy are bitwise
    # equal, so the V-statistic below cancels to exactly 0.
    d_xx = _pairwise_sq_dists(x, x)
    d_yy = _pairwise_sq_dists(y, y)
    d_xy = _pairwise_sq_dists(x, y)
    kernel = _kernel(d_xx, d_yy, d_xy, kernel_mul, kernel_num)

    # UMDF Eq. 1: D_H(p, q) = ||E_p[phi(S_a)] - E_q[phi(S_b)]||_H^2, with k = <phi, phi> the kernel.
    # UMDF Eq. 2: its mini-batch estimate ||mean phi(x) - mean phi(y)||^2, expanded with k (the
    # biased V-statistic). UMDF Eq. 3: L_fea averages over the n samples of the mini-batch, which
    # is what the kernel means below already do.
    value = kernel(d_xx).mean() + kernel(d_yy).mean() - 2.0 * kernel(d_xy).mean()
    return value.clamp_min(0.0) if clamp else value


def paired_mmd(x: Tensor, y: Tensor, kernel_mul: float = 2.0, kernel_num: int = 5) -> Tensor:
    """The paired reading of UMDF Eq. 3, L_fea = (1/n) sum_i D(h_a,i, h_b,i): the mean over samples
    of the squared kernel distance between the two views of the same sample,

        D(x_i, y_i) = k(x_i, x_i) + k(y_i, y_i) - 2 k(x_i, y_i) = sum_j 2 (1 - exp(-||x_i - y_i||^2 / s_j)),

    i.e. Eq. 1-2 with each distribution a single point. Same multi-kernel Gaussian and bandwidth
    ladder as :func:`mmd` (so the two readings are on one scale). Unlike :func:`mmd`, it pulls
    each sample's two views together, not only the two batch distributions.

    Args:
        x: (n, D) h_a; y: (n, D) h_b (row i of both is sample i).

    Returns:
        scalar tensor in [0, 2 kernel_num]; 0 exactly when every pair is equal.
    """
    _check_samples("paired_mmd", x, y, kernel_mul, kernel_num)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"paired_mmd pairs rows: x and y need the same n; got {x.shape[0]} and {y.shape[0]}")
    kernel = _kernel(_pairwise_sq_dists(x, x), _pairwise_sq_dists(y, y), _pairwise_sq_dists(x, y),
                     kernel_mul, kernel_num)
    d2 = ((x - y) ** 2).sum(dim=1)  # ||h_a,i - h_b,i||^2
    k_self = kernel(torch.zeros_like(d2))  # k(x, x) = k(y, y) = kernel_num
    return (2.0 * k_self - 2.0 * kernel(d2)).mean()


def js_divergence(logits_p: Tensor, logits_q: Tensor, *, clamp: bool = True) -> Tensor:
    """Jensen-Shannon divergence between the softmax distributions of two logit tensors.

    UMDF Eq. 4-5: ``JS(p || q) = 1/2 KL(p || M) + 1/2 KL(q || M)`` with ``M = (p + q) / 2`` and
    ``KL(p || M) = sum_k p_k (log p_k - log M_k)`` (Eq. 4). The softmax is taken over the last
    dimension; the divergence is summed over it and averaged over all leading dimensions (UMDF
    on IEMOCAP: logits (B, 4, 2) -> one binary JS per sample and emotion, averaged).

    Computed in log space (``log_softmax`` and ``logsumexp`` for ``log M``) so it is stable for
    large logits. It is symmetric, 0 for equal distributions and bounded by ``log 2`` (natural
    log) up to floating-point round-off; by default the result is clamped to [0, log 2] against
    that round-off (``clamp=False`` returns the raw value, e.g. to test the bounds themselves).

    Args:
        logits_p: (..., K) unnormalised logits.
        logits_q: (..., K) unnormalised logits, same shape.
        clamp: clamp the result to [0, log 2] (default). With ``False`` the unclamped value is
            returned; it can leave that range only by floating-point round-off.

    Returns:
        scalar tensor, in [0, log 2] when ``clamp`` (else up to round-off).
    """
    if logits_p.shape != logits_q.shape or logits_p.dim() < 1 or logits_p.shape[-1] < 1:
        raise ValueError(
            "js_divergence expects two logit tensors of the same shape (..., K) with K >= 1; "
            f"got {tuple(logits_p.shape)} and {tuple(logits_q.shape)}"
        )
    log_p = torch.log_softmax(logits_p, dim=-1)
    log_q = torch.log_softmax(logits_q, dim=-1)
    # log M = log((p + q) / 2), stable via logsumexp.
    log_m = torch.logsumexp(torch.stack([log_p, log_q], dim=0), dim=0) - math.log(2.0)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(dim=-1)  # UMDF Eq. 4, KL(p || M)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(dim=-1)  # UMDF Eq. 4, KL(q || M)
    js = 0.5 * (kl_pm + kl_qm)  # UMDF Eq. 5
    value = js.mean()
    return value.clamp(0.0, math.log(2.0)) if clamp else value


def masked_smooth_l1(prediction: Tensor, target: Tensor, missing: Tensor) -> Tensor:
    """Smooth-L1 between ``prediction`` and ``target`` (B, T, D) at the frames where ``missing``
    (B, T) is True, averaged over those frames and the features (MITR Eq. 16: the time mask M_m
    excludes the unmasked positions). No missing frame gives 0 (still part of the graph)."""
    if prediction.shape != target.shape or missing.shape != prediction.shape[:2]:
        raise ValueError(f"masked_smooth_l1 expects prediction and target (B, T, D) and a (B, T) mask; got "
                         f"{tuple(prediction.shape)}, {tuple(target.shape)}, {tuple(missing.shape)}")
    per_frame = F.smooth_l1_loss(prediction, target, reduction="none").mean(dim=-1)
    weight = missing.to(per_frame.dtype)
    return (per_frame * weight).sum() / weight.sum().clamp(min=1.0)


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) = - p·z / (‖p‖ ‖z‖), averaged over the batch (MITR Eq. 19; SimSiam)."""
    return -F.cosine_similarity(p, z, dim=-1).mean()


def simsiam(p1: Tensor, z1: Tensor, p2: Tensor, z2: Tensor) -> Tensor:
    """½ D(p1, sg(z2)) + ½ D(p2, sg(z1)) (MITR Eq. 18): p = f(x) (predictor ∘ projector), z = h(x)
    (projector) of two views; no gradient reaches z1 or z2 through this term."""
    return 0.5 * negative_cosine(p1, z2.detach()) + 0.5 * negative_cosine(p2, z1.detach())


def rmse(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """sqrt(mean((a - b)^2) + eps) over all elements (SDUMC Eq. 9-10: RMSE between two
    representations of the same shape). ``eps`` keeps the gradient finite at ``a == b``, where the
    derivative of sqrt at 0 is infinite (``eps=0`` gives NaN gradients there)."""
    if a.shape != b.shape:
        raise ValueError(f"rmse expects two tensors of the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    return torch.sqrt(((a - b) ** 2).mean() + eps)  # SDUMC Eq. 9-10


def rank_n_contrast(features: Tensor, labels: Tensor, temperature: float = 2.0) -> Tensor:
    """Rank-N-Contrast loss (Zha et al., NeurIPS 2023) as SDUMC Eq. 11-12 write it.

    With sim(r_i, r_j) = -||r_i - r_j||_2, label distance d_ij = |y_i - y_j| and, for an anchor i
    and a j != i, S_ij = {k != i : d_ik >= d_ij} (j itself included):

        L^i = sum_{j != i} log( exp(sim_ij / t) / sum_{k in S_ij} exp(sim_ik / t) )   (SDUMC Eq. 11)
        L   = (1/M) sum_i -L^i / (M - 1)                                            (SDUMC Eq. 12)

    SDUMC takes M = 2N: the representations of both flows of a batch of N samples. The defaults
    follow the official RnC code: temperature 2 and the L1 label distance.

    Vectorised with O(M^2) memory (no M^3 tensor): each anchor's row of the M - 1 off-diagonal
    entries is sorted by label distance, so every denominator is a suffix of the sorted row, taken
    in log space by a reversed ``logcumsumexp``; for tied label distances the suffix starts at the
    first tied position (``searchsorted``, side "left"), so all k with d_ik >= d_ij are included.
    The distance's gradient is finite for identical feature rows (the squared distance is floored
    at the dtype's machine epsilon before the square root).

    Args:
        features: (M, D) representations r_i, M >= 2.
        labels: (M,) regression labels y_i (any float dtype; no gradient flows through them).
        temperature: t > 0.

    Returns:
        scalar tensor, >= 0 (each log-ratio is <= 0 since j is in S_ij).
    """
    if features.dim() != 2 or features.shape[0] < 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            "rank_n_contrast expects features (M, D) with M >= 2 and labels (M,); "
            f"got features {tuple(features.shape)} and labels {tuple(labels.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"rank_n_contrast needs temperature > 0; got {temperature}")
    m = features.shape[0]
    # Distances are translation invariant; centring first loses less to cancellation in the Gram
    # expansion of _pairwise_sq_dists (which, unlike (M, M, D) differences, stays O(M^2)).
    centred = features - features.mean(dim=0, keepdim=True)
    sq = _pairwise_sq_dists(centred, centred).clamp_min(torch.finfo(features.dtype).eps)
    logits = -sq.sqrt() / temperature  # sim(r_i, r_j) / t, sim = -||r_i - r_j||_2
    y = labels.detach()  # its own dtype: only compared, so ties are exact as given
    label_dist = (y[:, None] - y[None, :]).abs()  # d_ij = |y_i - y_j| (L1)

    # Drop the diagonal (k != i, j != i): (M, M - 1) rows, one per anchor.
    off_diag = ~torch.eye(m, dtype=torch.bool, device=features.device)
    logits = logits[off_diag].view(m, m - 1)
    label_dist = label_dist[off_diag].view(m, m - 1)

    # Sort each row by label distance; S_ij is then the suffix from the first position whose
    # distance equals d_ij (ties included), and its log-sum-exp a reversed logcumsumexp.
    dist_sorted, order = label_dist.sort(dim=1)
    logits_sorted = logits.gather(1, order)
    suffix_lse = logits_sorted.flip(1).logcumsumexp(dim=1).flip(1)  # [i, p] = LSE_{q >= p} logit_iq
    first = torch.searchsorted(dist_sorted, dist_sorted, side="left")  # first q with d_iq >= d_ip
    log_ratio = logits_sorted - suffix_lse.gather(1, first)  # SDUMC Eq. 11, one term per (i, j)
    # SDUMC Eq. 12: (1/M) sum_i (-1/(M-1)) L^i = -(mean over the M (M - 1) terms).
    return -log_ratio.mean()


def info_nce(z: Tensor, positive: Tensor, negative: Tensor | None = None, temperature: float = 0.1,
             include_positive: bool = False) -> Tensor:
    """InfoNCE (van den Oord et al. 2018) over masked pairs, as DAR Eq. 6 writes it.

    With s_ij the cosine similarity of z_i and z_j, P the set of positive pairs (i, j), i != j, and
    N(i) the negatives of anchor i:

        L = -(1/|P|) sum_{(i,j) in P} log( exp(s_ij / t) / D_ij ),   D_ij = sum_{k in N(i)} exp(s_ik / t)

    (DAR Eq. 6 literally: negatives only in the denominator, so L can be negative). With
    ``include_positive`` the denominator is ``D_ij + exp(s_ij / t)``, the standard InfoNCE /
    SupCon form (then L >= 0). Computed in log space (``logsumexp``), vectorised with O(M^2)
    memory over the anchors that have at least one positive.

    Args:
        z: (M, D) features.
        positive: (M, M) bool; positive[i, j] marks (z_i, z_j) as a positive pair (diagonal ignored).
        negative: (M, M) bool negatives of each anchor i (diagonal ignored). Default: every j != i
            that is not a positive of i.
        temperature: t > 0.
        include_positive: add exp(s_ij / t) to the denominator (see above).

    Returns:
        scalar tensor, the mean over the positive pairs.

    Raises:
        ValueError: bad shapes or dtypes, t <= 0, no positive pair, or an anchor with a positive
            but no negative (its denominator would be empty; raised with either setting).
    """
    if z.dim() != 2:
        raise ValueError(f"info_nce expects z (M, D); got {tuple(z.shape)}")
    m = z.shape[0]
    for name, mask in (("positive", positive), ("negative", negative)):
        if mask is not None and (mask.shape != (m, m) or mask.dtype != torch.bool):
            raise ValueError(f"info_nce expects {name} to be a ({m}, {m}) bool mask for z {tuple(z.shape)}; "
                             f"got {mask.dtype} {tuple(mask.shape)}")
    if not temperature > 0:
        raise ValueError(f"info_nce needs temperature > 0; got {temperature}")
    off_diag = ~torch.eye(m, dtype=torch.bool, device=z.device)
    pos = positive.to(z.device) & off_diag
    neg = (~pos if negative is None else negative.to(z.device)) & off_diag
    if not pos.any():
        raise ValueError("info_nce needs at least one positive pair (i, j), i != j; the positive mask has none")
    anchors = pos.any(dim=1)
    if not neg[anchors].any(dim=1).all():
        bad = (anchors & ~neg.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"info_nce: anchors {bad} have a positive but no negative (empty denominator)")
    zn = F.normalize(z[anchors], dim=1, eps=1e-8)
    logits = zn @ F.normalize(z, dim=1, eps=1e-8).transpose(0, 1) / temperature  # s_ik / t, anchors only
    pos, neg = pos[anchors], neg[anchors]
    log_denominator = logits.masked_fill(~neg, float("-inf")).logsumexp(dim=1, keepdim=True)  # log D_ij
    if include_positive:
        log_denominator = torch.logaddexp(log_denominator, logits)  # log(D_ij + exp(s_ij / t))
    else:
        log_denominator = log_denominator.expand_as(logits)
    return -(logits - log_denominator)[pos].mean()  # DAR Eq. 6


def _check_gaussian(name: str, mu: Tensor, logvar: Tensor, y: Tensor) -> None:
    if not (mu.shape == logvar.shape == y.shape) or mu.dim() not in (2, 3) or mu.shape[0] == 0:
        raise ValueError(f"{name} expects mu, logvar and y of the same shape (N, D) or (N, T, D) with N >= 1; "
                         f"got {tuple(mu.shape)}, {tuple(logvar.shape)}, {tuple(y.shape)}")


def gaussian_log_likelihood(mu: Tensor, logvar: Tensor, y: Tensor) -> Tensor:
    """Mean log-likelihood of y under N(mu, diag exp(logvar)), the objective the CLUB estimator
    q_theta(y | x) is fitted with by maximum likelihood (DAR Eq. 8-9; its loss is minus this).

    Per sample (and frame): -1/2 sum_d [ (y_d - mu_d)^2 / exp(logvar_d) + logvar_d ], summed over the
    last (feature) dim and averaged over the others. The constant -D/2 log(2 pi) is dropped (it
    changes neither the fit nor :func:`club_upper_bound`).

    Args:
        mu, logvar: (N, D) or (N, T, D) estimator outputs for the x's.
        y: targets, same shape.
    """
    _check_gaussian("gaussian_log_likelihood", mu, logvar, y)
    return (-0.5 * ((y - mu) ** 2 * torch.exp(-logvar) + logvar)).sum(dim=-1).mean()


def club_upper_bound(mu: Tensor, logvar: Tensor, y: Tensor) -> Tensor:
    """The vCLUB mutual-information upper bound (Cheng et al., ICML 2020), DAR Eq. 8-9:

        I_vCLUB = mean_i [ log q(y_i | x_i) - mean_j log q(y_j | x_i) ],  q(y | x_i) = N(mu_i, diag exp(logvar_i))

    with mu, logvar the estimator's outputs for the x's (the log-variance and 2 pi constants cancel).
    The negative term is closed form in O(N): per feature, mean_j (mu_i - y_j)^2 = (mu_i - ybar)^2 +
    var(y) (mean and population variance over the samples j). For (N, T, D) inputs the pairs
    (i, j) run over samples only (frame t of i against frame t of j), then the mean is over the
    frames too. Gradients flow to mu, logvar and y: the main network minimises the bound through
    x and y while q_theta is fitted separately with :func:`gaussian_log_likelihood`.

    Args:
        mu, logvar: (N, D) or (N, T, D) estimator outputs for x.
        y: (N, D) or (N, T, D) paired targets.

    Returns:
        scalar tensor (an estimate: it can be slightly negative when q_theta is not well fitted).
    """
    _check_gaussian("club_upper_bound", mu, logvar, y)
    inv_two_var = 0.5 * torch.exp(-logvar)  # 1 / (2 exp(logvar_i))
    positive = -(mu - y) ** 2 * inv_two_var  # log q(y_i | x_i) + const
    y_mean = y.mean(dim=0, keepdim=True)
    y_var = y.var(dim=0, unbiased=False, keepdim=True)
    negative = -((mu - y_mean) ** 2 + y_var) * inv_two_var  # mean_j log q(y_j | x_i) + const
    return (positive - negative).sum(dim=-1).mean()  # DAR Eq. 8-9
