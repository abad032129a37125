"""Benchmark the batched in-silico deletion engine against a naive loop (one forward pass per gene).

    cellang benchmark perturb                      # 500 cells, every expressed gene, CPU (+ CUDA)
    cellang benchmark perturb --cells 40 --naive-cells 2 --out /tmp/quick   # a quick look

Same model (checkpoints/cells-rank), same cells, same plan: the naive loop edits each encoding as a
Python list and runs one forward pass per perturbed gene; the batched engine builds every perturbed
encoding by index arithmetic on the device and runs them in token-budgeted batches. Both score the
shift of the mean-pooled embedding and the shift toward the myoblast mean; the scores must agree within
--tolerance. Cells: HSMM has 271 cells, so --cells 500 draws 500 of them WITH replacement (seed 0),
myotubes and differentiating cells and myoblasts alike; every gene of each cell's rank encoding is
deleted. Peak memory: ru_maxrss of the process (CPU) and torch.cuda.max_memory_allocated (CUDA).
Arithmetic: the FLOPs of the encoder's matmuls per perturbed encoding (CellEncoder.trunk_flops), the
rate each method reaches, and the device's measured large-matmul rate at the same precision: a ceiling
no batching can pass, so peak / naive bounds the speedup any exact engine can have on that device.
Writes results/benchmark_perturb.json and .md.
"""

from __future__ import annotations

import platform
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from cellang import checkpoints, cli
from cellang.cells import load_atlas_dataset
from cellang.cells.io import subset_cells
from cellang.device import describe_device, pick_device
from cellang.paths import CHECKPOINT_DIR, REPO_ROOT
from cellang.perturbation.engine import Perturber, plan_perturbations
from cellang.perturbation.naive import naive_scores
from cellang.perturbation.screen import CANDIDATES, CELLS_PER_GENE, STRIDE, screen
from cellang.perturbation.stats import rank_genes

SCREEN_MIN_CELLS = 3  # the ranking's default floor of cells per gene (a gene scored in fewer is not ranked)


def load_model(checkpoint: Path, random_init: bool):  # type: ignore[no-untyped-def]
    """(encoder, tokeniser, description). random_init: the default cells-rank architecture with random
    weights and a tokeniser fit on HSMM, for timing only (timings do not depend on the weights)."""
    if not random_init:
        from cellang.embedding.loading import load_cell_encoder

        encoder, tokenizer, record = load_cell_encoder("cells-rank", checkpoint)
        return encoder, tokenizer, f"{checkpoint.relative_to(REPO_ROOT) if checkpoint.is_relative_to(REPO_ROOT) else checkpoint} " \
                                   f"({record.get('parameters', encoder.num_parameters()):,} parameters)"
    from cellang.models.encoder import CellEncoder, EncoderConfig
    from cellang.tokenizers.rank import RankTokenizer

    max_len = EncoderConfig.max_len  # the shipped encoder's length, so timings match the real model's
    tokenizer = RankTokenizer.fit([load_atlas_dataset("hsmm")], max_len=max_len)
    torch.manual_seed(0)
    encoder = CellEncoder(EncoderConfig(n_genes=len(tokenizer.vocabulary), mode="rank", n_bins=0)).eval()
    return encoder, tokenizer, f"random-init cells-rank architecture ({encoder.num_parameters():,} parameters)"


def matmul_peak_gflops(device: str, precision: str, size: int = 2048, seconds: float = 2.0) -> float:
    """Best rate (GFLOP/s) of repeated size x size matmuls at `precision` on `device`: what the
    device's matrix units reach on work far larger and squarer than a small encoder's."""
    target = pick_device(device)
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(target, dtype)
    b = torch.randn(size, size, generator=generator).to(target, dtype)
    repeats = 4 if target.type == "cpu" else 50  # enough work per timing to dwarf the timer and launches
    best, spent = 0.0, 0.0
    while spent < seconds:
        if target.type == "cuda":
            torch.cuda.synchronize(target)
        began = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if target.type == "cuda":
            torch.cuda.synchronize(target)
        elapsed = time.perf_counter() - began
        spent += elapsed
        best = max(best, repeats * 2 * size**3 / elapsed / 1e9)
    return best


