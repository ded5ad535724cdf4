"""Hook functions: an edit is checked against the activation it replaces, captures are kept
once or per time step, and a stop ends the forward after its hook."""

from __future__ import annotations

import pytest
import torch

from interp.tracing.hooks import StopForward, checked_edit, make_hook


def test_checked_edit_keeps_none_and_refuses_shape_dtype_and_kind():
    act = torch.zeros(2, 3)
    assert checked_edit("h", act, None) is act
    new = torch.ones(2, 3)
    assert checked_edit("h", act, new) is new
    with pytest.raises(ValueError, match=r"'h' returned shape \(3, 2\), expected \(2, 3\)"):
        checked_edit("h", act, torch.ones(3, 2))
    with pytest.raises(TypeError, match="dtype float64, expected float32"):
        checked_edit("h", act, new.double())
    with pytest.raises(TypeError, match="returned list"):
        checked_edit("h", act, [1.0])
    pair = (act, act)  # a tuple output (nnsight): the edit rebuilds it, nothing to compare
    assert checked_edit("h", pair, "anything") == "anything"


def test_make_hook_edits_keeps_per_step_and_stops():
    store: dict = {}
    hook = make_hook("h", lambda a: a + 1, True, store, False, False, True)
    act = torch.zeros(2, requires_grad=True)
    out = hook(act, None)
    assert torch.equal(out, torch.ones(2)) and not store["h"].requires_grad
    steps = make_hook("s", None, True, store, True, False, False)
    steps(act, None), steps(act, None)
    assert len(store["s"]) == 2 and store["s"][0] is act  # not detached when asked not to
    with pytest.raises(StopForward, match="h"):
        make_hook("h", None, False, {}, False, True, True)(act, None)
    with pytest.raises(ValueError, match="shape"):
        make_hook("h", lambda a: a[:1], False, {}, False, False, True)(act, None)
