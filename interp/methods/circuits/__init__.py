"""Edge-level circuits: the graph of writers and readers, EAP / EAP-IG / exact edge scores,
circuit runs, faithfulness curves and path patching (see ``docs/analyses/circuits.md``)."""
