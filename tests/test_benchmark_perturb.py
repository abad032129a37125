"""scripts/benchmark_perturb.py end to end on a few HSMM cells with a random-weight encoder."""

from __future__ import annotations

import json

import torch

from tests.scripts import load_script


def test_benchmark_rows_agree_and_report_arithmetic(tmp_path) -> None:
    torch.set_num_threads(1)
    script = load_script("benchmark_perturb")
    out = tmp_path / "perturb"
    assert script.main(["--random-init", "--cells", "3", "--naive-cells", "1", "--peak-seconds", "0.05",
                        "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    (row,) = result["rows"]
    assert row["max_abs_difference"] <= result["tolerance"]
    assert row["full_cells"] == 3 and row["naive_cells"] == 1 and row["full_pairs"] > row["naive_pairs"] > 0
    assert row["matmul_peak_gflops"] > 0 and row["naive_gflops"] > 0 and row["batched_gflops"] > 0
    assert row["speedup_ceiling_vs_naive"] == row["matmul_peak_gflops"] / row["naive_gflops"]
    screened = row["screen"]  # on the same cells and plan as the exact run
    assert 0 < screened["exact_pairs"] <= row["full_pairs"] and screened["stride"] == 32
    assert all(0.0 <= screened[f"recall_top{n}_min_cells{m}"] <= 1.0 for n in (50, 100) for m in (1, 3))
    text = out.with_suffix(".md").read_text()
    assert "speedup ceiling over naive" in text and "--random-init" in text and "candidate genes" in text


def test_plan_flops_counts_each_deletion_one_token_shorter() -> None:
    import numpy as np

    from cellang.models.encoder import CellEncoder, EncoderConfig
    from cellang.perturbation.engine import plan_perturbations

    script = load_script("benchmark_perturb")
    encoder = CellEncoder(EncoderConfig(n_genes=20, n_layer=1, n_head=2, n_embd=8, mode="rank", n_bins=0, max_len=8))
    tokens = [np.array([1, 5, 6, 7]), np.array([1, 9])]  # 3 deletions of a 4-token cell, 1 of a 2-token cell
    plan = plan_perturbations(tokens, None, "delete")
    assert script.plan_flops(encoder, tokens, plan) == 3 * encoder.trunk_flops(3) + encoder.trunk_flops(1)
