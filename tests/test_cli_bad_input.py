"""Every script answers bad arguments and bad files with exit code 2 and one line naming the problem,
through cellang.cli, never a traceback, and before any training or benchmarking starts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellang import cli
from cellang.cli.main import command_of
from cellang.completion import benchmark as bench
from cellang.paths import CHECKPOINT_DIR, REPO_ROOT
from tests.scripts import load_script

SCRIPTS = sorted(path.stem for path in (REPO_ROOT / "scripts").glob("*.py"))
COMMAND_MODULES = sorted(path.stem for path in (REPO_ROOT / "cellang" / "cli").glob("*.py")
                         if path.stem not in ("__init__", "main"))

# {bad}: the folder of bad files below; {tmp}: an empty folder of the test's own, for outputs that are
# never reached (nothing may be written into the repository).
CASES = [
    ("benchmark_pathways", "--mask-ratio 1.5", "--mask-ratio"),
    ("benchmark_pathways", "--mask-ratio -1", "--mask-ratio"),
    ("benchmark_pathways", "--mask-ratio 1", "--mask-ratio"),
    ("benchmark_pathways", "--mask-ratio half", "--mask-ratio"),
    ("benchmark_pathways", "--seed -5", "--seed"),
    ("benchmark_pathways", "--limit -1", "--limit"),
    ("benchmark_pathways", "--limit 0", "--limit"),
    ("benchmark_pathways", "--methods oracle", "--methods"),
    ("benchmark_pathways", "--gmt {bad}/missing.gmt", "cannot use missing.gmt"),
    ("benchmark_pathways", "--gmt {bad}/folder", "not a file"),
    ("benchmark_pathways", "--gmt {bad}/empty.gmt --out {tmp}/b", "no gene sets found"),
    ("benchmark_pathways", "--gmt {bad}/binary.gmt --out {tmp}/b", "not valid UTF-8"),
    ("benchmark_pathways", "--gmt {bad}/names.txt --out {tmp}/b", "missing fields"),
    ("benchmark_pathways", "--gmt {bad}/whole_vocabulary.gmt --methods random --out {tmp}/b", "1 too large"),
    ("benchmark_pathways", "--gmt {bad}/tiny.gmt --methods random --out {tmp}/b", "1 too small"),
    ("benchmark_pathways", "--out {bad}/file/result", "is a file, not a folder"),
    ("benchmark_pathways", "--methods dae --dae-dir {bad}/file/dae --out {tmp}/b", "is a file, not a folder"),
    ("benchmark_pathways", "--methods dae --dae-dir {bad}/bad_weights --out {tmp}/b", "not a readable"),
    ("benchmark_pathways", "--methods pathway-gpt --model-dir {bad}/folder --out {tmp}/b", "pathway-gpt model is not available"),
    ("benchmark_pathways", "--methods pathway-gpt --model-dir {bad}/bad_weights --out {tmp}/b", "not a readable"),
    ("benchmark_pathways", "--methods pathway-gpt --model-dir {bad}/bad_config --out {tmp}/b", "not a readable"),
    ("benchmark_pathways", "--methods shipped --model-dir {bad}/bad_weights --out {tmp}/b",
     "completer.json"),
    ("benchmark_pathways", "--methods set-retrieval --model-dir {bad}/bad_tuning --out {tmp}/b", "not a readable"),
    ("train", "", "command"),
    ("train", "gpt", "invalid choice"),
    ("train", "pathway --max-steps 0", "--max-steps"),
    ("train", "pathway --batch-size 0", "--batch-size"),
    ("train", "pathway --grad-accum -2", "--grad-accum"),
    ("train", "pathway --lr nan", "--lr"),
    ("train", "pathway-dae --lr 0", "--lr"),
    ("train", "pathway --dropout 1", "--dropout"),
    ("train", "pathway --seed -1", "--seed"),
    ("train", "pathway --device tpu", "--device"),
    ("train", "cells-rank --val-fraction 0", "--val-fraction"),
    ("train", "cells-binned --n-bins 2", "--n-bins"),
    ("train", "pathway --out {bad}/file", "is a file, not a folder"),
    ("train", "pathway --out {tmp}/out --run-dir {bad}/file/run", "is a file, not a folder"),
    ("train", "pathway --corpus {bad}/folder --out {tmp}/out --run-dir {tmp}/run", "no corpus"),
    ("train", "pathway --n-head 3 --n-embd 16 --out {tmp}/out --run-dir {tmp}/run", "divisible"),
    ("train", "pathway --resume --run-dir {bad}/bad_weights --out {tmp}/out", "not a readable"),
    ("train", "pathway-dae --resume --out {tmp}/out", "--run-dir"),
    ("train", "pathway-dae --mask-min 0.9 --mask-max 0.5 --out {tmp}/out", "--mask-min"),
    ("train", "cells-rank --datasets nope --out {tmp}/out --run-dir {tmp}/run", "nope"),
    ("train", "cells-rank --init-from-pathway --pathway-checkpoint {bad}/folder --out {tmp}/out --run-dir {tmp}/run",
     "model.safetensors"),
    ("train", "cells-rank --init-from-pathway --pathway-checkpoint {bad}/bad_weights --out {tmp}/out "
     "--run-dir {tmp}/run", "not a readable"),
    ("train", "cells-rank --data {bad}/text.h5ad --out {tmp}/out --run-dir {tmp}/run", "not an hdf5"),
    ("train", "cells-rank --data {bad}/missing.h5ad --out {tmp}/out --run-dir {tmp}/run", "does not exist"),
    ("train", "cells-rank --data {bad}/scaled.h5ad --out {tmp}/out --run-dir {tmp}/run", "scaled"),
    ("train", "cells-rank --data {bad}/unknown_genes.h5ad --out {tmp}/out --run-dir {tmp}/run", "known human genes"),
    ("train", "cells-rank --data {bad}/csc.h5ad --out {tmp}/out --run-dir {tmp}/run", "cell by cell"),
    ("train", "cells-binned --data {bad}/csc.h5ad --datasets hsmm", "not allowed with"),
    ("train", "cells-binned --data {bad}/counts.h5ad --init-from {checkpoints}/cells-rank --out {tmp}/out "
     "--run-dir {tmp}/run", "train cells-rank to fine-tune it"),
    ("train", "cells-rank --data {bad}/counts.h5ad --init-from {checkpoints}/pathway-set --out {tmp}/out "
     "--run-dir {tmp}/run", "not a cell encoder"),
    ("train", "cells-rank --init-from {checkpoints}/cells-rank --out {tmp}/out --run-dir {tmp}/run", "--data"),
    ("train", "pathway-set --init-from {bad}/folder --out {tmp}/out --run-dir {tmp}/run", "model.safetensors"),
    ("train", "pathway-set --init-from {checkpoints}/cells-rank --out {tmp}/out --run-dir {tmp}/run --max-steps 1",
     "pathway-set"),
    ("train", "pathway-set --cooccurrence-weight -1 --out {tmp}/out", "cooccurrence-weight"),
    ("train", "pathway-set --average-of {checkpoints}/pathway-set --out {tmp}/out", "two or more"),
    ("train", "pathway-set --average-of {checkpoints}/pathway-set {checkpoints}/pathway-set "
     "--init-from {checkpoints}/pathway-set --out {tmp}/out", "no --init-from"),
    ("train", "pathway-set --average-of {checkpoints}/pathway-set {checkpoints}/cells-rank --out {tmp}/out",
     "pathway-set"),
    ("run_deletion", "--pairs 1", "--pairs"),
    ("run_deletion", "--pairs 31", "--pairs"),
    ("benchmark_cell_loading", "--sizes 10", "--sizes"),
    ("benchmark_cell_loading", "--out {bad}/file/x --sizes 100", "is a file, not a folder"),
    ("benchmark_embeddings", "--model cells-rank", "NAME=DIR"),
    ("benchmark_embeddings", "--model =x", "NAME=DIR"),
    ("benchmark_embeddings", "--model a={bad}/folder --model a={bad}/folder", "twice"),
    ("benchmark_embeddings", "--seed -1", "--seed"),
    ("benchmark_embeddings", "--model a={bad}/folder --out {tmp}/e", "model.safetensors"),
    ("benchmark_embeddings", "--model a={bad}/bad_cell_weights --out {tmp}/e", "not a readable"),
    ("benchmark_embeddings", "--model a={bad}/bad_cell_config --out {tmp}/e", "not a readable"),
    ("benchmark_embeddings", "--datasets nope --out {tmp}/e", "nope"),
    ("benchmark_embeddings", "--datasets celltypist_immune --out {tmp}/e", "cell types"),
    ("benchmark_embeddings", "--out {bad}/file/e", "is a file, not a folder"),
    ("benchmark_perturb", "--cells 0", "--cells"),
    ("benchmark_perturb", "--naive-cells -1", "--naive-cells"),
    ("benchmark_perturb", "--cells 10 --naive-cells 30", "--naive-cells"),
    ("benchmark_perturb", "--tolerance 0", "--tolerance"),
    ("benchmark_perturb", "--peak-seconds inf", "--peak-seconds"),
    ("benchmark_perturb", "--screen-cells-per-gene 0", "--screen-cells-per-gene"),
    ("tune_screen", "--cells 0", "--cells"),
    ("tune_screen", "--strides 32 0", "--strides"),
    ("benchmark_perturb", "--max-batch-tokens 0", "--max-batch-tokens"),
    ("benchmark_perturb", "--devices tpu", "--devices"),
    ("benchmark_perturb", "--seed 4294967296", "--seed"),
    ("benchmark_perturb", "--checkpoint {bad}/folder --out {tmp}/p", "cells-rank model is not available"),
    ("benchmark_perturb", "--checkpoint {bad}/bad_cell_weights --out {tmp}/p", "not a readable"),
    ("benchmark_perturb", "--checkpoint {bad}/bad_cell_config --out {tmp}/p", "not a readable"),
    ("benchmark_perturb", "--random-init --out {bad}/file/p", "is a file, not a folder"),
    ("build_corpus", "--seed -1", "--seed"),
    ("build_corpus", "--data-dir {bad}/file", "is a file, not a folder"),
    ("build_atlas", "--only nope", "--only"),
    ("build_atlas", "--out-dir {bad}/file/atlas", "is a file, not a folder"),
    ("build_known_genes", "--out-dir {bad}/file", "is a file, not a folder"),
    ("build_known_genes", "--bogus", "unrecognized"),
    ("build_external", "--out {bad}/file", "is a file, not a folder"),
    ("build_external", "--tests kegg", "--tests"),
    ("tune_completer", "--mask-ratio 0", "--mask-ratio"),
    ("tune_completer", "--outside {bad}/missing.gmt", "missing.gmt"),
    ("tune_completer", "--model-dir {bad}/folder", "pathway-gpt model is not available"),
    ("tune_completer", "--model-dir {bad}/bad_weights", "not a readable"),
    ("tune_completer", "--model-dir {bad}/bad_config", "not a readable"),
    ("benchmark_mixing", "--mask-ratio 0", "--mask-ratio"),
    ("benchmark_mixing", "--memory-sets 0", "--memory-sets"),
    ("benchmark_mixing", "--outside {bad}/missing.gmt", "missing.gmt"),
    ("benchmark_mixing", "--outside {bad}/empty.gmt --out {tmp}/m", "no gene sets found"),
    ("benchmark_mixing", "--reader-dir {bad}/folder --outside --out {tmp}/m", "model.safetensors"),
    ("benchmark_mixing", "--set-model-dir {bad}/bad_weights --outside --out {tmp}/m", "not a readable"),
    ("benchmark_mixing", "--out {bad}/file/m", "is a file, not a folder"),
    ("benchmark_mixing", "--model-dir {bad}/folder --outside --out {tmp}/m", "pathway-gpt model is not available"),
    ("adapt", "{bad}/text.h5ad --steps 2 --out {tmp}/a", "not an hdf5"),
    ("adapt", "{bad}/missing.h5ad --steps 2 --out {tmp}/a", "does not exist"),
    ("adapt", "{bad}/unknown_genes.h5ad --steps 2 --out {tmp}/a", "known human genes"),
    ("adapt", "{bad}/counts.h5ad --minutes 0", "--minutes"),
    ("adapt", "{bad}/counts.h5ad --minutes 5 --steps 3", "not allowed with"),
    ("adapt", "{bad}/counts.h5ad --steps 0", "--steps"),
    ("adapt", "{bad}/counts.h5ad --model nope --steps 2 --out {tmp}/a", "no cell encoder called 'nope'"),
    ("adapt", "{bad}/counts.h5ad --model {checkpoints}/pathway-set --steps 2 --out {tmp}/a", "not a cell encoder"),
    ("adapt", "{bad}/counts.h5ad --model {bad}/bad_cell_weights --steps 2 --out {tmp}/a", "not a readable"),
    ("adapt", "{bad}/counts.h5ad --steps 2 --out {bad}/folder", "already exists"),
    ("adapt", "{bad}/counts.h5ad --steps 2 --out {bad}/file/a", "is a file, not a folder"),
    ("benchmark_leaveout", "--leave-out nope", "no dataset 'nope'"),
    ("benchmark_leaveout", "--leave-out celltypist_immune", "fewer than two cell types"),
    ("benchmark_leaveout", "--recipes nope", "unknown nope"),
    ("benchmark_leaveout", "--steps 0", "--steps"),
    ("benchmark_leaveout", "--steps rank=x", "--steps"),
    ("benchmark_leaveout", "--recipes binned --steps rank=10", "RECIPE among --recipes"),
    ("benchmark_context", "--lengths 1", "--lengths"),
    ("benchmark_context", "--cells 0", "--cells"),
    ("benchmark_context", "--out {bad}/file/x", "is a file, not a folder"),
    ("benchmark_leaveout", "--out {bad}/file/x", "is a file, not a folder"),
    ("tune_adapt", "--datasets hsmm", "scored by the leave-out benchmark"),
    ("tune_adapt", "--datasets nope", "no dataset 'nope'"),
    ("tune_adapt", "--lrs 0", "--lrs"),
]

# Real processes, `python -m cellang <command> ...` (= `cellang <command> ...`), for the commands whose imports are quick enough (train,
# tune_completer and benchmark_perturb import torch first: seconds each on 2 busy cores).
SUBPROCESS_CASES = {
    "benchmark_pathways": "--gmt {bad}/binary.gmt",
    "benchmark_embeddings": "--model cells-rank",
    "build_corpus": "--seed -1",
    "build_atlas": "--only nope",
    "build_known_genes": "--out-dir {bad}/file",
}


def fake_checkpoint(folder: Path, shipped: Path, *, bad: str) -> None:
    """A shipped checkpoint's config, vocabulary and record, garbage weights, and garbage in ``bad``."""
    folder.mkdir()
    for name in ("config.json", "vocabulary.json", "training_record.json"):
        shutil.copy(shipped / name, folder / name)
    (folder / "model.safetensors").write_bytes(b"\x00garbage\xff" * 8)
    (folder / bad).write_bytes(b"\x9e\x00not json\xff")


