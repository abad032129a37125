"""Pathway-completion benchmark: the pathway GPT against baselines on the same masks.

    cellang benchmark pathways                     # the corpus's 1000 benchmark pathways
    cellang benchmark pathways --gmt my_sets.gmt   # any external GMT as the test set
    cellang benchmark pathways --limit 100         # a quick look

Masks 80% of each pathway (seeded), predicts as many genes as were masked with every method, and
reports overlap, recall, precision, one-sided Fisher p (universe = vocabulary), BH q, the number
significant at q < 0.05, median recall and the number with zero overlap. Writes JSON (summary and
per pathway) and a markdown table; prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cellang import cli
from cellang.checkpoints import checkpoint_exists
from cellang.completion import baselines
from cellang.completion import benchmark as bench
from cellang.completion.completer import (
    COMPLETER_CONFIG, PathwayCompleter, load_completer, retrieval_settings)
from cellang.completion import training as pathway_training
from cellang.completion.gbm_reader import train_gbm_reader
from cellang.completion.neighbours import Datastore
from cellang.completion.rerank import RerankCompleter
from cellang.completion.rerank_training import leave_group_out_datastore
from cellang.completion.retrieval import SetRetrievalCompleter
from cellang.completion.set_model import SetModelCompleter
from cellang.completion.tuning import validation_split
from cellang.corpus import load_corpus
from cellang.genes import load_resolver
from cellang.paths import CHECKPOINT_DIR, REPO_ROOT
from cellang.training import portable_command_line

METHODS = ("shipped", "pathway-gpt", "set-transformer", "retrieval-reader", "gbm-reader", "set-retrieval",
           "cooccurrence", "dae", "frequency", "random")
LATENCY_PATHWAYS = 20  # benchmark pathways completed one at a time by the shipped completer, as the app does


def gmt_file(text: str) -> Path:
    """--gmt: an existing file, checked before the corpus loads."""
    try:
        return cli.existing_file(text)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"cannot use {Path(text).name} as a test set: {error}") from None


def build_completers(methods: list[str], train_sets: list[tuple[str, ...]], universe: list[str],
                     model_dir: Path, dae_dir: Path, seed: int, set_dir: Path | None = None,
                     rerank_dir: Path | None = None) -> list[bench.Completer]:
    completers: list[bench.Completer] = []
    tuned = model_dir / COMPLETER_CONFIG
    for method in methods:
        if method == "shipped":  # whatever completer.json chose on validation, under its own name
            if checkpoint_exists(model_dir) and not tuned.exists():
                raise FileNotFoundError(f"{tuned.name} is missing: run cellang tune completer first")
            completers.append(Shipped(load_completer(model_dir, train_sets)))
        elif method == "pathway-gpt":
            completers.append(PathwayCompleter.load(model_dir))
        elif method == "set-retrieval":
            alpha, power = retrieval_settings(model_dir) if tuned.exists() else (1.0, 2.0)
            completers.append(SetRetrievalCompleter(train_sets, universe, alpha=alpha, power=power))
        elif method == "cooccurrence":
            completers.append(baselines.CooccurrenceCompleter(train_sets, universe))
        elif method == "dae":
            if not checkpoint_exists(dae_dir):
                # the DAE is a baseline, not shipped: train it here, with its canonical command
                dae_dir.mkdir(parents=True, exist_ok=True)  # a --dae-dir inside a file: one error, from here
                print(f"training the DAE baseline into {dae_dir.name}/ (about 3 minutes on a CPU)")
                code = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "pathway-dae",
                                       "--out", str(dae_dir)]).returncode
                if code:  # train.py has said why on standard error
                    raise ChildProcessError(f"training the DAE baseline into {dae_dir.name}/ failed (exit {code})")
            completers.append(baselines.DAECompleter.load(dae_dir))
        elif method == "set-transformer":
            completers.append(SetModelCompleter.load(set_dir or CHECKPOINT_DIR / "pathway-set"))
        elif method == "retrieval-reader":
            completers.append(RerankCompleter.load(rerank_dir or CHECKPOINT_DIR / "pathway-rerank", train_sets,
                                                   universe))
        elif method == "gbm-reader":  # the reader's baseline: same examples and features, trained here
            print("training the gradient-boosted reader on leave-group-out examples (about two minutes)")
            store, validation_rows = leave_group_out_datastore(load_corpus(), universe)
            completers.append(train_gbm_reader(store, seed=seed, exclude_rows=validation_rows,
                                               rank_store=Datastore(train_sets, universe)))
        elif method == "frequency":
            completers.append(baselines.FrequencyCompleter(train_sets, universe))
        elif method == "random":
            completers.append(baselines.RandomCompleter(universe, seed))
    return completers


class Shipped:
    """The shipped completer under the benchmark's name for it, 'shipped (<what it is>)'."""

    def __init__(self, completer: PathwayCompleter) -> None:
        self.completer = completer
        self.name = f"shipped ({completer.name})"

    def rank(self, prompts: list[tuple[str, ...]], n: list[int]) -> list[list[tuple[str, float]]]:
        return self.completer.rank(prompts, n)


