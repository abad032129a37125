"""What the corpus alone buys: retrieval and co-occurrence before and after the sources added in a version.

    cellang benchmark corpus                                   # the shipped default corpus
    cellang benchmark corpus --corpus-dir data/corpus-extended --out results/benchmark_corpus_extended

Both rows of a method complete the same masked pathways over the same gene universe (the corpus's
genes); they differ only in their datastore: "before" holds the training sets of the sources of
earlier corpus versions, "after" adds the sources of ``--version`` (default 2). Reported on the frozen
1,000 benchmark pathways (all, and the novel ones with no training set at Jaccard >= 0.5) and on
validation pathways: the pathway GPT's held-out training sets with no near-twin in training, drawn
from the "before" training sets exactly as cellang tune completer draws them. For validation, the
"after" datastore leaves out every later-source set at Jaccard >= 0.5 to a validation pathway, the
rule the build applies to the benchmark. Writes PREFIX.json and PREFIX.md and prints the table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from cellang import checkpoints, cli
from cellang.completion import baselines
from cellang.completion import benchmark as bench
from cellang.completion.completer import retrieval_settings
from cellang.completion.retrieval import SetRetrievalCompleter
from cellang.completion.tuning import validation_split
from cellang.corpus import Corpus, load_corpus
from cellang.corpus.frozen import KEEP_OUT_JACCARD, load_frozen_benchmark
from cellang.corpus.qc import max_jaccard_to
from cellang.paths import CHECKPOINT_DIR, CORPUS_DIR, REPO_ROOT
from cellang.training import portable_command_line

MASK_RATIO = 0.8


def check_frozen_benchmark(corpus: Corpus) -> None:
    """The corpus's benchmark must be the frozen one, in its order, or before/after are not comparable."""
    frozen = [(p.name, tuple(p.genes)) for p in load_frozen_benchmark()]
    built = [(p.name, p.genes) for p in corpus.benchmark()]
    if built != frozen:
        raise ValueError("this corpus's benchmark pathways differ from the frozen benchmark: rebuild it with "
                         "`cellang build corpus`")


def added_in(corpus: Corpus) -> dict[str, int]:
    """Corpus version that added each source, from the manifest (1 when a manifest predates versions)."""
    return {s["key"]: int(s.get("added_in", 1)) for s in corpus.manifest.get("sources", [])}


