"""How to combine the retrieval reader and the masked-set transformer: three rules on validation only.

    cellang benchmark mixing                     # -> results/benchmark_mixing.json and .md

Cuts every validation source that `cellang tune completer` reads (the corpus's validation pathways and the
outside-style files `cellang build external` writes) into two halves, fits each rule on one half and scores it on
the other, both ways round: one share for every prompt (the shipped rule), one share for short prompts and one for
longer, and a listwise linear stacker (cellang/completion/mixing.py). Also measures the set model on sets it
trained on against its validation pathways: why a reader cannot learn the set model's weight from the corpus.
The benchmark's test pathways and the external test files are never read.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from cellang import cli
from cellang.cli.tune_completer import built_validation_files, load_model
from cellang.completion import benchmark as bench
from cellang.completion import mixing
from cellang.completion import training as pathway_training
from cellang.completion.rerank import load_reranker
from cellang.completion.set_model import SetModelCompleter
from cellang.completion.tuning import validation_sources, validation_split
from cellang.corpus import load_corpus
from cellang.genes import load_resolver
from cellang.paths import CHECKPOINT_DIR, REPO_ROOT
from cellang.text import plural
from cellang.training import portable_command_line


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-gpt",
                        help="the pathway GPT whose vocabulary and validation slice the shipped completer uses")
    parser.add_argument("--reader-dir", type=Path, default=CHECKPOINT_DIR / "pathway-rerank")
    parser.add_argument("--set-model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-set")
    parser.add_argument("--outside", type=Path, nargs="*", default=None, metavar="GMT",
                        help="outside-style validation files (default: data/external/validation-*.gmt.gz)")
    parser.add_argument("--mask-ratio", type=cli.fraction, default=0.8, help="share of each pathway hidden")
    parser.add_argument("--seed", type=cli.seed, default=0, help="masks and the cut into halves")
    parser.add_argument("--cuts", type=cli.at_least(1), default=mixing.CUTS,
                        help="cuts of every source into halves; each rule is fitted and scored on each")
    parser.add_argument("--memory-sets", type=cli.at_least(1), default=400,
                        help="training sets drawn to measure what the set model remembers")
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_mixing",
                        help="output prefix: writes PREFIX.json and PREFIX.md")
    args = parser.parse_args(argv)
    outside = built_validation_files() if args.outside is None else args.outside
    for path in outside:
        bench.read_external(path)  # a missing or unreadable file fails now, not after the models are read
    completer, val_fraction, _ = load_model(args.model_dir)
    universe = list(completer.vocabulary.genes)  # the shipped completer's universe, as tuning uses it
    reader, _ = load_reranker(args.reader_dir)
    set_model = SetModelCompleter.load(args.set_model_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    corpus = load_corpus()
    sources = validation_sources(corpus, universe, outside, load_resolver(), val_fraction, args.mask_ratio,
                                 args.seed)
    scored = {}
    for source in sources:
        scored[source.name] = (source.cases, mixing.score_prompts(source, reader, set_model, universe))
        print(f"scored {source.name}: {len(source.cases)} sets", flush=True)
    rows, fitted = mixing.compare_rules(scored, universe, args.seed, cuts=args.cuts)
    summary = mixing.summarise_rules(rows)

    split = validation_split(corpus, val_fraction)
    train = corpus.split("train")
    held_out = set(pathway_training.validation_slice(range(len(train)), val_fraction)[1])
    trained_on = [(p.name, p.genes) for i, p in enumerate(train) if i not in held_out]
    drawn = np.random.default_rng((args.seed, 12)).choice(len(trained_on), min(args.memory_sets, len(trained_on)),
                                                          replace=False)
    memory = mixing.memorisation(set_model, [trained_on[i] for i in sorted(drawn)], split.pathways, len(universe),
                                 args.mask_ratio, args.seed)

    command = portable_command_line(sys.argv if argv is None else ["cellang", "benchmark", "mixing", *argv])
    settings = "; ".join(
        f"cut {f['cut']}, half {f['fitted_on_half']}: share {f['mixture_share']:g} at single-gene share "
        f"{f['single_gene_share']:g}, by prompt size {f['share_small_prompts']:g} (<= {mixing.SMALL_PROMPT} genes) / "
        f"{f['share_longer_prompts']:g}" for f in fitted)
    text = (f"Command: `{command}`\n\nSignificant completions (q < 0.05, BH within each scored half) of each rule "
            f"on the halves it was not fitted on, summed over both halves of {plural(args.cuts, 'cut')} (each set is "
            f"scored once per cut); {args.mask_ratio:.0%} of each set hidden, seed {args.seed}:\n\n"
            f"{summary.to_markdown(index=False, floatfmt='.4f')}\n\nSettings fitted on each half: {settings}\n\n"
            "The set model alone (reading each prompt whole and gene by gene, as its own benchmark row does) on sets "
            f"it trained on and on sets it never saw:\n\n{memory.to_markdown(index=False, floatfmt='.4f')}\n")
    result = {"command": command, "mask_ratio": args.mask_ratio, "seed": args.seed, "universe_size": len(universe),
              "sources": {name: len(cases) for name, (cases, _) in scored.items()},
              "small_prompt_genes": mixing.SMALL_PROMPT, "wall_time_s": round(time.perf_counter() - started, 1),
              "summary": summary.to_dict(orient="records"), "per_half": rows.to_dict(orient="records"),
              "fitted": fitted, "memorisation": memory.to_dict(orient="records")}
    cli.write_results(args.out, result, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
