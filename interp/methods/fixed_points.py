"""Fixed and slow points of any recurrent map ``h -> F(h, x)`` (not an analysis of its own).

:func:`find_fixed_points` minimises the speed ``q(h) = 0.5 ||F(h, x) - h||^2`` from many
initial states at once (one batched Adam optimisation: its per-coordinate step sizes
adapt per point; the learning rate decays exponentially), checks convergence on the
device with one host sync per ``check_every`` iterations, polishes the minima with a
few batched Newton steps (accepted per point only where they lower ``q``), removes
non-finite points and outliers far from the initial states, deduplicates within a
tolerance, then computes batched Jacobians
(``torch.func.vmap(jacrev)``) and eigenvalues of the unique points only, and labels their
stability (discrete-time map: ``|lambda| < 1`` stable)::

    fps = find_fixed_points(lambda h, x: model.cell(h, x), h0)   # h0: [n, d]
    fps.points, fps.q, fps.eigenvalues, fps.stability, fps.counts
    fps[fps.is_fixed]; fps.save("fps.npz"); FixedPoints.load("fps.npz")

``F`` takes a batch ``h`` [n, d] (and ``x``: None, one input [d_in] for every point, or a
batch [n, d_in]) and returns [n, d].
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

CellFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def speed(F: CellFn, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """``q(h) = 0.5 ||F(h, x) - h||^2`` per row of ``h`` [n, d] -> [n]."""
    return 0.5 * (F(h, x) - h).pow(2).sum(-1)


def jacobians(F: CellFn, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """Batched Jacobians ``dF/dh`` at each row of ``h`` [n, d] -> [n, d, d] (vmap of jacrev)."""
    from torch.func import jacrev, vmap

    if x is None or x.ndim == 1:

        def f(hi: torch.Tensor) -> torch.Tensor:
            return F(hi[None], None if x is None else x[None])[0]

        jac: torch.Tensor = vmap(jacrev(f))(h)
        return jac

    def fx(hi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return F(hi[None], xi[None])[0]

    jac_x: torch.Tensor = vmap(jacrev(fx))(h, x)
    return jac_x


def eigenvalues_by_modulus(J: torch.Tensor) -> np.ndarray:
    """Eigenvalues ``[n, d]`` (complex, float64) of Jacobians ``J [n, d, d]``, by decreasing
    modulus."""
    ev = torch.linalg.eigvals(J.detach().double()).cpu().numpy()
    return np.take_along_axis(ev, np.argsort(-np.abs(ev), axis=1), axis=1)


def stability_labels(eigenvalues: np.ndarray, eps: float = 1e-6) -> list[str]:
    """Discrete-time map labels from eigenvalues [n, d]: ``stable`` (all |l| < 1), ``unstable``
    (all |l| > 1), ``saddle`` (some above, some below), ``marginal`` (largest |l| = 1 +- eps)."""
    out = []
    for ev in np.abs(np.atleast_2d(eigenvalues)):
        hi = ev.max() if ev.size else 0.0
        if abs(hi - 1) <= eps:
            out.append("marginal")
        elif hi < 1:
            out.append("stable")
        elif ev.min() > 1 + eps:
            out.append("unstable")
        else:
            out.append("saddle")
    return out


@dataclass
class FixedPoints:
    """Unique fixed/slow points with their speed, Jacobian spectra and stability.

    Index it with an int, slice, boolean mask or index array to get a subset."""

    points: np.ndarray  # [n, d]
    q: np.ndarray  # [n] speed at each point
    counts: np.ndarray  # [n] initial states that converged to it
    eigenvalues: np.ndarray  # [n, d] complex, sorted by decreasing modulus
    jacobians: np.ndarray  # [n, d, d] (empty [n, 0, 0] if not computed)
    stability: np.ndarray  # [n] str labels
    fixed_tol: float = 1e-10
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)

    def __repr__(self) -> str:
        kinds = (
            {k: int((self.stability == k).sum()) for k in np.unique(self.stability)}
            if len(self)
            else {}
        )
        return f"FixedPoints(n={len(self)}, fixed={int(self.is_fixed.sum())}, stability={kinds})"

    @property
    def is_fixed(self) -> np.ndarray:
        """True where ``q <= fixed_tol`` (a fixed point, not only a slow point)."""
        return self.q <= self.fixed_tol

    @property
    def max_modulus(self) -> np.ndarray:
        return np.abs(self.eigenvalues).max(-1) if self.eigenvalues.size else np.zeros(len(self))

    def __getitem__(self, idx: Any) -> FixedPoints:
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        idx = np.asarray(idx) if not isinstance(idx, slice) else idx
        return FixedPoints(
            self.points[idx],
            self.q[idx],
            self.counts[idx],
            self.eigenvalues[idx],
            self.jacobians[idx],
            self.stability[idx],
            self.fixed_tol,
            dict(self.meta),
        )

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` file (meta as JSON)."""
        import json

        path = Path(path)
        np.savez(
            path,
            points=self.points,
            q=self.q,
            counts=self.counts,
            eigenvalues=self.eigenvalues,
            jacobians=self.jacobians,
            stability=self.stability.astype(str),
            fixed_tol=np.array(self.fixed_tol),
            meta=np.array(json.dumps(self.meta, default=float)),
        )
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> FixedPoints:
        import json

        path = Path(path)
        if not path.exists() and path.with_name(path.name + ".npz").exists():
            path = path.with_name(path.name + ".npz")
        with np.load(path, allow_pickle=False) as z:
            return cls(
                z["points"],
                z["q"],
                z["counts"],
                z["eigenvalues"],
                z["jacobians"],
                z["stability"].astype(str),
                float(z["fixed_tol"]),
                json.loads(str(z["meta"])),
            )


