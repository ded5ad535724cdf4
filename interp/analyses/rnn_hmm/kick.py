"""Kick neurons: found from connectivity, as the paper, and ablated against random unit sets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from jaxtyping import Float, Int

from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.model import ablate_units, rollout
from interp.analyses.rnn_hmm.types import KickAblation, KickCandidates, Orbit
from interp.data.rnn_hmm import switch_rate
from interp.methods.dynamics import cluster_populations, kick_neurons, pre_switch_activity

if TYPE_CHECKING:
    from interp.tracing.model import Model

log = logging.getLogger(__name__)


def kick_candidates(
    W_hh: Float[np.ndarray, "d d"],
    H: Float[np.ndarray, "n T d"],
    y: Int[np.ndarray, "n T"],
    reg: Int[np.ndarray, "n T"],
    frequent: list[int],
    k: int,
) -> KickCandidates:
    """Kick neurons of the switches between the two extreme frequent outputs ``a``, ``b``, as the
    paper finds them, from connectivity: the cluster populations (units most active in one
    cluster's states, RT > 8, than in the other's), then for ``a -> b`` the ``k`` units with the
    largest presynaptic weights onto ``b``'s population rows (and the reverse). For comparison,
    the ad-hoc activity ranking (mean activity just before switches)."""
    a, b = frequent[0], frequent[-1]
    Hf, yf, rf = H.reshape(-1, H.shape[-1]), y.reshape(-1), reg.reshape(-1)
    pop_a, pop_b = cluster_populations(H, y, reg == 2, a, b)
    kick_ab, score_ab = kick_neurons(W_hh, pop_b, k)  # drive the state into b's cluster
    kick_ba, score_ba = kick_neurons(W_hh, pop_a, k)

    def mean(mask: np.ndarray) -> np.ndarray:
        return Hf[mask].mean(0) if mask.any() else np.zeros(Hf.shape[1])

    ca, cb = mean((rf == 2) & (yf == a)), mean((rf == 2) & (yf == b))
    act_score, n_switches = pre_switch_activity(H, y, a, b, ca, cb)
    # where the kick neurons fire: mean activity in the source's kick zone vs in its cluster
    zone = {
        f"{a}->{b}": [
            float(mean((rf == 1) & (yf == a))[kick_ab].mean()),
            float(ca[kick_ab].mean()),
        ],
        f"{b}->{a}": [
            float(mean((rf == 1) & (yf == b))[kick_ba].mean()),
            float(cb[kick_ba].mean()),
        ],
    }
    return KickCandidates(
        kick={f"{a}->{b}": kick_ab, f"{b}->{a}": kick_ba},
        activity=np.argsort(-act_score)[:k].tolist(),
        kick_scores={f"{a}->{b}": score_ab, f"{b}->{a}": score_ba},
        act_score=act_score,
        pop_a=pop_a.tolist(),
        pop_b=pop_b.tolist(),
        n_switches=n_switches,
        kick_zone_activity=zone,
    )


def kick_neuron_ablation(
    m: Model,
    orbit: Orbit,
    frequent: list[int],
    config: Config,
    T: int,
    s: int,
    rng: np.random.Generator,
) -> tuple[KickCandidates | None, KickAblation | None]:
    """Kick-neuron candidates and the relative switch-rate change when each set (and random
    triples of active neurons) is zeroed at ``rnn.hook_h`` every step (None with fewer than two
    frequent outputs: no switch to kick)."""
    mod, H_b = m.module, orbit.H_b
    if len(frequent) <= 1:
        return None, None
    kick = kick_candidates(
        mod.W_hh.detach().numpy(), H_b, orbit.y_b, orbit.reg_b, frequent, config.n_kick
    )
    hook_h = m.hook("rnn.hook_h")
    base_y = rollout(m, config.n_ablation, T, s + 8, h_capture=False).outputs
    base_sw = switch_rate(base_y)

    def delta(units: Sequence[int]) -> float:
        edits = {hook_h: ablate_units(units)}
        yy = rollout(m, config.n_ablation, T, s + 8, edits=edits, h_capture=False).outputs
        return (switch_rate(yy) - base_sw) / max(base_sw, 1e-12)

    active = np.where(H_b.reshape(-1, H_b.shape[-1]).mean(0) > 1e-6)[0]
    rand_sets = [
        sorted(rng.choice(active, size=min(config.n_kick, len(active)), replace=False).tolist())
        for _ in range(config.n_random_triples)
    ]
    identity_y = rollout(
        m, config.n_ablation, T, s + 8, edits={hook_h: lambda a: a}, h_capture=False
    ).outputs
    kick_deltas = {d: delta(u) for d, u in kick.kick.items()}
    abl = KickAblation(
        base_switch_rate=base_sw,
        kick_units=kick.kick,
        kick_deltas=kick_deltas,
        kick_delta=max(kick_deltas.values()),  # the weaker of the two groups
        activity_units=kick.activity,
        activity_delta=delta(kick.activity),
        random_units=rand_sets,
        random_deltas=[delta(u) for u in rand_sets],
        identity_edit_changes=int((identity_y != base_y).sum()),
    )
    log.info(
        "kick ablation: %s %s, activity %s %+.3f, random %s",
        kick.kick,
        {d: round(v, 3) for d, v in kick_deltas.items()},
        kick.activity,
        abl.activity_delta,
        np.round(abl.random_deltas, 3).tolist(),
    )
    return kick, abl
