"""The general measuring tools. Each takes any compatible :class:`interp.Model` (a zoo model,
a Hugging Face checkpoint), returns plain data, and is composed by the analyses.

- ``lens.py``: the logit lens (residual stream read through the final norm + unembedding).
- ``patching.py``: activation patching and attribution patching, per head.
- ``circuits/``: edge-level circuits (writers -> readers graph, EAP, EAP-IG, exact edge and
  path patching, faithfulness curves).
- ``knockout.py``: attention knockout between token groups, with the last-row fast path.
- ``masks.py``: continuous-sparsification weight masks (train, binarise, random nulls).
- ``fixed_points.py``: the fixed-point finder, Jacobians and stability of a recurrent map.
- ``heads.py``: head scorers (attention to previous / first token, n-gram heads) and head ablation.
- ``probes.py``: ridge probes from activations to targets.
- ``sae_scores.py``: circuit scores from SAE codes (the paper's node and edge scores, ours).
- ``prompt_probe.py``: everything the live explorer shows about one prompt.
- ``steering.py``: steering while generating (ActAdd, CAA, directional ablation, SAE latents).
- ``completion.py``: completing a slot with a causal or a masked LM (causal: ``interp.generate``).
"""