def _dedup(points: np.ndarray, q: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy clustering (lowest q first): indices of kept points and how many merged into each."""
    order = np.argsort(q)
    pts = torch.from_numpy(points[order])
    d = torch.cdist(pts, pts).numpy() if len(pts) else np.zeros((0, 0))
    assigned = np.full(len(order), -1)
    keep: list[int] = []
    counts: list[int] = []
    for i in range(len(order)):
        if assigned[i] >= 0:
            continue
        members = np.where((d[i] <= tol) & (assigned < 0))[0]
        assigned[members] = len(keep)
        keep.append(order[i])
        counts.append(len(members))
    return np.asarray(keep, dtype=int), np.asarray(counts, dtype=int)


def _adam_descent(
    F: CellFn,
    h0: torch.Tensor,
    x: torch.Tensor | None,
    max_iters: int,
    lr: float,
    lr_final_frac: float,
    check_every: int,
    q_tol: float,
    grad_tol: float,
) -> tuple[torch.Tensor, int, float]:
    """Minimise ``q`` from every row of ``h0`` at once with Adam (exponentially decaying
    learning rate); stop once every ``q <= q_tol`` or ``|grad q| <= grad_tol``. Returns the
    points, the iterations run and the final learning rate."""
    h = h0.clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr, betas=(0.9, 0.9))
    decay = lr_final_frac ** (1.0 / max(1, max_iters))
    it = 0
    for it in range(1, max_iters + 1):
        opt.zero_grad(set_to_none=True)
        q = speed(F, h, x)
        q.sum().backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward unannotated
        if it % check_every == 0:
            with torch.no_grad():
                grad: torch.Tensor = h.grad  # type: ignore[assignment]  # set by backward() above
                done = (q.detach() <= q_tol).all() | (grad.norm(dim=-1).max() <= grad_tol)
            if done.item():  # the one host sync per check
                break
        opt.step()
        opt.param_groups[0]["lr"] *= decay
    return h.detach(), it, float(opt.param_groups[0]["lr"])


def _newton_polish(
    F: CellFn, h: torch.Tensor, x: torch.Tensor | None, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Newton steps on ``F(h) - h = 0``, each accepted per point only where it lowers
    ``q``; returns the points and their ``q``."""
    with torch.no_grad():
        q = speed(F, h, x)
    for _ in range(steps):
        J = jacobians(F, h, x)
        eye = torch.eye(h.shape[1], dtype=h.dtype, device=h.device)
        with torch.no_grad():
            r = F(h, x) - h
            sol = torch.linalg.lstsq(J - eye, -r.unsqueeze(-1)).solution.squeeze(-1)
            cand = h + torch.nan_to_num(sol, nan=0.0, posinf=0.0, neginf=0.0)
            qc = speed(F, cand, x)
            better = torch.isfinite(qc) & (qc < q)
            h = torch.where(better[:, None], cand, h)
            q = torch.where(better, qc, q)
    return h, q


def _checked_start(F: CellFn, h0: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
    """``h0`` detached, after checking the shapes of ``h0``, ``x`` and ``F``'s output."""
    if h0.ndim != 2:
        raise ValueError(f"h0 must be [n_init, d], got shape {tuple(h0.shape)}")
    if x is not None and x.ndim == 2 and x.shape[0] != h0.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but h0 has {h0.shape[0]}")
    h0 = h0.detach()
    with torch.no_grad():
        out = F(h0[:1], None if x is None else (x if x.ndim == 1 else x[:1]))
    if out.shape != h0[:1].shape:
        raise ValueError(f"F must map [n, {h0.shape[1]}] to the same shape, got {tuple(out.shape)}")
    return h0


def _spectra(
    F: CellFn,
    h: torch.Tensor,
    x: torch.Tensor | None,
    idx: np.ndarray,
    compute_jacobians: bool,
    stability_eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues, Jacobians and stability labels at the kept points ``h[idx]`` (empty
    spectra and "unknown" labels without ``compute_jacobians``)."""
    if compute_jacobians and len(idx):
        xi = x if (x is None or x.ndim == 1) else x[torch.as_tensor(idx, device=x.device)]
        J = jacobians(F, h[torch.as_tensor(idx, device=h.device)], xi).detach()
        ev = eigenvalues_by_modulus(J)
        Jn = J.cpu().double().numpy()
    else:
        ev = np.zeros((len(idx), 0), dtype=complex)
        Jn = np.zeros((len(idx), 0, 0))
    labels = np.asarray(
        stability_labels(ev, stability_eps) if ev.size else ["unknown"] * len(idx), dtype=str
    )
    return ev, Jn, labels


def find_fixed_points(
    F: CellFn,
    h0: torch.Tensor,
    x: torch.Tensor | None = None,
    *,
    max_iters: int = 5000,
    lr: float = 1e-2,
    check_every: int = 50,
    fixed_tol: float = 1e-10,
    slow_tol: float = 1e-4,
    newton_steps: int = 10,
    newton_tol: float = 1e-6,
    grad_tol: float = 1e-9,
    lr_final_frac: float = 1e-3,
    dedup_tol: float = 1e-3,
    outlier_scale: float = 10.0,
    compute_jacobians: bool = True,
    stability_eps: float = 1e-6,
) -> FixedPoints:
    """Find fixed points (``q <= fixed_tol``) and slow points (``q <= slow_tol``) of ``F``.

    Args:
        F: batched map ``F(h [n, d], x) -> [n, d]``; must be differentiable in ``h``.
        h0: initial states [n, d] (e.g. states sampled from trajectories, plus noise).
        x: input held constant: None, [d_in] (shared) or [n, d_in] (one per initial state).
        max_iters: Adam iterations at most; the learning rate decays exponentially from
            ``lr`` to ``lr * lr_final_frac`` over them. Stops early once every point has
            ``q <= newton_tol`` (Newton polishing takes over) or ``|grad q| <= grad_tol``.
        check_every: iterations between host syncs (one ``.item()`` per check).
        slow_tol: points whose final ``q`` exceeds it are dropped (not fixed, not slow).
        newton_steps: batched Newton polishing steps after Adam (0 to skip).
        dedup_tol: points closer than this (Euclidean) are one point.
        outlier_scale: drop points farther from the initial states' centroid than this many
            times the initial states' largest distance to it.
    """
    h0 = _checked_start(F, h0, x)
    h, it, final_lr = _adam_descent(
        F, h0, x, max_iters, lr, lr_final_frac, check_every, max(fixed_tol, newton_tol), grad_tol
    )
    h, q = _newton_polish(F, h, x, newton_steps)
    pts = h.cpu().double().numpy()
    qs = q.cpu().double().numpy()
    init = h0.cpu().double().numpy()
    centre = init.mean(0)
    radius = max(np.linalg.norm(init - centre, axis=1).max(), 1e-12)
    finite = np.isfinite(pts).all(1) & np.isfinite(qs)
    outlier = finite & (
        np.linalg.norm(np.where(finite[:, None], pts, 0) - centre, axis=1) > outlier_scale * radius
    )
    slow = finite & ~outlier & (qs <= slow_tol)
    meta = {
        "n_init": int(len(init)),
        "iterations": int(it),
        "n_converged_fixed": int((finite & (qs <= fixed_tol)).sum()),
        "n_slow_or_fixed": int(slow.sum()),
        "n_outliers": int(outlier.sum()),
        "n_nonfinite": int((~finite).sum()),
        "final_lr": final_lr,
    }
    idx = np.where(slow)[0]
    keep, counts = _dedup(pts[idx], qs[idx], dedup_tol)
    idx = idx[keep]
    d = h.shape[1]
    ev, Jn, labels = _spectra(F, h, x, idx, compute_jacobians, stability_eps)
    fps = FixedPoints(pts[idx].reshape(-1, d), qs[idx], counts, ev, Jn, labels, fixed_tol, meta)
    log.info("fixed points: %s (%d iterations)", fps, it)
    return fps


# ------------------------------------------------------------- a check with known answers
@dataclass
class PlantedMap:
    """``F(h) = R tanh(g R^T h)`` with ``R`` a random rotation and gain ``g > 1``.

    In the rotated coordinates ``z = R^T h`` the map is ``z_i -> tanh(g z_i)``, one unit per
    coordinate, so its fixed points are known exactly: every combination of ``{-z*, 0, z*}``
    (``z* = tanh(g z*)``, a scalar root), ``3^d`` points. The Jacobian at a point is
    ``R diag(g sech^2(g z)) R^T``: eigenvalue ``g > 1`` at ``z_i = 0``, ``g (1 - z*^2) < 1`` at
    ``+-z*``; the origin is unstable, the ``2^d`` corners stable, the rest saddles."""

    F: CellFn
    rotation: np.ndarray  # [d, d]
    gain: float
    points: np.ndarray  # [3^d, d]
    eigenvalues: np.ndarray  # [3^d, d], sorted by decreasing modulus
    stability: list[str]


def planted_tanh_map(d: int = 3, gain: float = 2.0, seed: int = 0) -> PlantedMap:
    """The map of :class:`PlantedMap` in ``d`` dimensions (float64), with its fixed points."""
    import itertools

    from scipy.optimize import brentq

    if gain <= 1:
        raise ValueError(f"gain must exceed 1 for three fixed points per coordinate, got {gain}")
    rng = np.random.default_rng(seed)
    R, _ = np.linalg.qr(rng.standard_normal((d, d)))
    z_star = brentq(lambda z: np.tanh(gain * z) - z, 1e-3, 1.0, xtol=1e-15)
    Z = np.array(
        list(itertools.product((-z_star, 0.0, z_star), repeat=d))
    )  # [3^d, d] rotated coordinates
    lam = gain / np.cosh(gain * Z) ** 2  # [3^d, d] eigenvalues (the Jacobian is symmetric)
    ev = -np.sort(-lam, axis=1).astype(complex)
    Rt = torch.from_numpy(R)

    def F(h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        R_ = Rt.to(h.device, h.dtype)
        return torch.tanh(gain * (h @ R_)) @ R_.T

    return PlantedMap(F, R, float(gain), Z @ R.T, ev, stability_labels(ev))


def finder_recovery(
    F: CellFn,
    planted: PlantedMap,
    finder: Callable[..., FixedPoints] | None = None,
    *,
    n_init: int | None = None,
    seed: int = 0,
    **finder_kw: Any,
) -> dict[str, Any]:
    """Run ``finder`` (default :func:`find_fixed_points`) on ``F`` and compare its fixed points
    with ``planted``'s known ones.

    ``F`` is normally ``planted.F``; passing another map (or a broken finder) must make the
    errors large, which is what lets a sanity criterion built on this fail. Initial states
    are uniform in the cube ``[-1.3, 1.3]^d`` of the rotated coordinates (every basin of the
    speed ``q`` is hit). Returns ``point_error`` (Hausdorff distance between the reported
    fixed points and the known ones; inf if none is reported), ``eig_error`` (max
    |eigenvalue - known| at matched points), ``label_mismatches``, ``n_found``, ``n_known``."""
    finder = find_fixed_points if finder is None else finder
    d = planted.points.shape[1]
    n_init = 32 * len(planted.points) if n_init is None else int(n_init)
    g = torch.Generator().manual_seed(seed)
    z0 = 2.6 * torch.rand(n_init, d, generator=g, dtype=torch.float64) - 1.3
    h0 = z0 @ torch.from_numpy(planted.rotation).T
    fps = finder(F, h0, None, **finder_kw)
    found = fps[fps.is_fixed] if len(fps) else fps
    known = planted.points
    if len(found) == 0:
        return {
            "point_error": float("inf"),
            "eig_error": float("inf"),
            "label_mismatches": len(known),
            "n_found": 0,
            "n_known": len(known),
        }
    dist = np.linalg.norm(found.points[:, None] - known[None], axis=-1)  # [n_found, n_known]
    point_error = float(max(dist.min(1).max(), dist.min(0).max()))
    match = dist.argmin(1)  # the known point nearest each found one
    if found.eigenvalues.shape[1] == d:
        eig_error = float(np.abs(found.eigenvalues - planted.eigenvalues[match]).max())
    else:
        eig_error = float("inf")
    labels = [planted.stability[j] for j in match]
    mismatches = (
        int(sum(a != b for a, b in zip(found.stability, labels, strict=True)))
        + len(known)
        - len(set(match.tolist()))
    )
    return {
        "point_error": point_error,
        "eig_error": eig_error,
        "label_mismatches": mismatches,
        "n_found": len(found),
        "n_known": len(known),
    }