def single_completion_seconds(completer: PathwayCompleter, pathways: list[tuple[str, tuple[str, ...]]],
                              mask_ratio: float, seed: int) -> dict:
    """Seconds for the shipped completer to complete each of the first LATENCY_PATHWAYS pathways alone, as the
    app asks it (harmonisation, masking, ranking and evidence)."""
    resolver = load_resolver()
    times = []
    for name, genes in pathways[:LATENCY_PATHWAYS]:
        started = time.perf_counter()
        completer.complete(genes, mask_ratio=mask_ratio, seed=seed, resolver=resolver)
        times.append(time.perf_counter() - started)
    return {"method": completer.name, "pathways": len(times), "median_s": float(np.median(times)),
            "max_s": float(np.max(times))}


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--gmt", type=gmt_file,
                        help="external GMT to use as the test set (default: corpus benchmark)")
    parser.add_argument("--min-size", type=cli.at_least(2), default=bench.MIN_EXTERNAL_SIZE,
                        help="--gmt: sets need at least this many vocabulary genes after harmonisation")
    parser.add_argument("--max-size", type=cli.at_least(2), default=None,
                        help="--gmt: and at most this many (default: half the vocabulary; the corpus's own QC "
                             "keeps 500)")
    parser.add_argument("--mask-ratio", type=cli.fraction, default=0.8, help="share of each pathway hidden")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--limit", type=cli.at_least(1), default=None, help="only the first N pathways")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--part", choices=("benchmark", "validation"), default="benchmark",
                        help="validation: the GPT's held-out training sets without a near-twin, completed from the "
                             "other training sets (what tuning uses); the benchmark is never read")
    parser.add_argument("--set-dir", type=Path, default=CHECKPOINT_DIR / "pathway-set")
    parser.add_argument("--rerank-dir", type=Path, default=CHECKPOINT_DIR / "pathway-rerank")
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-gpt")
    parser.add_argument("--dae-dir", type=cli.output_dir, default=CHECKPOINT_DIR / "pathway-dae")
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_pathways",
                        help="output prefix: writes PREFIX.json and PREFIX.md")
    args = parser.parse_args(argv)
    if args.gmt is not None:
        bench.read_external(args.gmt)  # an unreadable file fails before the corpus and gene table load

    corpus = load_corpus()
    train_sets = [p.genes for p in corpus.split("train")]
    universe = corpus.genes
    started = time.perf_counter()
    if args.gmt is not None:
        external = bench.load_external(args.gmt, load_resolver(), set(universe), train_sets,
                                       min_size=args.min_size, max_size=args.max_size)
        pathways = external.pathways
        source = {"gmt": args.gmt.name, "sets_read": external.read, "sets_kept": len(pathways),
                  "unreadable_lines_skipped": external.skipped_lines,
                  "kept_sizes_after_harmonisation": list(external.sizes),
                  "too_small_after_harmonisation": len(external.too_small),
                  "too_large_after_harmonisation": len(external.too_large),
                  "dropped_too_small": external.too_small, "dropped_too_large": external.too_large,
                  f"near_duplicates_of_training_sets_jaccard_ge_{external.threshold}": external.near_duplicates}
        print(external.summary(args.gmt.name))
    elif args.part == "validation":
        split = validation_split(corpus, pathway_training.VAL_FRACTION)
        pathways, train_sets = split.pathways, split.datastore
        source = {"validation_pathways": len(pathways), "corpus_manifest_sha256": corpus.manifest_sha256}
    else:
        pathways = [(p.name, p.genes) for p in corpus.benchmark()]
        source = {"corpus_benchmark": len(pathways), "corpus_manifest_sha256": corpus.manifest_sha256}
    if args.limit is not None:
        pathways = pathways[: args.limit]
    if not pathways:
        raise ValueError("no pathway left to benchmark: the corpus has no benchmark sets")
    # Made once the inputs are known good and before any work, so an --out inside a file fails early.
    args.out.parent.mkdir(parents=True, exist_ok=True)

    completers = build_completers(args.methods, train_sets, universe, args.model_dir, args.dae_dir, args.seed,
                                  args.set_dir, args.rerank_dir)
    cases = bench.make_cases(pathways, args.mask_ratio, args.seed)
    per_case, summary = bench.run(cases, completers, len(universe), progress=print)
    shipped = next((c.completer for c in completers if isinstance(c, Shipped)), None)
    latency = single_completion_seconds(shipped, pathways, args.mask_ratio, args.seed) if shipped else None
    latency_line = (f"One pathway completed alone by the shipped completer ({latency['method']}, as the app does: "
                    f"harmonisation, masking, ranking, evidence): median {latency['median_s']:.2f} s, max "
                    f"{latency['max_s']:.2f} s over {latency['pathways']} pathways." if latency else "")
    novel = bench.novel_pathways([(case.name, case.genes) for case in cases], train_sets)
    _, novel_summary = bench.subset_view(per_case, novel)
    table = bench.markdown_table(summary)
    novel_title = (f"Novel: the {len(novel)} of {len(cases)} pathways with no training set at Jaccard >= "
                   f"{bench.NOVEL_JACCARD} (BH within them)")
    novel_table = bench.markdown_table(novel_summary) if novel else "(none)"
    print(f"All {len(cases)} pathways\n{table}\n\n{novel_title}\n{novel_table}\n{latency_line}")

    result = {
        "command": portable_command_line(sys.argv if argv is None else ["cellang", "benchmark", "pathways", *argv]),
        "mask_ratio": args.mask_ratio, "seed": args.seed, "universe_size": len(universe), "source": source,
        "wall_time_s": round(time.perf_counter() - started, 1), "single_completion": latency,
        "summary": summary.to_dict(orient="records"),
        "novel": {"jaccard_below": bench.NOVEL_JACCARD, "pathways": novel,
                  "summary": novel_summary.to_dict(orient="records")},
        "per_pathway": per_case.to_dict(orient="records"),
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(
        f"Command: `{result['command']}`\n\nAll {len(cases)} pathways:\n\n{table}\n\n{novel_title}:\n\n"
        f"{novel_table}\n\nUniverse: {len(universe)} genes; "
        f"{len(cases)} pathways; mask ratio {args.mask_ratio}; seed {args.seed}. ms per pathway: mean time of one "
        f"call ranking every pathway at once, features and model included.\n\n{latency_line}\n")
    print(f"wrote {args.out.with_suffix('.json').name} and {args.out.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
