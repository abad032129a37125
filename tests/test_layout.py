"""The layout's promises: inference never imports training, and each workflow has its one package."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

TRAINING = ("cellang.training", "cellang.completion.training", "cellang.completion.dae_training",
            "cellang.completion.set_training", "cellang.completion.rerank_training",
            "cellang.embedding.training")
INFERENCE = ("cellang.completion.loading", "cellang.completion.completer", "cellang.completion.tables",
             "cellang.completion.request",
             "cellang.completion.benchmark", "cellang.completion.baselines",
             "cellang.completion.retrieval", "cellang.completion.network",
             "cellang.completion.set_model", "cellang.completion.rerank", "cellang.completion.neighbours",
             "cellang.completion.evidence", "cellang.completion.gene_input", "cellang.embedding.loading",
             "cellang.embedding.embed", "cellang.app.explorer", "cellang.embedding.metrics",
             "cellang.perturbation.engine", "cellang.perturbation.stats",
             "cellang.perturbation.workflow", "cellang.perturbation.presets",
             "cellang.app.deletion", "cellang.enrich", "cellang.app.overview", "cellang.browse",
             "cellang.plots", "cellang.embedding.workflow", "cellang.app.completion_report",
             "cellang.pw", "cellang.tl", "cellang.pl", "cellang.datasets")


def test_inference_paths_import_no_training_module() -> None:
    code = (f"import importlib, sys\nfor name in {INFERENCE!r}:\n    importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m in {TRAINING!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_one_package_per_workflow_and_no_task_bucket() -> None:
    core = REPO_ROOT / "cellang"
    for package in ("completion", "embedding", "perturbation"):
        assert (core / package / "__init__.py").read_text().startswith('"""Where ')
    assert not (core / "tasks").exists()


def core_modules() -> list[str]:
    """Every module of the library below the app: cellang/**.py outside cellang/app."""
    core = REPO_ROOT / "cellang"
    return sorted(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for path in core.rglob("*.py") if "app" not in path.relative_to(core).parts[:1])


def imported_names(path) -> set[str]:  # type: ignore[no-untyped-def]
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_imports_no_streamlit_and_nothing_of_the_app() -> None:
    core = REPO_ROOT / "cellang"
    offenders = {}
    for path in core.rglob("*.py"):
        if path.relative_to(core).parts[0] == "app":
            continue
        bad = {n for n in imported_names(path) if n.split(".")[0] == "streamlit" or n.startswith("cellang.app")}
        if bad:
            offenders[str(path.relative_to(REPO_ROOT))] = sorted(bad)
    assert not offenders, offenders
    assert len(core_modules()) > 50


def test_importing_cellang_loads_no_heavy_library() -> None:
    code = ("import sys, cellang\nprint(sorted(m for m in ('torch', 'anndata', 'scanpy', 'streamlit', 'pandas') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_pages_import_only_the_public_api_and_the_app_package() -> None:
    """A page imports ``cellang`` (cl.pw, cl.tl, cl.pl, cl.datasets, cl.settings) and its own support in
    ``cellang.app``; what that support takes from below the public API is listed there, in one place per page."""
    offenders = {}
    for path in [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "pages").glob("*.py"))]:
        bad = {n for n in imported_names(path)
               if n.split(".")[0] == "cellang" and n != "cellang" and not n.startswith("cellang.app")}
        if bad:
            offenders[path.name] = sorted(bad)
    assert not offenders, offenders


def page_imports_from_the_app() -> dict[str, list[tuple[str, str]]]:
    """{page file: [(cellang.app module, name), ...]} of every ``from cellang.app.X import name`` of app.py and
    the pages."""
    import ast

    imports: dict[str, list[tuple[str, str]]] = {}
    for path in [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("cellang.app"):
                imports.setdefault(path.name, []).extend((node.module, alias.name) for alias in node.names)
    return imports


def defined_at_top_level(module_path, name: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``name`` is bound in the module's own source by a top-level def, class or assignment (not by an
    import)."""
    import ast

    for node in ast.parse(module_path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for target in targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            if any(isinstance(t, ast.Name) and t.id == name for t in names):
                return True
    return False


def test_what_a_page_takes_from_the_app_package_has_its_home_there() -> None:
    """The app is a client of the library: a page reaches the library through the public API (cl.*) or through
    its support in ``cellang.app``, whose names are that support's own (functions and classes defined there,
    constants assigned there), never a name re-exported from below the public API."""
    import importlib
    import inspect

    imports = page_imports_from_the_app()
    assert set(imports) >= {"app.py", "1_Data.py", "2_Pathway_completion.py", "3_Cell_embeddings.py",
                            "4_In_silico_deletion.py"}
    offenders: dict[str, list[str]] = {}
    for page, names in imports.items():
        for module_name, name in names:
            module = importlib.import_module(module_name)
            value = getattr(module, name)
            if inspect.isfunction(value) or inspect.isclass(value):
                home = value.__module__
                ok = home.startswith("cellang.app")
            else:
                home = "assigned in its module" if defined_at_top_level(REPO_ROOT.joinpath(
                    *module_name.split(".")).with_suffix(".py"), name) else "imported there"
                ok = home == "assigned in its module"
            if not ok:
                offenders.setdefault(page, []).append(f"{module_name}.{name} ({home})")
    assert not offenders, offenders
