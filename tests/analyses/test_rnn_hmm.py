"""The rnn_hmm analysis: model, training recipe, measuring parts and end to end on tiny RNNs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analyses import get
from interp.analyses.rnn_hmm import ablate_units, check_model, kick_candidates, orbit_geometry
from interp.data.rnn_hmm import regions, residency
from interp.models.hmm_rnn import HMMRNN, HMMRNNSpec, sinkhorn_loss


def _model(d_hidden=16, d_input=4, seed=0):
    from interp.tracing.model import Model

    spec = HMMRNNSpec(d_hidden=d_hidden, d_input=d_input, init_seed=seed)
    return Model(
        HMMRNN(spec),
        backend="tl",
        kind="rnn",
        model_id=f"hmm_rnn_{d_hidden}",
        spec={"builder": "hmm_rnn", "spec": spec.model_dump()},
        example_input=torch.zeros(1, 3, d_input),
    )


def test_model_hooks_cell_and_outputs():
    import interp
    import interp.models.recipes.rnn_hmm  # noqa: F401  (registers the builder)

    m = _model()
    for name in ("rnn.hook_pre", "rnn.hook_h", "hook_logits"):
        assert name in m.hook_names
    g = torch.Generator().manual_seed(0)
    x = m.module.noise(5, 7, g)
    out, acts = interp.trace(m, x, capture=["rnn.hook_h", "rnn.hook_pre"])
    assert acts["rnn.hook_h"].shape == (5, 7, 16)
    assert torch.allclose(acts["rnn.hook_h"], torch.relu(acts["rnn.hook_pre"]))
    # the cell reproduces the hooked forward step by step
    h = torch.zeros(5, 16)
    for t in range(7):
        h = m.module.cell(h, x[:, t])
        assert torch.allclose(h, acts["rnn.hook_h"][:, t], atol=1e-6)
    y = m.module.sample_outputs(x, generator=g, logits=out)
    assert torch.allclose(y.sum(-1), torch.ones(5, 7)) and set(y.unique().tolist()) <= {0.0, 1.0}
    # straight-through: gradients reach the weights
    y = m.module.sample_outputs(x, generator=g)
    (y * torch.arange(3.0)).sum().backward()
    assert m.module.rnn.W_hh.grad is not None and m.module.rnn.W_hh.grad.abs().sum() > 0
    # zeroing every unit at rnn.hook_h leaves zero logits (no readout bias)
    out0, _ = interp.trace(m, x, edits={"rnn.hook_h": ablate_units(list(range(16)))})
    assert torch.equal(out0, torch.zeros_like(out0))


def test_save_load_roundtrip(tmp_path):
    import interp
    import interp.models.recipes.rnn_hmm  # noqa: F401

    m = _model(d_hidden=8, d_input=3, seed=2)
    m.save(tmp_path / "m")
    back = interp.load_model(str(tmp_path / "m"))
    x = torch.randn(2, 4, 3)
    assert isinstance(back.module, HMMRNN) and torch.allclose(back.module(x), m.module(x))


def test_sinkhorn_loss_is_a_divergence():
    import torch.nn.functional as F

    loss = sinkhorn_loss()
    g = torch.Generator().manual_seed(0)
    a = F.one_hot(torch.randint(0, 3, (64, 10), generator=g), 3).float()
    b = F.one_hot(torch.zeros(64, 10, dtype=torch.long), 3).float()
    assert abs(loss(a, a).item()) < 1e-3
    assert loss(a, b).item() > 1.0


def test_training_recipe_runs_and_keeps_snapshots():
    from interp.models.recipes.rnn_hmm import (
        HMMRecipe,
        load_snapshots,
        snapshot_steps,
        train_hmm_rnn,
    )

    cfg = HMMRecipe(
        name="test-hmm-tiny",
        T=8,
        spec=HMMRNNSpec(d_hidden=8, d_input=3),
        batch_size=32,
        steps=6,
        n_snapshots=3,
    )
    m = train_hmm_rnn(cfg)
    assert m.spec["builder"] == "hmm_rnn" and len(m.train_log) >= 2
    assert all(np.isfinite(e["loss"]) for e in m.train_log)
    assert [e["lr"] for e in m.train_log][-1] < cfg.lr  # decayed in the last third
    snaps = load_snapshots(cfg)
    assert sorted(snaps) == snapshot_steps(cfg) == [1, 3, 5]
    assert torch.equal(snaps[5]["rnn.W_hh"], m.module.rnn.W_hh)


def test_trajectory_growth_tells_a_bounded_orbit_from_a_blow_up():
    from interp.methods.dynamics import pca, trajectory_growth

    rng = np.random.default_rng(0)
    bounded = 5.0 + rng.standard_normal((4, 300, 6))  # stationary noise around a fixed norm
    steps = np.arange(300)[None, :, None]
    slow = bounded * 1.02**steps  # +2% a step: x2.7 over a 50-step training sequence, x4e2 over 300
    ok, grow = trajectory_growth(bounded), trajectory_growth(slow)
    assert not ok["diverged"] and abs(ok["growth_per_step"] - 1) < 1e-3
    assert (
        grow["diverged"]
        and abs(grow["growth_per_step"] - 1.02) < 2e-3
        and np.isfinite(grow["max_norm"])
    )
    over = (
        torch.as_tensor(bounded, dtype=torch.float32)
        * torch.tensor(3.0) ** torch.arange(300.0)[None, :, None]
    )
    inf = trajectory_growth(over)  # float32 overflow: inf, then inf - inf = nan
    assert inf["diverged"] and not inf["finite"] and inf["max_norm"] == float("inf")
    assert not trajectory_growth(np.zeros((2, 10, 3)))["diverged"]  # a dead run is bounded
    with pytest.raises(ValueError, match="not finite"):
        pca(over.reshape(-1, 6).numpy())


def test_a_diverged_training_snapshot_is_reported_and_skipped():
    """A planted snapshot whose noisy runs overflow float32 (W_hh = 3 I) is counted, its orbit
    measures NaN, and the other snapshots are still measured (it used to end the run in
    LinAlgError: SVD did not converge)."""
    from interp.analyses.rnn_hmm import SNAPSHOT_KEYS, Config, over_training
    from interp.data.rnn_hmm import make_hmm, sample
    from interp.models.recipes.rnn_hmm import SNAPSHOT_FILE, HMMRecipe, train_hmm_rnn
    from interp.models.zoo import scratch_dir

    cfg = HMMRecipe(
        name="test-hmm-diverged",
        T=8,
        spec=HMMRNNSpec(d_hidden=8, d_input=3),
        batch_size=32,
        steps=4,
        n_snapshots=2,
    )
    m = train_hmm_rnn(cfg)
    path = scratch_dir(cfg.name, cfg) / SNAPSHOT_FILE
    saved = torch.load(path, weights_only=True)
    blown = {k: v.clone() for k, v in saved["snapshots"][3].items()}
    blown["rnn.W_hh"] = 3.0 * torch.eye(8)
    blown["rnn.W_ih"] = blown["rnn.W_ih"].abs()  # positive drive: every unit active, norm x3 a step
    saved["snapshots"][2] = blown
    torch.save(saved, path)
    hmm = make_hmm("chain", 2)
    hmm_y = sample(hmm, 200, 8, seed=1)[1]
    config = Config(long_T=120, n_train_eval=100, rt_samples=4, row_min_count=20)
    gen = torch.Generator().manual_seed(0)
    rows = over_training(m.module, cfg, hmm_y, [0, 2], config, 3, 8, 0, gen)
    assert [r.step for r in rows] == [1, 2, 3]
    by_step = {r.step: r.as_json() for r in rows}
    bad = by_step[2]
    assert bad["diverged"] and bad["max_hidden_norm"] == float("inf")
    assert all(np.isnan(bad[k]) for k in ("pc1", "cluster_purity", "frac_unstable_jacobian"))
    for good in (by_step[1], by_step[3]):
        assert not good["diverged"] and np.isfinite(good["pc1"]) and np.isfinite(good["freq_error"])
        assert set(SNAPSHOT_KEYS) <= set(good)


def test_a_diverged_model_is_refused_with_a_clear_error():
    from interp.analyses.rnn_hmm import Config, long_orbit
    from interp.fields import ConfigError

    m = _model(d_hidden=8, d_input=3)
    with torch.no_grad():
        m.module.rnn.W_hh.copy_(3.0 * torch.eye(8))
        m.module.rnn.W_ih.abs_()
    with pytest.raises(ConfigError, match="diverge"):
        long_orbit(m, Config(n_long=2, long_T=100), 0, [0, 2])


def _synthetic_orbit(loop: bool, seed=0):
    """Two clusters at (+-3, 0) in a 5-d space; switches pass through (0, +-1) (loop) or (0, 0)
    (line)."""
    rng = np.random.default_rng(seed)
    H, Y = [], []
    for _ in range(40):
        for a, b in ((0, 2), (2, 0)):
            ca, cb = (-3 if a == 0 else 3), (-3 if b == 0 else 3)
            mid = (1.0 if a == 0 else -1.0) if loop else 0.0
            pts = [[ca, 0]] * 12 + [[0.5 * (ca + cb) * 0.3, mid]] + [[cb, 0]] * 12
            labels = [a] * 12 + [b] * 13
            H.append(np.asarray(pts) + 0.1 * rng.standard_normal((25, 2)))
            Y.append(labels)
    H = np.stack(H)
    H = np.concatenate([H, 0.01 * rng.standard_normal(H.shape[:2] + (3,))], -1)
    y = np.asarray(Y)
    return H, y, regions(residency(y))


def test_orbit_geometry_tells_a_loop_from_a_line():
    H, y, reg = _synthetic_orbit(loop=True)
    loop = orbit_geometry(H, y, reg, [0, 2])
    H2, y2, reg2 = _synthetic_orbit(loop=False)
    line = orbit_geometry(H2, y2, reg2, [0, 2])
    assert loop["pc1"] > 0.5 and loop["cluster_purity"] == 1.0
    assert loop["loop_separation"] > 5 and line["loop_separation"] < 1


def test_kick_candidates_find_planted_neurons():
    # units 0-3: population of output 0, units 4-7: population of output 2; unit 8 projects onto
    # population 2's rows (kick 0->2), unit 9 onto population 0's (kick 2->0); 10, 11 bystanders.
    rng = np.random.default_rng(0)
    y = np.array([[0] * 12 + [2] * 12] * 6)
    reg = regions(
        np.where(np.arange(24) % 12 < 10, 20.0, 5.0)[None].repeat(6, 0)
    )  # clusters, then kick zones
    H = np.zeros(y.shape + (12,))
    H[..., :4] = (y == 0)[..., None] * 1.0
    H[..., 4:8] = (y == 2)[..., None] * 1.0
    H[..., 8] = ((reg == 1) & (y == 0)) * 1.0
    H[..., 10:] = 0.5
    H += 0.01 * rng.random(H.shape)
    W = np.zeros((12, 12))
    W[4:8, 8] = 1.0
    W[:4, 9] = 1.0
    out = kick_candidates(W, H, y, reg, [0, 2], 1)
    assert out.kick == {"0->2": [8], "2->0": [9]}
    assert out.kick_zone_activity["0->2"][0] > 0.9 > out.kick_zone_activity["0->2"][1]


def test_models_without_the_needed_hooks_are_refused(tiny_rnn, tmp_path):
    import interp
    from interp.models.rnn import HookedRNN, RNNSpec

    with pytest.raises(ValueError, match="needs a noise-driven RNN"):
        check_model(tiny_rnn)  # has the hooks, no noise input
    gru = interp.wrap(
        HookedRNN(RNNSpec(cell="gru", d_hidden=8, d_input=3, d_out=3)), model_id="gru"
    )
    gru.example_input = torch.zeros(1, 3, 3)
    with pytest.raises(ValueError, match="lacks"):
        check_model(gru)
    plain = interp.wrap(torch.nn.Linear(3, 3), model_id="plain")
    with pytest.raises(ValueError, match="lacks"):
        check_model(plain)
    gm = interp.wrap(HookedRNN(RNNSpec(cell="gru", d_hidden=8, d_input=3, d_out=3)), model_id="gru")
    gm.spec = {"builder": "rnn", "spec": gm.module.spec.model_dump()}
    gm.save(tmp_path / "gru")
    with pytest.raises(ValueError, match="lacks"):
        get("rnn_hmm").run(
            {"model": str(tmp_path / "gru"), "hmm_kind": "chain", "n_states": 2, "T": 5}
        )
    with pytest.raises(ValueError, match="give hmm_kind"):
        get("rnn_hmm").run({"model": str(tmp_path / "gru")})


TINY = dict(
    n_eval=300,
    n_long=4,
    long_T=150,
    n_fixed_init=24,
    fixed_iters=200,
    noise_trials=6,
    n_ablation=150,
    n_random_triples=3,
    row_min_count=50,
    n_train_eval=100,
)


@pytest.mark.slow
@pytest.mark.parametrize("n_states,d_hidden,source", [(2, 16, "dir"), (3, 12, "zoo")])
def test_end_to_end_on_two_tiny_rnns(tmp_path, n_states, d_hidden, source):
    from interp.models import zoo
    from interp.models.recipes.rnn_hmm import HMMRecipe, train_hmm_rnn

    if source == "dir":
        m = _model(d_hidden=d_hidden, d_input=4, seed=n_states)
        m.save(tmp_path / "m")
        cfg = {"model": str(tmp_path / "m"), "hmm_kind": "chain", "n_states": n_states, "T": 20}
    else:
        # a (barely trained) zoo recipe: HMM and T come from the recipe, snapshots give metrics
        # over training
        name = "test-hmm-chain3-tiny"
        zoo.recipe(
            name,
            HMMRecipe(
                name=name,
                n_states=n_states,
                T=20,
                spec=HMMRNNSpec(d_hidden=d_hidden, d_input=4),
                batch_size=32,
                steps=6,
                n_snapshots=2,
            ),
            "test",
        )(train_hmm_rnn)
        cfg = {"model": f"zoo:{name}"}
    r = get("rnn_hmm").run({**cfg, "gate_kick": True, **TINY})
    crit = {c.name: c for c in r.criteria}
    for name in (
        "transition_rows_match",
        "switch_rate_matches",
        "output_frequencies_match",
        "orbit_pc1_over_half",
        "one_cluster_per_frequent_output",
        "switch_paths_form_loop",
        "n_seeds_failed_to_train",
        "kick_ablation_beats_random",
    ):
        assert crit[name].kind == "claim"
    sanity = [c for c in r.criteria if c.kind == "sanity"]
    assert len(sanity) >= 5 and all(c.holds for c in sanity), [c for c in sanity if not c.holds]
    # an untrained RNN does not emulate the HMM: the fidelity claims must be able to fail
    assert not crit["switch_rate_matches"].holds or not crit["output_frequencies_match"].holds
    assert r.metrics["seeds_failed"] == "1/1"
    assert r.metrics["no_input_fixed_points"]["n_fixed"] >= 1
    assert r.metrics["hmm"] == f"chain{n_states}" and r.metrics["T"] == 20
    assert {
        "orbit",
        "transition_matrices",
        "fixed_points",
        "speed",
        "jacobian_spectra",
        "ablation",
    } <= set(r.figures)
    assert r.arrays["orbit_pcs"].shape[1] == 3
    if source == "zoo":
        assert [row["step"] for row in r.metrics["training"]] == [2, 5] and "training" in r.figures
    r.save(tmp_path / "run")


def test_dashboard_panel_reads_a_saved_result():
    from tests.conftest import load_panel

    dashboard = load_panel("rnn_hmm")
    from interp.results import Result

    calls = []

    class St:
        def __getattr__(self, name):
            return lambda *a, **k: calls.append(name)

    r = Result(
        "rnn_hmm",
        metrics={
            "output_frequencies_rnn": [0.5, 0, 0.5],
            "output_frequencies_hmm": [0.5, 0.01, 0.49],
            "kick_ablation": {
                "kick_units": {"0->2": [1, 2, 3]},
                "kick_deltas": {"0->2": -0.5},
                "activity_units": [4, 5, 6],
                "activity_delta": 0.1,
                "random_deltas": [0.1, 0.2],
            },
            "training": [{"step": 1, "row_error": 0.1}],
            "seeds_failed": "0/1",
        },
    )
    dashboard(r, St())
    assert calls.count("subheader") == 3 and "table" in calls and "dataframe" in calls


def test_rollout_and_no_input_steps_return_typed_values_of_the_right_shapes():
    """The steps' dataclasses on a tiny RNN: a rollout's fields, the collapse of no-input runs
    (a contracting W_hh decays to 0) and the kink labels of fixed points."""
    from interp.analyses.rnn_hmm import Rollout, collapse, mark_kinks, rollout
    from interp.methods.fixed_points import FixedPoints

    m = _model(d_hidden=8, d_input=3)
    run = rollout(m, 5, 7, seed=0)
    assert isinstance(run, Rollout) and run.noise.shape == (5, 7, 3)
    assert run.hidden.shape == (5, 7, 8) and run.outputs.shape == (5, 7)
    assert run.logits.shape[:2] == (5, 7)
    assert rollout(m, 5, 7, seed=0, h_capture=False).hidden is None
    with torch.no_grad():
        m.module.rnn.W_hh.copy_(0.5 * torch.eye(8))
    col = collapse(m.module.double(), torch.rand(4, 8, dtype=torch.float64), steps=60)
    assert col.norm < 1e-12 and col.rate == pytest.approx(0.5) and col.radius_all == 0.5
    W = np.eye(2)
    fps = FixedPoints(
        points=np.array([[0.0, 1.0], [1.0, 1.0]]),
        q=np.zeros(2),
        counts=np.ones(2, dtype=int),
        eigenvalues=np.zeros((2, 2), dtype=complex),
        jacobians=np.zeros((2, 0, 0)),
        stability=np.array(["stable", "stable"]),
    )
    assert mark_kinks(fps, W) == [0]  # its first pre-activation is 0: on the ReLU kink
    assert fps.stability.tolist() == ["kink", "stable"]
