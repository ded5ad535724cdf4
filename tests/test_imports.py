"""The dependency order of docs/architecture.md, enforced: every import between interp's
packages (module level and inside function bodies alike) runs downwards.

``LAYERS`` below is the order the architecture document draws, lowest first. A module may
import from its own unit and from any unit on a lower layer; two units on one layer never
import each other. ``import interp`` followed by ``interp.trace(...)`` counts as an import of
the module that defines ``trace`` (the package's lazy public API), so the façade hides nothing.
The second half keeps model knowledge in the tracing layer: methods/ and analyses/ import no
backend (TransformerLens, transformers, nnsight) beyond an allow-list that only shrinks.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A unit is ``interp.<unit>`` unless UNITS says otherwise; a module belongs to the
# unit with the longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("utils",),
    ("data", "results", "models.io"),  # leaves: they need only utils
    ("plotting", "tracing"),  # plotting never sees a model; tracing: the Model and its hooks
    ("models",),  # architectures, builders, the training loop
    ("sae",),
    ("methods",),
    ("zoo",),  # recipes train and evaluate with methods; load_model resolves zoo names
    ("fields",),  # config fields check zoo names
    ("analyses",),
    ("runs",),
    ("seeds",),
    ("bench",),
    ("cli", "app"),
    ("interp",),  # the package itself: the lazy public API over everything
]
UNITS: dict[str, tuple[str, ...]] = {
    "zoo": ("interp.models.zoo", "interp.models.recipes", "interp.models.load"),
    "app": ("app",),
    "interp": ("interp",),
}

# Imports that run upwards on purpose, each with its reason. Keep this short.
EXCEPTIONS: dict[tuple[str, str], str] = {
    (
        "interp.tracing.distributed",
        "interp.models.load",
    ): "main() is the torchrun entry point: it loads the model by name before collecting",
}

# Parts of a package that only that package (and the named outsiders) may import.
INTERNAL: dict[str, tuple[str, ...]] = {
    "interp.tracing.adapters": ("interp.tracing", "interp.bench"),  # bench times collect's parts
    "interp.tracing.runners": ("interp.tracing", "interp.bench"),
    "interp.tracing.sinks": ("interp.tracing", "interp.bench"),
}


def module_names(root: Path, packages: tuple[str, ...] = ("interp", "app")) -> dict[str, Path]:
    """Dotted name -> file for every module under ``root/<package>`` (``app`` keeps its prefix)."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _facade(root: Path) -> dict[str, str]:
    """``interp.<name>`` -> the module that defines it, read off ``_PUBLIC`` and ``_SUBMODULES``
    in ``interp/__init__.py`` (without importing it)."""
    init = root / "interp" / "__init__.py"
    table: dict[str, str] = {}
    if not init.exists():
        return table
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "_PUBLIC":
                table.update(ast.literal_eval(node.value))
            elif name == "_SUBMODULES":
                table.update({s: f"interp.{s}" for s in ast.literal_eval(node.value)})
    return table


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def imports_of(mod: str, path: Path, modules: dict[str, Path], facade: dict[str, str]) -> set[str]:
    """The project modules ``mod`` imports, at module level or inside any function."""

    def resolve(name: str) -> str | None:
        first = name.split(".")
        if len(first) > 1 and first[0] == "interp" and first[1] in facade and name not in modules:
            name = ".".join([facade[first[1]], *first[2:]])  # interp.trace -> interp.tracing.trace
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    names: list[str] = []
    bare_root = False  # ``import interp``: look at what it is used for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "interp" and a.asname is None:
                    bare_root = True
                else:
                    names.append(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names += [f"{base}.{a.name}" for a in node.names]
    if bare_root:
        names += [
            d
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and (d := _dotted(n)) and d.startswith("interp.")
        ]
    return {r for n in names if (r := resolve(n)) and r != mod}


def layer_of(
    mod: str, layers: list[tuple[str, ...]], units: dict[str, tuple[str, ...]] | None = None
) -> tuple[int, str]:
    """(layer index, unit): the unit with the longest prefix that is ``mod`` or a parent of it."""
    units = UNITS if units is None else units
    best, length = (-1, ""), -1
    for i, names in enumerate(layers):
        for unit in names:
            for e in units.get(unit, (f"interp.{unit}",)):
                if (mod == e or mod.startswith(e + ".")) and len(e) > length:
                    best, length = (i, unit), len(e)
    if best[0] < 0:
        raise KeyError(
            f"{mod} is on no layer of LAYERS; add its package to tests/test_imports.py "
            "and to the dependency order in docs/architecture.md"
        )
    return best


def violations(
    root: Path,
    layers: list[tuple[str, ...]],
    exceptions: dict[tuple[str, str], str],
    internal: dict[str, tuple[str, ...]],
    packages: tuple[str, ...] = ("interp", "app"),
    units: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """Every import that runs upwards or sideways between layers, or into another package's
    internals, as ``"a -> b (why)"``."""
    modules = module_names(root, packages)
    facade = _facade(root)
    bad = []
    for mod, path in modules.items():
        la, ea = layer_of(mod, layers, units)
        for target in sorted(imports_of(mod, path, modules, facade)):
            lb, eb = layer_of(target, layers, units)
            if (mod, target) in exceptions:
                continue
            if ea != eb and lb >= la:
                bad.append(f"{mod} -> {target} ({eb} is not below {ea})")
            owners = internal.get(target)
            if owners and not any(mod == o or mod.startswith(o + ".") for o in owners):
                bad.append(f"{mod} -> {target} (internal to {', '.join(owners)})")
    return bad


def test_imports_follow_the_documented_dependency_order():
    bad = violations(ROOT, LAYERS, EXCEPTIONS, INTERNAL)
    assert not bad, "imports against docs/architecture.md's dependency order:\n" + "\n".join(bad)


def test_every_exception_is_still_needed():
    """An exception whose import is gone must leave the list (the list only shrinks)."""
    modules = module_names(ROOT)
    facade = _facade(ROOT)
    stale = [
        f"{a} -> {b}" for a, b in EXCEPTIONS if b not in imports_of(a, modules[a], modules, facade)
    ]
    assert not stale, stale


def test_the_order_is_the_one_the_architecture_document_draws():
    """docs/architecture.md prints LAYERS; the two must not drift apart."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for i, entries in enumerate(LAYERS):
        line = f"{i:2d}  " + ", ".join(entries)
        assert line in doc, f"docs/architecture.md lacks the layer line {line!r}"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return tmp_path


SYNTHETIC = [("utils",), ("tracing",), ("methods", "plotting"), ("interp",)]


@pytest.mark.parametrize(
    "body, expected",
    [
        # a lazy import inside a function body that runs upwards
        (
            "def f():\n    from interp.methods.lens import g\n",
            "interp.tracing.model -> interp.methods.lens",
        ),
        # the façade: `import interp` then interp.<public name> is an import of its defining module
        (
            "def f():\n    import interp\n    return interp.lens_of\n",
            "interp.tracing.model -> interp.methods.lens",
        ),
        ("import interp.methods\n", "interp.tracing.model -> interp.methods"),
    ],
)
def test_a_planted_upward_import_is_caught(tmp_path, body, expected):
    root = _tree(
        tmp_path,
        {
            "interp/__init__.py": (
                '_PUBLIC = {"lens_of": "interp.methods.lens"}\n_SUBMODULES = {"utils"}\n'
            ),
            "interp/utils.py": "X = 1\n",
            "interp/tracing/__init__.py": "",
            "interp/tracing/model.py": "from interp.utils import X\n" + body,
            "interp/methods/__init__.py": "",
            "interp/methods/lens.py": "from interp.tracing.model import f\n",
            "interp/plotting/__init__.py": "",
        },
    )
    bad = violations(root, SYNTHETIC, {}, {}, packages=("interp",))
    assert [b.split(" (")[0] for b in bad] == [expected]


def test_sideways_imports_internals_and_exceptions(tmp_path):
    root = _tree(
        tmp_path,
        {
            "interp/__init__.py": "",
            "interp/utils.py": "",
            "interp/tracing/__init__.py": "",
            "interp/tracing/adapters.py": "",
            # a relative import, inside the package
            "interp/tracing/model.py": "from . import adapters\n",
            "interp/methods/__init__.py": "",
            "interp/methods/lens.py": (
                "from interp.plotting import fig\nfrom interp.tracing import adapters\n"
            ),
            "interp/plotting/__init__.py": "fig = 1\n",
        },
    )
    internal = {"interp.tracing.adapters": ("interp.tracing",)}
    bad = violations(root, SYNTHETIC, {}, internal, packages=("interp",))
    assert bad == [
        "interp.methods.lens -> interp.plotting (plotting is not below methods)",
        "interp.methods.lens -> interp.tracing.adapters (internal to interp.tracing)",
    ]
    allowed = {("interp.methods.lens", "interp.plotting"): "a planted exception"}
    assert len(violations(root, SYNTHETIC, allowed, internal, packages=("interp",))) == 1
    with pytest.raises(KeyError, match="on no layer"):
        layer_of("elsewhere.mod", SYNTHETIC)


# ----------------------------------------------------------------- model knowledge stays in tracing
# Architecture knowledge lives in the tracing layer (the Model, its adapters and readouts):
# methods/ and analyses/ neither import TransformerLens, transformers or nnsight, nor read the
# bridge's internals (the wrapped module under ``original_model``, its ``_original_component``s).
# Today's offenders, per file, each an exact count: moving one into tracing/ means lowering its
# number here (the test fails until you do), and a new offender fails the test.
BACKEND_PACKAGES = ("transformer_lens", "transformers", "nnsight")
BRIDGE_INTERNALS = ("original_model", "_original_component")
BACKEND_IMPORTS_ALLOWED: dict[str, set[str]] = {}
BRIDGE_INTERNALS_ALLOWED: dict[str, int] = {}


def backend_use(path: Path) -> tuple[set[str], int]:
    """(backend modules ``path`` imports, reads of bridge internals: ``.original_model`` and the
    like, as attributes or as ``getattr`` strings)."""
    imported: set[str] = set()
    reads = 0
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        imported |= {n for n in names if n.split(".")[0] in BACKEND_PACKAGES}
        if isinstance(node, ast.Attribute) and node.attr in BRIDGE_INTERNALS:
            reads += 1
        elif isinstance(node, ast.Constant) and node.value in BRIDGE_INTERNALS:
            reads += 1
    return imported, reads


def test_methods_and_analyses_leave_backend_internals_to_tracing():
    files = sorted(
        [
            *(ROOT / "interp" / "methods").rglob("*.py"),
            *(ROOT / "interp" / "analyses").rglob("*.py"),
        ]
    )
    imports, reads = {}, {}
    for path in files:
        rel = str(path.relative_to(ROOT))
        imported, n = backend_use(path)
        if imported:
            imports[rel] = imported
        if n:
            reads[rel] = n
    assert imports == BACKEND_IMPORTS_ALLOWED, (
        "methods/ and analyses/ import backend internals other than the allowed ones; ask the "
        f"Model (interp/tracing) instead, or lower the allow-list: {imports}"
    )
    assert reads == BRIDGE_INTERNALS_ALLOWED, (
        f"reads of {BRIDGE_INTERNALS} in methods/ and analyses/ changed: {reads}; a new one "
        "belongs in interp/tracing, a removed one leaves BRIDGE_INTERNALS_ALLOWED"
    )


def test_backend_use_sees_imports_and_internal_reads(tmp_path):
    p = tmp_path / "m.py"
    p.write_text(
        "def f(m):\n    from transformers import DynamicCache\n    import nnsight\n"
        "    from interp.tracing import trace\n"
        "    return m.module.original_model, getattr(m, '_original_component')\n"
    )
    assert backend_use(p) == ({"transformers", "nnsight"}, 2)