def plan_flops(encoder, tokens: list[np.ndarray], plan) -> int:  # type: ignore[no-untyped-def]
    """Matmul FLOPs of embedding every perturbed encoding of a deletion plan (each one token shorter)."""
    lengths, counts = np.unique(np.array([len(tokens[row]) - 1 for row in plan.rows], dtype=np.int64),
                                return_counts=True)
    return int(sum(int(count) * encoder.trunk_flops(int(length)) for length, count in zip(lengths, counts)))


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run_device(device: str, precision: str, encoder, tokens, goal_tokens, args,  # type: ignore[no-untyped-def]
               reference: dict | None) -> tuple[dict, dict]:
    """One row: naive loop and batched engine at `precision` on `device`. reference: the float32 row's
    scores on the same device (naive on the small cells, batched on all), which bf16 is compared to."""
    target = pick_device(device)
    perturber = Perturber(encoder, pooling="mean", device=device, max_batch_tokens=args.max_batch_tokens,
                          precision=precision)
    goal = (reference or {}).get("goal")
    if goal is None:
        goal = Perturber(encoder, pooling="mean", device=device).embed(goal_tokens).mean(0)
    small = tokens[: args.naive_cells]
    small_plan = plan_perturbations(small, None, "delete")
    naive = naive_scores(encoder, small, small_plan, pooling="mean", goal=goal, device=device, precision=precision)
    batched_small = perturber.score(small, small_plan, goal)
    diff = max_difference(naive, batched_small)
    if diff > args.tolerance:
        raise SystemExit(f"{device} {precision}: batched and naive scores differ by {diff:.3g} > {args.tolerance}")

    plan = plan_perturbations(tokens, None, "delete")
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    rss_before = max_rss_mb()
    tracemalloc.start()
    full = perturber.score(tokens, plan, goal)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = {
        "device": describe_device(target), "precision": precision, "max_batch_tokens": perturber.max_batch_tokens,
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
    row["naive_gflops"] = plan_flops(encoder, small, small_plan) / naive.seconds / 1e9
    row["batched_gflops"] = plan_flops(encoder, tokens, plan) / full.seconds / 1e9
    row["matmul_peak_gflops"] = matmul_peak_gflops(device, precision, seconds=args.peak_seconds)
    row["speedup_ceiling_vs_naive"] = row["matmul_peak_gflops"] / row["naive_gflops"]
    if reference is not None:
        row["vs_float32"] = {
            "naive_pairs_per_s": reference["naive_pairs_per_s"],
            "speedup_full_vs_float32_naive_rate": row["full_pairs_per_s"] / reference["naive_pairs_per_s"],
            "max_abs_difference_naive": max_difference(reference["naive"], naive),
            "max_abs_difference_full": max_difference(reference["full"], full),
            "spearman_goal_shift_full": float(stats.spearmanr(reference["full"].goal_shift, full.goal_shift)[0]),
            "spearman_shift_full": float(stats.spearmanr(reference["full"].shift, full.shift)[0]),
        }
    if target.type == "cuda":
        row["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(target) / 1024**2
    if precision == "float32" and args.screen_candidates:
        row["screen"] = screen_row(perturber, tokens, plan, goal, full, args, row["naive_pairs_per_s"])
    encoder.to("cpu")
    return row, {"goal": goal, "naive": naive, "full": full, "naive_pairs_per_s": row["naive_pairs_per_s"]}


def gene_ranking(plan, scores, min_cells: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Token ids ranked by mean goal shift (rank_genes, genes scored in >= min_cells cells), best first."""
    frame = pd.DataFrame({"cell": plan.rows, "gene": plan.gene_ids.astype(str), "shift": scores.shift,
                          "goal_shift": scores.goal_shift})
    return [int(g) for g in rank_genes(frame, score="goal_shift", min_cells=min_cells)["gene"]]


def screen_row(perturber, tokens, plan, goal, exact, args, naive_rate: float) -> dict:  # type: ignore[no-untyped-def]
    """The two-stage screen on the same cells and plan as the exact run: agreement and end-to-end speed."""
    screened = screen(perturber, tokens, plan, goal, candidates=args.screen_candidates,
                      cells_per_gene=args.screen_cells_per_gene, stride=args.screen_stride,
                      min_cells=SCREEN_MIN_CELLS, seed=args.seed)
    rate = len(plan) / screened.seconds
    out = {"candidates": args.screen_candidates, "cells_per_gene": args.screen_cells_per_gene,
           "stride": args.screen_stride, "min_cells": SCREEN_MIN_CELLS, "candidate_genes": screened.candidates,
           "exact_pairs": int(screened.exact.sum()), "seconds": screened.seconds,
           "pairs_per_s": rate, "speedup_vs_naive": rate / naive_rate,
           "spearman_estimate_vs_exact": float(stats.spearmanr(screened.estimate, exact.goal_shift)[0]),
           "spearman_screen_vs_exact": float(stats.spearmanr(screened.goal_shift, exact.goal_shift)[0])}
    for min_cells in (1, SCREEN_MIN_CELLS):
        truth, found = gene_ranking(plan, exact, min_cells), gene_ranking(plan, screened, min_cells)
        for n in (50, 100):
            out[f"recall_top{n}_min_cells{min_cells}"] = len(set(truth[:n]) & set(found[:n])) / n
    return out


def max_difference(a, b) -> float:  # type: ignore[no-untyped-def]
    return float(max(np.abs(a.shift - b.shift).max(), np.abs(a.goal_shift - b.goal_shift).max()))


def markdown(result: dict) -> str:
    lines = [
        "# In-silico deletion: batched engine vs naive loop", "",
        f"Model: {result['model']}. Cells: {result['cells_note']}. Pooling: mean of the gene states; every gene "
        f"of each cell's rank encoding deleted; scores = shift and shift toward the myoblast mean. torch threads = "
        f"{result['threads']}; {result['platform']}. Naive = one forward pass per perturbed gene; both at the "
        f"row's precision; max abs diff = largest |naive - batched| score on the naive cells.", "",
        "| device | precision | batch tokens | naive pairs/s | batched pairs/s (same pairs) | speedup | max abs diff | "
        "full run | full pairs/s | full time | peak memory |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in result["rows"]:
        memory = f"RSS {r['peak_rss_mb']:,.0f} MB" + (f"; CUDA {r['cuda_peak_allocated_mb']:,.0f} MB"
                                                        if "cuda_peak_allocated_mb" in r else "")
        lines.append(f"| {r['device']} | {r['precision']} | {r['max_batch_tokens']:,} | {r['naive_pairs_per_s']:,.1f} | "
                     f"{r['batched_same_pairs_per_s']:,.1f} | {r['speedup_same_pairs']:.2f}x | "
                     f"{r['max_abs_difference']:.1e} | {r['full_cells']} cells, {r['full_pairs']:,} pairs | "
                     f"{r['full_pairs_per_s']:,.1f} | {r['full_seconds'] / 60:.1f} min | {memory} |")
    lines += ["", "Arithmetic rate: useful matmul FLOPs of the encoder per second, against the device's measured "
              "2048 x 2048 matmul rate at the same precision (the most any exact engine could reach there):", "",
              "| device | precision | naive GFLOP/s | batched GFLOP/s | matmul peak GFLOP/s | naive at % of peak | "
              "speedup ceiling over naive |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['device']} | {r['precision']} | {r['naive_gflops']:,.1f} | {r['batched_gflops']:,.1f} | "
                     f"{r['matmul_peak_gflops']:,.1f} | {100 * r['naive_gflops'] / r['matmul_peak_gflops']:.0f}% | "
                     f"{r['speedup_ceiling_vs_naive']:.1f}x |")
    compared = [r for r in result["rows"] if "vs_float32" in r]
    if compared:
        lines += ["", "bf16 against float32 on the same device (same cells, same plan):", "",
                  "| device | full pairs/s vs float32 naive | max abs diff (naive) | max abs diff (full) | "
                  "Spearman goal shift | Spearman shift |", "|---|---:|---:|---:|---:|---:|"]
        for r in compared:
            v = r["vs_float32"]
            lines.append(f"| {r['device']} | {v['speedup_full_vs_float32_naive_rate']:.2f}x | "
                         f"{v['max_abs_difference_naive']:.1e} | {v['max_abs_difference_full']:.1e} | "
                         f"{v['spearman_goal_shift_full']:.4f} | {v['spearman_shift_full']:.4f} |")
    screened = [r for r in result["rows"] if "screen" in r]
    if screened:
        v = screened[0]["screen"]
        lines += ["", "Two-stage screen (cellang/perturbation/screen.py: every deletion estimated at once -- "
                  "removal to first order from one forward and one backward pass per cell, the position shift exactly "
                  f"once every {v['stride']} positions and interpolated -- then the {v['candidates']} genes with the "
                  f"best estimated ranking score among genes in >= {v['min_cells']} cells, and half as many among all "
                  f"genes, scored exactly in up to {v['cells_per_gene']} cells each, their other cells corrected by "
                  "the gene's mean error), on the same cells and plan as the exact full run; recall = share of the exact "
                  "ranking's top n genes (by the shrunk mean goal shift, as the ranking orders them) in the screen's "
                  "top n:", "",
                  "| device | candidate genes | exact pairs | end-to-end pairs/s | vs naive | "
                  "Spearman, estimate only | Spearman, screen | recall top 50 / 100 | same, genes in >= 3 cells |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in screened:
            v = r["screen"]
            lines.append(f"| {r['device']} | {v['candidate_genes']} | {v['exact_pairs']:,} | {v['pairs_per_s']:,.0f} | "
                         f"{v['speedup_vs_naive']:.1f}x | {v['spearman_estimate_vs_exact']:.3f} | "
                         f"{v['spearman_screen_vs_exact']:.3f} | {v['recall_top50_min_cells1']:.2f} / "
                         f"{v['recall_top100_min_cells1']:.2f} | "
                         f"{v[f'recall_top50_min_cells{SCREEN_MIN_CELLS}']:.2f} / "
                         f"{v[f'recall_top100_min_cells{SCREEN_MIN_CELLS}']:.2f} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT_DIR / "cells-rank")
    parser.add_argument("--random-init", action="store_true", help="time the architecture with random weights")
    parser.add_argument("--cells", type=cli.at_least(1), default=500,
                        help="cells for the full run (HSMM, with replacement)")
    parser.add_argument("--naive-cells", type=cli.at_least(1), default=24, help="cells the naive loop is timed on")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                        help="default: cpu, and cuda when present")
    parser.add_argument("--max-batch-tokens", type=cli.at_least(1), default=None, help="default: by device")
    parser.add_argument("--tolerance", type=cli.number(0, above=True), default=1e-4,
                        help="largest allowed |naive - batched| of a score at the same precision")
    parser.add_argument("--bf16", action="store_true",
                        help="also time bf16 autocast (naive and batched) and compare its scores with float32")
    parser.add_argument("--peak-seconds", type=cli.number(0, above=True), default=2.0, help="time spent measuring the matmul peak")
    parser.add_argument("--screen-candidates", type=cli.at_least(0), default=CANDIDATES,
                        help="genes the two-stage screen re-scores exactly (0: no screen row)")
    parser.add_argument("--screen-cells-per-gene", type=cli.at_least(1), default=CELLS_PER_GENE,
                        help="exact deletions per candidate gene")
    parser.add_argument("--screen-stride", type=cli.at_least(1), default=STRIDE,
                        help="positions between exact position-shift evaluations")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_perturb")
    args = parser.parse_args(argv)
    if args.naive_cells > args.cells:
        parser.error(f"argument --naive-cells: {args.naive_cells} is more than --cells {args.cells}")
    if not args.random_init and checkpoints.why_missing("cells-rank", args.checkpoint):
        raise FileNotFoundError(checkpoints.why_missing("cells-rank", args.checkpoint) + " Or pass --random-init.")
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for device in devices:
        pick_device(device)  # --devices cuda without a GPU fails here, not after the CPU rows
    encoder, tokenizer, model_note = load_model(args.checkpoint, args.random_init)
    # Made once the inputs are known good and before any work, so an --out inside a file fails early.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    hsmm = load_atlas_dataset("hsmm")
    all_tokens = tokenizer.tokenize(hsmm).genes
    chosen = np.random.default_rng(args.seed).choice(hsmm.n_obs, size=args.cells, replace=True)
    tokens = [all_tokens[i] for i in chosen]
    goal_rows = np.flatnonzero(hsmm.obs["state"].astype(str).to_numpy() == "myoblast")
    goal_tokens = tokenizer.tokenize(subset_cells(hsmm, goal_rows)).genes
    rows = []
    for device in devices:
        reference = None
        for precision in ("float32", *(["bfloat16"] if args.bf16 else [])):
            began = time.perf_counter()
            row, scores = run_device(device, precision, encoder, tokens, goal_tokens, args, reference)
            rows.append(row)
            reference = reference or scores
            print(f"{device} {precision}: done in {time.perf_counter() - began:.0f} s", flush=True)
    result = {
        "model": model_note, "threads": torch.get_num_threads(),
        "platform": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "cells_note": f"{args.cells} HSMM cells drawn with replacement (seed {args.seed}) from 271; "
                      f"{len(set(chosen.tolist()))} distinct; mean {np.mean([len(t) - 1 for t in tokens]):.1f} genes "
                      f"per encoding; naive loop timed on the first {args.naive_cells}",
        "tolerance": args.tolerance, "rows": rows,
        "command": cli.command_line("benchmark_perturb", argv),
    }
    cli.write_results(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
