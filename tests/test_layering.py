"""The package's dependencies point one way (docs/architecture.md, "Layering"), and every module
imports on its own.

`test_imports_follow_the_layering` parses every `import` of every module with `ast`, at module
level and inside functions alike (a function-level import still makes the importing package
depend on the imported one; it only hides the dependency from import time), and checks each
dependency between two kerasllm packages against `ALLOWED`. The few that break the rule are in
`EXCEPTIONS`, each with its reason.

`test_every_module_imports_alone` imports each module as the first kerasllm module of a
process, which is when an import cycle breaks (`ImportError: cannot import name ... partially
initialized module`).
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "kerasllm"

#: package -> the kerasllm packages its modules may import (directly). "utils" and "_compat" are
#: the bottom: they import no other kerasllm module.
_BOTTOM = {"utils", "_compat"}
ALLOWED: dict[str, set[str]] = {
    "utils": set(),
    "_compat": set(),
    "tokenizers": _BOTTOM,
    "layers": _BOTTOM,
    "metrics": _BOTTOM,
    # What precision and compilation "auto" means on this machine (training and generation).
    "hardware": _BOTTOM,
    # The pipelines frame (and mask) text through the preprocessors' functions.
    "data": {"tokenizers", "preprocessors"} | _BOTTOM,
    "datasets": {"data"} | _BOTTOM,
    "preprocessors": {"tokenizers"} | _BOTTOM,
    "models": {"layers", "tokenizers", "preprocessors"} | _BOTTOM,
    "bundle": {"models", "layers", "tokenizers", "preprocessors"} | _BOTTOM,
    "convert": {"models", "layers", "tokenizers"} | _BOTTOM,
    # String prompts are tokenized by the preprocessors' `tokenize_text` (one text path).
    "generation": {"models", "layers", "tokenizers", "preprocessors", "hardware"} | _BOTTOM,
    "zoo": {"models", "layers", "convert", "tokenizers", "data", "datasets", "preprocessors"}
    | {"bundle"}
    | _BOTTOM,
}
ALLOWED["text_to_text"] = {"bundle", "generation"} | ALLOWED["bundle"] | ALLOWED["generation"]
# The token-classification objective reports entity scores through `metrics.entities`.
ALLOWED["training"] = {"zoo", "generation", "metrics", "hardware"} | ALLOWED["zoo"]
ALLOWED["export"] = {"zoo", "generation"} | ALLOWED["zoo"] - {"convert"}
ALLOWED["tuning"] = {"training", "export", "metrics"} | ALLOWED["training"] | ALLOWED["export"]
# Beside tuning: quantization now; distillation and pruning will run through the trainer.
ALLOWED["compression"] = ALLOWED["tuning"] | {"text_to_text"} | ALLOWED["text_to_text"]
# The top: the console script and the package's lazy attribute access; the test helpers.
ALLOWED["cli"] = set(ALLOWED)
ALLOWED["kerasllm"] = set(ALLOWED)
ALLOWED["testing"] = set(ALLOWED) - {"cli", "kerasllm"}

#: (importing module, imported module) -> why that import breaks the layering.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("kerasllm.models.language_models", "kerasllm.generation"): (
        "CausalLM.generate / Seq2SeqLM.generate are the task models' convenience entry points; "
        "they import kerasllm.generation when called and delegate to it, so "
        "`import kerasllm.models` never loads generation. generation imports models only to "
        "check the model type, also at call time: no cycle at import time."
    ),
}


def _module_name(path: pathlib.Path) -> str:
    parts = ("kerasllm",) + path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "kerasllm"
    return parts[1][:-3] if parts[1].endswith(".py") else parts[1]


def _modules() -> list[str]:
    return sorted(
        _module_name(p) for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts
    )


def _kerasllm_imports(path: pathlib.Path, module: str):
    """(imported kerasllm module, line) for every import statement anywhere in the file."""
    package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package_parts[: len(package_parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base == "kerasllm":  # `from kerasllm import zoo`: the submodules named
                for alias in node.names:
                    yield f"kerasllm.{alias.name}", node.lineno
            else:
                yield base, node.lineno


def test_allowed_table_has_no_cycle():
    """The allowed dependencies form a partial order (else the table itself allows a cycle)."""
    state: dict[str, str] = {}

    def visit(package: str, trail: list[str]) -> None:
        if state.get(package) == "done":
            return
        assert state.get(package) != "open", f"ALLOWED has a cycle: {trail + [package]}"
        state[package] = "open"
        for dependency in ALLOWED.get(package, ()):
            if dependency != package:
                visit(dependency, trail + [package])
        state[package] = "done"

    for package in ALLOWED:
        visit(package, [])


def test_imports_follow_the_layering():
    violations, used_exceptions = [], set()
    packages = {_package(m) for m in _modules()}
    assert packages <= set(ALLOWED), f"add the new packages to ALLOWED: {packages - set(ALLOWED)}"
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = _module_name(path)
        importer = _package(module)
        for imported, line in _kerasllm_imports(path, module):
            if imported != "kerasllm" and not imported.startswith("kerasllm."):
                continue
            target = _package(imported)
            if target in (importer, "kerasllm") or target in ALLOWED[importer]:
                continue
            key = next(
                (k for k in EXCEPTIONS if k[0] == module and imported.startswith(k[1])), None
            )
            if key is not None:
                used_exceptions.add(key)
                continue
            violations.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line}: {imported}")
    assert not violations, (
        "imports against the layering (docs/architecture.md); move the shared code down, or "
        "list the import in EXCEPTIONS with its reason:\n" + "\n".join(violations)
    )
    stale = set(EXCEPTIONS) - used_exceptions
    assert not stale, f"EXCEPTIONS no longer needed, delete them: {sorted(stale)}"


# Run in one subprocess: for each module, every kerasllm module is dropped from `sys.modules`
# and that module is imported first. Third-party packages (TensorFlow, Keras, keras_hub) stay
# loaded: an import cycle can only run through kerasllm's own modules, and a fresh interpreter
# per module would cost a TensorFlow import (~7 CPU seconds) for each of ~90 modules.
_IMPORT_EACH = """
import importlib, json, sys, traceback
import keras, keras_hub, numpy, tensorflow, tensorflow_text  # noqa: F401
results = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "kerasllm" or m.startswith("kerasllm.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
        error = None
    except Exception:
        error = traceback.format_exc(limit=3)
    loaded = sorted(m for m in sys.modules if m.startswith("kerasllm."))
    results[name] = {"error": error, "loaded": loaded}
print("RESULT" + json.dumps(results))
"""


@pytest.fixture(scope="module")
def imported_alone() -> dict[str, dict]:
    """module -> {"error": traceback or None, "loaded": kerasllm modules its import loaded}."""
    modules = [m for m in _modules() if m != "kerasllm.cli.__main__"]
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=PACKAGE_DIR.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_every_module_imports_alone(imported_alone):
    failures = {name: r["error"] for name, r in imported_alone.items() if r["error"]}
    assert not failures, "modules that fail when imported first:\n" + "\n".join(
        f"{name}:\n{error}" for name, error in failures.items()
    )


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("kerasllm.generation.samplers", "kerasllm.models"),  # a sampler is pure tensor code
        ("kerasllm.models", "kerasllm.generation"),
        ("kerasllm.models", "kerasllm.training"),
        ("kerasllm.zoo", "kerasllm.training"),
        ("kerasllm.data", "kerasllm.models"),
        ("kerasllm.datasets", "kerasllm.data"),  # the corpus readers load no TensorFlow
        ("kerasllm.metrics", "kerasllm.models"),
        ("kerasllm.text_to_text", "kerasllm.training"),
    ],
)
def test_light_imports(imported_alone, module, must_not_load):
    loaded = imported_alone[module]["loaded"]
    offending = [m for m in loaded if m == must_not_load or m.startswith(must_not_load + ".")]
    assert not offending, f"importing {module} loads {offending}"


def test_utils_import_no_third_party_package():
    """The bottom of the layering loads no framework: its helpers are usable anywhere."""
    code = (
        "import sys, kerasllm.utils.files, kerasllm.utils.validation; "
        "bad = [m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE_DIR.parent
    )
    assert result.returncode == 0, f"kerasllm.utils loads {result.stdout.strip()}"