def evaluate(cases: list[bench.Case], datastores: dict[str, list[tuple[str, ...]]], universe: list[str],
             alpha: float, power: float) -> pd.DataFrame:
    """Per-case scores of retrieval and co-occurrence over each datastore; methods read 'name (datastore)'."""
    completers = []
    for label, sets in datastores.items():
        for completer in (SetRetrievalCompleter(sets, universe, alpha=alpha, power=power),
                          baselines.CooccurrenceCompleter(sets, universe)):
            completer.name = f"{completer.name} ({label})"
            completers.append(completer)
    return bench.run(cases, completers, len(universe), progress=print)[0]


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--corpus-dir", type=cli.existing_dir, default=CORPUS_DIR)
    parser.add_argument("--version", type=cli.at_least(2), default=2,
                        help="sources added in this corpus version are 'after'; earlier ones are 'before'")
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-gpt",
                        help="the GPT whose validation slice and tuned retrieval exponents are used")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--limit", type=cli.at_least(1), default=None, help="only the first N pathways of each part")
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_corpus")
    args = parser.parse_args(argv)

    corpus = load_corpus(args.corpus_dir)
    check_frozen_benchmark(corpus)
    versions = added_in(corpus)
    new_sources = sorted(key for key, version in versions.items() if version == args.version)
    if not new_sources:
        raise ValueError(f"no source of {args.corpus_dir.name}/ was added in version {args.version}")
    alpha, power = retrieval_settings(args.model_dir)
    with checkpoints.reading(args.model_dir):
        record = checkpoints.read_metadata(args.model_dir)[2]
        val_fraction, train_seed = record["val_fraction"], record["train_config"]["seed"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    train = corpus.split("train")
    before = [p.genes for p in train if versions.get(p.source, 1) < args.version]
    after = [p.genes for p in train if versions.get(p.source, 1) <= args.version]
    universe = corpus.genes

    benchmark = [(p.name, p.genes) for p in corpus.benchmark()][: args.limit]
    cases = bench.make_cases(benchmark, MASK_RATIO, args.seed)
    novel = {label: bench.novel_pathways(benchmark, sets) for label, sets in (("before", before), ("after", after))}

    earlier = Corpus([p for p in corpus.pathways if versions.get(p.source, 1) < args.version], corpus.manifest)
    split = validation_split(earlier, val_fraction)
    validation = split.pathways[: args.limit]
    held = {name for name, _ in split.pathways}
    later = [p for p in train if versions.get(p.source, 1) == args.version]
    similarity = max_jaccard_to([genes for _, genes in split.pathways], [p.genes for p in later])
    later_kept = [p.genes for p, value in zip(later, similarity.tolist()) if value < KEEP_OUT_JACCARD - 1e-9]
    validation_stores = {"before": split.datastore, "after": [*split.datastore, *later_kept]}
    assert not held & {p.name for p in later}

    on_benchmark = evaluate(cases, {"before": before, "after": after}, universe, alpha, power)
    on_validation = evaluate(bench.make_cases(validation, MASK_RATIO, train_seed), validation_stores, universe,
                             alpha, power)
    parts = {
        f"benchmark, all {len(cases)}": bench.summarise(on_benchmark),
        f"benchmark, novel {len(novel['after'])}": bench.subset_view(on_benchmark, novel["after"])[1],
        f"validation {len(validation)}": bench.summarise(on_validation),
    }
    rows = []
    for part, summary in parts.items():
        for row in summary.to_dict(orient="records"):
            method, _, label = row["method"].rpartition(" (")
            rows.append({"part": part, "method": method, "datastore": label.rstrip(")"),
                         "significant": row["significant"], "pathways": row["pathways"],
                         "median_recall": row["median_recall"], "mean_recall": row["mean_recall"]})
    table = pd.DataFrame(rows)
    wide = table.assign(cell=[f"{s}/{n}, {100 * m:.1f}%" for s, n, m in
                              zip(table.significant, table.pathways, table.median_recall)])
    wide = wide.pivot(index=["method", "datastore"], columns="part", values="cell")[list(parts)]
    wide = wide.reindex(sorted(wide.index, key=lambda key: (key[0], key[1] != "before")))
    markdown = wide.reset_index().to_markdown(index=False)
    sizes = {"before": len(before), "after": len(after), "validation_before": len(split.datastore),
             "validation_after": len(validation_stores["after"]),
             "later_sets_kept_out_near_validation": len(later) - len(later_kept)}
    print(f"{markdown}\n\ndatastore sizes (training sets): {sizes}")

    result = {
        "command": portable_command_line(sys.argv if argv is None else ["cellang", "benchmark", "corpus", *argv]),
        "corpus": {"folder": args.corpus_dir.name, "manifest_sha256": corpus.manifest_sha256,
                   "sources_added": new_sources, "version": args.version},
        "mask_ratio": MASK_RATIO, "seed": args.seed, "universe_size": len(universe),
        "retrieval": {"alpha": alpha, "power": power}, "datastore_sizes": sizes,
        "novel_before": len(novel["before"]), "novel_after": len(novel["after"]),
        "wall_time_s": round(time.perf_counter() - started, 1), "rows": rows,
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(
        f"Command: `{result['command']}`\n\nSources added: {', '.join(new_sources)}. Cells: significant/pathways "
        f"(BH q < 0.05), median recall; 80% masked, as many genes predicted as were masked.\n\n{markdown}\n\n"
        f"Training sets in each datastore: {sizes}. Universe: {len(universe)} genes.\n")
    print(f"wrote {args.out.with_suffix('.json').name} and {args.out.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
