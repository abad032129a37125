"""Every Python example of the README's "Python API" section runs as written."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT


def api_examples() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_has_an_example_per_workflow() -> None:
    code = "\n".join(api_examples())
    for call in ("cl.pw.complete", "cl.pw.search", "cl.pw.enrich", "cl.tl.embed", "cl.tl.adapt", "cl.tl.fine_tune",
                 "cl.tl.rank_deletions", "cl.pl.umap", "cl.pl.volcano", "cl.datasets", "cl.settings"):
        assert call in code, call


@pytest.mark.parametrize("number", range(len(api_examples())))
def test_example_runs(number: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import cellang as cl

    monkeypatch.delenv("CELLANG_MODELS", raising=False)
    models = cl.settings.models_dir
    try:
        exec(compile(api_examples()[number], f"README example {number + 1}", "exec"), {})
    finally:
        monkeypatch.setenv("CELLANG_MODELS", str(models))  # an example may point the models folder elsewhere
        cl.settings.device = "auto"
    assert capsys.readouterr().out.strip()
