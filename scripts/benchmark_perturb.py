"""Benchmark the batched in-silico deletion engine against a naive loop (one forward pass per gene).

    python scripts/benchmark_perturb.py                      # 500 cells, every expressed gene, CPU (+ CUDA)
    python scripts/benchmark_perturb.py --cells 40 --naive-cells 2 --out /tmp/quick   # a quick look

Same model (checkpoints/cells-rank), same cells, same plan: the naive loop edits each encoding as a
Python list and runs one forward pass per perturbed gene; the batched engine builds every perturbed
encoding by index arithmetic on the device and runs them in token-budgeted batches. Both score the
shift of the mean-pooled embedding and the shift toward the myoblast mean; the scores must agree within
--tolerance. Cells: HSMM has 271 cells, so --cells 500 draws 500 of them WITH replacement (seed 0),
myotubes and differentiating cells and myoblasts alike; every gene of each cell's rank encoding is
deleted. Peak memory: ru_maxrss of the process (CPU) and torch.cuda.max_memory_allocated (CUDA).
Writes results/benchmark_perturb.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cellang_core.cells import load_atlas_dataset  # noqa: E402
from cellang_core.cells.io import subset_cells  # noqa: E402
from cellang_core.device import describe_device, pick_device  # noqa: E402
from cellang_core.paths import CHECKPOINT_DIR, REPO_ROOT  # noqa: E402
from cellang_core.tasks.perturb import Perturber, naive_scores, plan_perturbations  # noqa: E402


def load_model(checkpoint: Path, random_init: bool):  # type: ignore[no-untyped-def]
    """(encoder, tokeniser, description). random_init: the default cells-rank architecture with random
    weights and a tokeniser fit on HSMM, for timing only (timings do not depend on the weights)."""
    if not random_init:
        from cellang_core.tasks.embed import load_cell_encoder

        encoder, tokenizer, record = load_cell_encoder("cells-rank", checkpoint)
        return encoder, tokenizer, f"{checkpoint.relative_to(REPO_ROOT) if checkpoint.is_relative_to(REPO_ROOT) else checkpoint} " \
                                   f"({record.get('parameters', encoder.num_parameters()):,} parameters)"
    from cellang_core.models.encoder import CellEncoder, EncoderConfig
    from cellang_core.tokenizers.rank import RankTokenizer

    tokenizer = RankTokenizer.fit([load_atlas_dataset("hsmm")], max_len=256, min_cells=10)
    torch.manual_seed(0)
    encoder = CellEncoder(EncoderConfig(n_genes=len(tokenizer.vocabulary), mode="rank", n_bins=0, max_len=256)).eval()
    return encoder, tokenizer, f"random-init cells-rank architecture ({encoder.num_parameters():,} parameters)"


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run_device(device: str, encoder, tokens, goal_tokens, args) -> dict:  # type: ignore[no-untyped-def]
    target = pick_device(device)
    perturber = Perturber(encoder, pooling="mean", device=device, max_batch_tokens=args.max_batch_tokens)
    goal = perturber.embed(goal_tokens).mean(0)
    small = tokens[: args.naive_cells]
    small_plan = plan_perturbations(small, None, "delete")
    naive = naive_scores(encoder, small, small_plan, pooling="mean", goal=goal, device=device)
    batched_small = perturber.score(small, small_plan, goal)
    diff = float(max(np.abs(naive.shift - batched_small.shift).max(), np.abs(naive.goal_shift - batched_small.goal_shift).max()))
    if diff > args.tolerance:
        raise SystemExit(f"{device}: batched and naive scores differ by {diff:.3g} > {args.tolerance}")

    plan = plan_perturbations(tokens, None, "delete")
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    rss_before = max_rss_mb()
    tracemalloc.start()
    full = perturber.score(tokens, plan, goal)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = {
        "device": describe_device(target), "max_batch_tokens": perturber.max_batch_tokens,
        "naive_pairs": len(small_plan), "naive_cells": len(small),
        "naive_pairs_per_s": len(small_plan) / naive.seconds,
        "batched_same_pairs_per_s": len(small_plan) / batched_small.seconds,
        "speedup_same_pairs": naive.seconds / batched_small.seconds,
        "max_abs_difference": diff,
        "full_cells": len(tokens), "full_pairs": len(plan), "full_seconds": full.seconds,
        "full_pairs_per_s": len(plan) / full.seconds, "full_batches": full.batches,
        "speedup_full_vs_naive_rate": (len(plan) / full.seconds) / (len(small_plan) / naive.seconds),
        "peak_rss_mb": max_rss_mb(), "rss_before_full_mb": rss_before,
        "python_peak_mb_during_full": python_peak / 1024**2,
    }
    if target.type == "cuda":
        row["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(target) / 1024**2
    encoder.to("cpu")
    return row


def markdown(result: dict) -> str:
    lines = [
        "# In-silico deletion: batched engine vs naive loop", "",
        f"Model: {result['model']}. Cells: {result['cells_note']}. Pooling: mean of the gene states; every gene of each cell's rank "
        f"encoding deleted; scores = shift and shift toward the myoblast mean. torch threads = {result['threads']}; "
        f"{result['platform']}.", "",
        "| device | batch tokens | naive pairs/s | batched pairs/s (same pairs) | speedup | max abs diff | full run | "
        "full pairs/s | full time | peak memory |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in result["rows"]:
        memory = f"RSS {r['peak_rss_mb']:,.0f} MB" + (f"; CUDA {r['cuda_peak_allocated_mb']:,.0f} MB"
                                                        if "cuda_peak_allocated_mb" in r else "")
        lines.append(f"| {r['device']} | {r['max_batch_tokens']:,} | {r['naive_pairs_per_s']:,.1f} | {r['batched_same_pairs_per_s']:,.1f} | "
                     f"{r['speedup_same_pairs']:.2f}x | {r['max_abs_difference']:.1e} | {r['full_cells']} cells, "
                     f"{r['full_pairs']:,} pairs | {r['full_pairs_per_s']:,.1f} | {r['full_seconds'] / 60:.1f} min | "
                     f"{memory} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT_DIR / "cells-rank")
    parser.add_argument("--random-init", action="store_true", help="time the architecture with random weights")
    parser.add_argument("--cells", type=int, default=500, help="cells for the full run (HSMM, with replacement)")
    parser.add_argument("--naive-cells", type=int, default=8, help="cells the naive loop is timed on")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="default: by device")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "benchmark_perturb")
    args = parser.parse_args(argv)
    if not args.random_init and not (args.checkpoint / "model.safetensors").is_file():
        print(f"error: no cells-rank checkpoint in {args.checkpoint}; train it or pass --random-init", file=sys.stderr)
        return 2
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    encoder, tokenizer, model_note = load_model(args.checkpoint, args.random_init)
    hsmm = load_atlas_dataset("hsmm")
    all_tokens = tokenizer.tokenize(hsmm).genes
    chosen = np.random.default_rng(args.seed).choice(hsmm.n_obs, size=args.cells, replace=True)
    tokens = [all_tokens[i] for i in chosen]
    goal_rows = np.flatnonzero(hsmm.obs["state"].astype(str).to_numpy() == "myoblast")
    goal_tokens = tokenizer.tokenize(subset_cells(hsmm, goal_rows)).genes
    rows = []
    for device in devices:
        began = time.perf_counter()
        rows.append(run_device(device, encoder, tokens, goal_tokens, args))
        print(f"{device}: done in {time.perf_counter() - began:.0f} s", flush=True)
    result = {
        "model": model_note, "threads": torch.get_num_threads(),
        "platform": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "cells_note": f"{args.cells} HSMM cells drawn with replacement (seed {args.seed}) from 271; "
                      f"{len(set(chosen.tolist()))} distinct; mean {np.mean([len(t) - 1 for t in tokens]):.1f} genes "
                      f"per encoding; naive loop timed on the first {args.naive_cells}",
        "tolerance": args.tolerance, "rows": rows,
        "command": "python " + " ".join(["scripts/benchmark_perturb.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
