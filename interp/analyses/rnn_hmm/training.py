"""Other trainings and training snapshots: does each model meet the fidelity tolerances, and
how the orbit measures evolve over training."""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

import interp
from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.model import BURN, check_model, jacobian_spectra, rollout
from interp.analyses.rnn_hmm.orbit import state_residency
from interp.analyses.rnn_hmm.types import Emission, SeedRow, SnapshotRow
from interp.data.rnn_hmm import Fidelity, fidelity
from interp.methods.dynamics import orbit_geometry, trajectory_growth
from interp.models.recipes.rnn_hmm import HMMRecipe, load_snapshots

if TYPE_CHECKING:
    from interp.models.hmm_rnn import HMMRNN
    from interp.tracing.model import Model

log = logging.getLogger(__name__)


def seed_fidelity(config: Config, em: Emission, K: int, T: int, s: int) -> list[SeedRow]:
    """Whether each trained model (the analysed one and ``seed_models``) meets the tolerances."""
    rows = []
    for i, name in enumerate([config.model, *config.seed_models]):
        f: Fidelity
        if i == 0:
            f = em.fid
        else:
            ms = interp.load_model(name, device=config.device)
            check_model(ms)
            f = fidelity(
                rollout(ms, config.n_eval, T, s + 9, h_capture=False).outputs,
                em.hmm_y,
                K,
                config.row_min_count,
                em.frequent,
            )
        ok = (
            f.row_error <= config.row_tol
            and f.switch_error <= config.switch_tol
            and f.freq_error <= config.freq_tol
        )
        rows.append(
            SeedRow(
                model=name,
                trained=bool(ok),
                row_error=f.row_error,
                switch_error=f.switch_error,
                freq_error=f.freq_error,
            )
        )
    return rows


def snapshot_row(
    step: int,
    work: HMMRNN,
    mw: Model,
    hmm_y: torch.Tensor,
    frequent: list[int],
    config: Config,
    K: int,
    T: int,
    s: int,
    gen: torch.Generator,
) -> SnapshotRow:
    """The metrics of the snapshot loaded in ``work`` (wrapped as ``mw``); orbit and Jacobian
    measures NaN when its long noisy runs diverge."""
    fid: dict[str, float] = {}  # at the training length, when those outputs are finite
    short = rollout(mw, config.n_train_eval, T, s + 10, h_capture=False)
    if bool(torch.isfinite(short.logits).all()):
        row_min = min(config.row_min_count, config.n_train_eval // 10)
        fs = fidelity(short.outputs, hmm_y, K, row_min, frequent)
        fid = {
            "freq_error": fs.freq_error,
            "row_error": fs.row_error,
            "switch_error": fs.switch_error,
        }
    long_run = rollout(mw, 4, config.long_T, s + 11)
    Hs2 = long_run.hidden
    grow = trajectory_growth(Hs2[:, BURN:])
    growth = {
        "diverged": grow["diverged"],
        "growth_per_step": grow["growth_per_step"],
        "max_hidden_norm": grow["max_norm"],
    }
    if grow["diverged"]:
        log.warning(
            "training snapshot at step %d diverges on %d-step noisy runs (norm x%.4f a step, "
            "max %.3g): orbit measures skipped",
            step,
            config.long_T,
            grow["growth_per_step"],
            grow["max_norm"],
        )
        return SnapshotRow(step=step, **fid, **growth)
    y2 = long_run.logits.argmax(-1).numpy()
    reg2 = state_residency(work, Hs2[:, BURN:], config, s + 13)[1]
    g2 = orbit_geometry(Hs2.numpy()[:, BURN:], y2[:, BURN:], reg2, frequent)
    sel = torch.randint(0, 4 * (config.long_T - BURN), (100,), generator=gen)
    Hsel = Hs2[:, BURN:].reshape(-1, Hs2.shape[-1])[sel]
    ev2 = jacobian_spectra(work, Hsel, torch.zeros(len(sel), work.hmm_spec.d_input))
    return SnapshotRow(
        step=step,
        **fid,
        pc1=g2["pc1"],
        cluster_purity=g2["cluster_purity"],
        loop_separation=g2["loop_separation"],
        frac_unstable_jacobian=float((np.abs(ev2[:, 0]) > 1).mean()),
        frac_complex_leading=float((np.abs(ev2[:, 0].imag) > 1e-6).mean()),
        **growth,
    )


def over_training(
    mod: HMMRNN,
    rc: HMMRecipe | None,
    hmm_y: torch.Tensor,
    frequent: list[int],
    config: Config,
    K: int,
    T: int,
    s: int,
    gen: torch.Generator,
) -> list[SnapshotRow]:
    """Fidelity, orbit geometry and Jacobian spectra of each snapshot saved during training.

    A snapshot whose long noisy runs diverge (:func:`~interp.methods.dynamics.trajectory_growth`:
    non-finite states, or a mean norm growing faster than ``GROWTH_LIMIT`` a step) is kept as a
    row with ``diverged`` true, its growth rate and largest norm, and NaN for the orbit and
    Jacobian measures, which would describe the blow-up; its fidelity at the training length
    is still measured when those outputs are finite. The run goes on with the next snapshot."""
    if not config.training_metrics or rc is None:
        return []
    snaps = load_snapshots(rc)
    work = copy.deepcopy(mod)
    mw = interp.wrap(work, model_id="snapshot")
    rows = []
    for step in sorted(snaps):
        work.load_state_dict(snaps[step])
        rows.append(snapshot_row(int(step), work, mw, hmm_y, frequent, config, K, T, s, gen))
    return rows