def write_bad_cells(folder: Path) -> None:
    """.h5ad files that cannot be streamed into training, next to one that can (counts.h5ad)."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from cellang.atlas import load_atlas_dataset
    from cellang.cells import write_h5ad

    cells = load_atlas_dataset("wu2020_tcells")[:20].copy()
    write_h5ad(cells, folder / "counts.h5ad")
    scaled = cells.copy()
    dense = scaled.X.toarray()
    scaled.X = sp.csr_matrix((dense - dense.mean(0)) / (dense.std(0) + 1))
    scaled.obs = scaled.obs.drop(columns=["value_kind"])
    write_h5ad(scaled, folder / "scaled.h5ad")
    unknown = cells.copy()
    unknown.var = pd.DataFrame(index=[f"feature_{i}" for i in range(unknown.n_vars)])
    write_h5ad(unknown, folder / "unknown_genes.h5ad")
    csc = cells.copy()
    csc.X = sp.csc_matrix(csc.X)
    write_h5ad(csc, folder / "csc.h5ad")
    (folder / "text.h5ad").write_text("gene,cell\nCD3E,1\n")
    assert np.isfinite(dense).all()


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cellang.corpus import load_corpus

    folder = tmp_path_factory.mktemp("bad")
    (folder / "folder").mkdir()
    (folder / "file").write_text("a file the user made\n")
    (folder / "empty.gmt").write_bytes(b"")
    (folder / "binary.gmt").write_bytes(bytes(range(256)) * 4)
    (folder / "names.txt").write_text("TP53\nMYC\nEGFR\n")
    (folder / "tiny.gmt").write_text("tiny\td\tTP53\tMYC\n")
    (folder / "whole_vocabulary.gmt").write_text("everything\td\t" + "\t".join(load_corpus().genes) + "\n")
    write_bad_cells(folder)
    gpt, cells = CHECKPOINT_DIR / "pathway-gpt", CHECKPOINT_DIR / "cells-rank"
    fake_checkpoint(folder / "bad_weights", gpt, bad="model.safetensors")
    fake_checkpoint(folder / "bad_config", gpt, bad="config.json")
    fake_checkpoint(folder / "bad_tuning", gpt, bad="completer.json")
    fake_checkpoint(folder / "bad_cell_weights", cells, bad="model.safetensors")
    fake_checkpoint(folder / "bad_cell_config", cells, bad="config.json")
    return folder


def repository_outputs() -> tuple[list[str], bool]:
    """What a script could create in the repository by default: model folders and runs/."""
    return sorted(p.name for p in CHECKPOINT_DIR.iterdir()), (REPO_ROOT / "runs").exists()


def argv_of(text: str, bad: Path, tmp: Path) -> list[str]:
    return text.format(bad=bad, tmp=tmp, checkpoints=CHECKPOINT_DIR).split()


def assert_one_line(code: int, stderr: str, expected: str) -> None:
    assert code == cli.USAGE_EXIT, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert expected.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize(("script", "argv", "expected"), CASES, ids=[f"{s}:{a}" for s, a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(script: str, argv: str, expected: str, bad: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    before, repository = sorted(p.name for p in bad.iterdir()), repository_outputs()
    try:
        code = cli.run(load_script(script).main, argv_of(argv, bad, tmp_path))
    except SystemExit as stop:  # argument errors leave through cli.Parser.error, as in a real run
        code = stop.code
    assert_one_line(code, capsys.readouterr().err, expected)
    assert (bad / "file").read_text() == "a file the user made\n"
    assert sorted(p.name for p in bad.iterdir()) == before
    assert repository_outputs() == repository, "no folder is made before the inputs are known good"
    assert not any(tmp_path.rglob("*.json")), "nothing is written before the inputs are known good"


@pytest.fixture(scope="module", autouse=True)
def subprocess_runs(bad: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Started with the module and read at its end, so their startup overlaps the in-process runs."""
    tmp = tmp_path_factory.mktemp("out")
    runs = {name: subprocess.Popen([sys.executable, "-m", "cellang", *command_of(name),
                                    *argv_of(argv, bad, tmp)], cwd=REPO_ROOT, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name, argv in SUBPROCESS_CASES.items()}
    yield runs
    for run in runs.values():  # those a -k selection never read
        if run.poll() is None:
            run.kill()
        run.communicate()


@pytest.mark.parametrize("script", sorted(SUBPROCESS_CASES))
def test_scripts_answer_bad_input_as_a_process(script: str, subprocess_runs) -> None:  # type: ignore[no-untyped-def]
    _, stderr = subprocess_runs[script].communicate(timeout=120)
    assert_one_line(subprocess_runs[script].returncode, stderr, "error:")
    assert stderr.startswith(f"cellang {' '.join(command_of(script))}: error:"), stderr


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_every_command_is_reachable_and_ends_in_the_shared_error_path(module: str) -> None:
    lines = [line for line in (REPO_ROOT / "cellang" / "cli" / f"{module}.py").read_text().splitlines()
             if line.strip()]
    assert "cli.run(" in lines[-1], f"cellang/cli/{module}.py must end in `raise SystemExit(cli.run(main))`"
    assert command_of(module), f"no `cellang` command runs cellang/cli/{module}.py"


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_is_a_thin_wrapper_of_its_command(script: str) -> None:
    text = (REPO_ROOT / "scripts" / f"{script}.py").read_text()
    assert f'run_module("{script}")' in text and "sys.path" not in text
    assert len([line for line in text.splitlines() if line.strip()]) <= 4


@pytest.mark.parametrize("ratio", [0.01, 0.3, 0.5, 0.8, 0.99])
def test_masking_hides_round_ratio_times_n_genes_at_least_1_at_most_n_minus_1(ratio: float) -> None:
    pathways = [(f"P{n}", tuple(f"G{i}" for i in range(n))) for n in range(2, 40)]
    for (_, genes), case in zip(pathways, bench.make_cases(pathways, ratio, seed=0)):
        n = len(genes)
        assert len(case.masked) == min(max(round(ratio * n), 1), n - 1)
        assert sorted(case.masked + case.prompt) == sorted(genes)
