"""Benchmark the streaming cell loader: throughput into token batches and peak memory, by corpus size.

    cellang benchmark cell-loading                              # 10k, 100k and 500k cells
    cellang benchmark cell-loading --sizes 2000 20000 --out /tmp/quick

Inputs are SCALE FIXTURES (cellang.cells.scale): cells resampled from the atlas's raw-count cells
(celltypist_immune, wu2020_tcells), labelled as fixtures, built once into --fixture-dir (about 10 KB a cell on
disk) and never used for biology. Each size runs in a fresh process, so ru_maxrss is that run's own peak:

* streaming: H5adCells + StreamingBatches with the shipped cells-rank tokeniser, batches of 32 cells, over
  --cells-per-run cells (all of them for sizes up to that);
* in memory (the atlas path): the whole file read, tokenised and batched, for sizes up to --in-memory-max;
* tiledbsoma-ml: the same cells copied once into a SOMA experiment (cellang.cells.soma) and read by
  tiledbsoma_ml.ExperimentDataset (shuffled mini-batches of 32), each tokenised, for sizes up to --soma-max.

It also times one CPU training step of the shipped cells-rank architecture on the loader's batches, to show
whether the loader or the model bounds a training step. Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

from cellang import cli
from cellang.paths import REPO_ROOT

BATCH = 32
SOURCES = ("celltypist_immune", "wu2020_tcells")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def fixture(folder: Path, n_cells: int) -> Path:
    from cellang.atlas import load_atlas_dataset
    from cellang.cells.scale import write_scale_fixture

    path = folder / f"scale_fixture_{n_cells}.h5ad"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        write_scale_fixture(partial, n_cells, [load_atlas_dataset(n) for n in SOURCES], seed=0)
        partial.rename(path)
        print(f"built {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def measure(mode: str, path: Path, max_cells: int) -> dict:
    """One measurement in this process (run through a child process: see main)."""
    import numpy as np
    import torch

    from cellang.cells.stream import H5adCells
    from cellang.embedding.loading import load_cell_encoder
    from cellang.embedding.streaming import StreamingBatches
    from cellang.embedding.training import make_batcher

    torch.set_num_threads(2)
    model, tokenizer, _ = load_cell_encoder("cells-rank")
    vocabulary = tokenizer.vocabulary
    baseline = peak_mb()
    started = time.perf_counter()
    if mode == "streaming":
        source = H5adCells([path])
        opened = time.perf_counter() - started
        held_out = np.zeros(source.n_cells, dtype=bool)
        batches = StreamingBatches(
            source, tokenizer, lambda cells, seed: make_batcher("rank", cells, vocabulary, batch_size=BATCH, seed=seed,
                                                                drop_last=True),
            batch_size=BATCH, seed=0, held_out=held_out)
        n_batches = min(max_cells, source.n_cells) // BATCH
        stream = batches(0)
    elif mode == "in memory":
        from cellang.cells import read_cells
        from cellang.cells.harmonise import harmonise_var

        adata, _ = harmonise_var(read_cells(path), id_source="var_names", aggregation="sum")
        cells = tokenizer.tokenize(adata)
        del adata
        opened = time.perf_counter() - started
        batcher = make_batcher("rank", cells, vocabulary, batch_size=BATCH, seed=0, drop_last=True)
        n_batches = min(max_cells, len(cells)) // BATCH
        stream = batcher.stream(0)
    served = 0
    first = time.perf_counter()
    if mode == "tiledbsoma-ml":
        stream, n_batches, opened = soma_ml_batches(path, tokenizer, max_cells)
        first = time.perf_counter()
    for tokens, _ in islice(stream, n_batches):
        served += len(tokens)
    loading = time.perf_counter() - first
    result = {"mode": mode, "cells_in_file": _cells(path), "cells_served": served, "open_s": round(opened, 2),
              "cells_per_s": round(served / loading, 1), "ms_per_batch": round(1000 * loading / n_batches, 2),
              "baseline_mb": round(baseline, 1), "peak_mb": round(peak_mb(), 1),
              "loader_mb": round(peak_mb() - baseline, 1)}
    if mode == "streaming":
        result["train_step_ms"] = round(train_step_ms(model, islice(batches(0), 6)), 1)
    return result


def soma_ml_batches(path: Path, tokenizer, max_cells: int):  # type: ignore[no-untyped-def]
    """(masked token batches from tiledbsoma_ml's shuffled mini-batches of the SOMA copy, how many, open s)."""
    import anndata as ad
    import pandas as pd
    import tiledbsoma as soma
    import tiledbsoma_ml

    from cellang.embedding.training import make_batcher

    started = time.perf_counter()
    experiment = soma.Experiment.open(str(soma_copy(path)))
    genes = experiment.ms["RNA"].var.read(column_names=["feature_name"]).concat().to_pandas()["feature_name"]
    dataset = tiledbsoma_ml.ExperimentDataset(experiment.axis_query("RNA"), layer_name="raw", batch_size=BATCH,
                                              shuffle=True, seed=0, return_sparse_X=True)
    opened = time.perf_counter() - started
    var = pd.DataFrame(index=genes.astype(str).to_numpy())

    def batches():
        for number, (matrix, obs) in enumerate(dataset):
            cells = ad.AnnData(X=matrix, var=var, obs=pd.DataFrame({"value_kind": ["counts"] * matrix.shape[0]},
                                                                     index=obs["soma_joinid"].astype(str)))
            batcher = make_batcher("rank", tokenizer.tokenize(cells), tokenizer.vocabulary, batch_size=BATCH,
                                   seed=number, drop_last=False)
            yield next(batcher.epoch_batches(0))

    return batches(), min(max_cells, _cells(path)) // BATCH, opened


def soma_copy(path: Path) -> Path:
    return path.with_suffix(".soma")


def train_step_ms(model, batches) -> float:  # type: ignore[no-untyped-def]
    """Mean wall time of a CPU training step (forward, backward, AdamW) on the given batches (first one warms up)."""
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for tokens, labels in batches:
        started = time.perf_counter()
        _, loss = model(tokens, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return 1000 * sum(times[1:]) / max(1, len(times) - 1)


def _cells(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as handle:
        return int(handle["X"].attrs["shape"][0])


def markdown(rows: list[dict], command: str) -> str:
    lines = [f"Measured by `{command}` ({platform.processor() or platform.machine()}, 2 threads); inputs are scale "
             "fixtures (atlas cells resampled), not biology.", "",
             "| loader | cells in file | cells served | open (s) | cells/s into batches | ms per batch of 32 | "
             "peak RSS (MB) | above baseline (MB) | train step (ms) |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['cells_in_file']:,} | {r['cells_served']:,} | {r['open_s']} | "
                     f"{r['cells_per_s']:,.0f} | {r['ms_per_batch']} | {r['peak_mb']:,.0f} | {r['loader_mb']:,.0f} | "
                     f"{r.get('train_step_ms', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=cli.at_least(BATCH * 2), nargs="+", default=[10_000, 100_000, 500_000])
    parser.add_argument("--cells-per-run", type=cli.at_least(BATCH), default=50_000,
                        help="cells each run serves (memory does not depend on it; time does)")
    parser.add_argument("--in-memory-max", type=cli.at_least(0), default=100_000,
                        help="largest size also loaded whole, the in-memory comparison")
    parser.add_argument("--soma-max", type=cli.at_least(0), default=100_000,
                        help="largest size also copied into a SOMA experiment and read by tiledbsoma_ml")
    parser.add_argument("--fixture-dir", type=cli.output_dir, default=REPO_ROOT / "build" / "scale_fixtures")
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_cell_loading",
                        help="output stem: writes STEM.json and STEM.md")
    parser.add_argument("--measure", nargs=3, metavar=("MODE", "FILE", "CELLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        mode, path, cells = args.measure
        print(json.dumps(measure(mode, Path(path), int(cells))))
        return 0
    command = "cellang benchmark cell-loading " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = []
    for size in args.sizes:
        path = fixture(args.fixture_dir, size)
        modes = ["streaming"] + (["in memory"] if size <= args.in_memory_max else [])
        if size <= args.soma_max:
            if not soma_copy(path).exists():
                from cellang.cells.soma import write_soma
                from cellang.cells.stream import H5adCells

                started = time.perf_counter()
                write_soma(H5adCells([path]), soma_copy(path))
                print(f"wrote the SOMA copy of {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
            modes.append("tiledbsoma-ml")
        for mode in modes:
            output = subprocess.run([sys.executable, __file__, "--measure", mode, str(path), str(args.cells_per_run)],
                                    check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    streaming = [r for r in rows if r["mode"] == "streaming"]
    flat = max(r["peak_mb"] for r in streaming) / min(r["peak_mb"] for r in streaming) - 1
    summary = {"peak_growth_smallest_to_largest": round(flat, 3), "flat_within_20_percent": flat <= 0.2,
               "loader_faster_than_training_step": all(r["ms_per_batch"] < r["train_step_ms"] for r in streaming)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"command": command.strip(), "batch_size": BATCH,
                                                          "rows": rows, "summary": summary}, indent=1) + "\n")
    table = markdown(rows, command.strip()) + (
        f"\nStreaming peak RSS grows {flat:+.1%} from {streaming[0]['cells_in_file']:,} to "
        f"{streaming[-1]['cells_in_file']:,} cells; the loader is "
        f"{'faster' if summary['loader_faster_than_training_step'] else 'NOT faster'} than a training step at "
        "every size.\n")
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
