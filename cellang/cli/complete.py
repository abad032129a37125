"""Complete a gene list with the shipped pathway completer: propose genes to add, with scores and evidence.

    cellang complete --genes TP53 MDM2 CDKN1A BAX              # propose 20 genes to add
    cellang complete --file hits.txt --n 50 --out hits_completion.csv --evidence hits_evidence.csv
    cellang complete --file sets.gmt --set MY_SET --mask-ratio 0.5   # hide half, see what comes back

Expand (the default, --mask-ratio 0): every gene given is the prompt and --n genes (default 20) are proposed.
Test (--mask-ratio above 0): that share of the genes is hidden (chosen by --seed) and --n genes (default: as
many as were hidden) are predicted; recall, precision and the one-sided Fisher p of the overlap are printed.

Each predicted gene is printed with its score, the part of the score from retrieval over the training sets
and the part from the model (the two add up to the score), and the training sets that support it (name,
prompt genes in the set / set size). --out writes the completion CSV (the page's download: prompt genes,
predictions with their evidence, missed genes); --evidence the long-format evidence (per gene its top
supporting sets, the rest in one row, and the model's row; the contributions add up to the score).

Genes: symbols, previous symbols, aliases, Ensembl or Entrez ids (--genes, or --file with a gene list or a
GMT; gzipped files are read too). No known gene, one gene with masking, more than 2,000 identifiers, an
unreadable file or an existing output file (without --force) end in exit code 2 and one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cellang import cli
from cellang.completion.completer import Completion, CompletionError
from cellang.completion.gene_input import (
    MAX_UPLOAD_BYTES,
    read_gene_file,
)
from cellang.completion.tables import (
    completion_csv,
    completion_metrics,
    denoised,
    evidence_csv,
    evidence_note,
    has_evidence,
    metric_rows,
)
from cellang.completion.request import (
    RANKINGS,
    CompletionRequest,
    pick_ranking,
    run_completion,
)
from cellang.genes import split_genes

SETS_PRINTED = 3  # supporting sets named per gene in the printed table (all in the CSVs)
NAMES_LISTED = 20  # set names listed when a GMT holds several and --set is missing


def read_genes(path: Path, set_name: str | None) -> tuple[tuple[str, ...], list[str]]:
    """(identifiers, problems met reading them) from a gene list or a GMT; a GMT with several sets needs
    ``set_name``. Raises CompletionError (or OSError) in words."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_UPLOAD_BYTES + 1)  # read_gene_file refuses a bigger file; never read more
    uploaded = read_gene_file(path.name, data)
    sets = {s.name: s for s in uploaded.gene_sets}
    if set_name is not None:
        if set_name not in sets:
            raise CompletionError(f"{path.name} holds no set named {set_name!r}; its sets: {listed(sets)}")
        return sets[set_name].genes, uploaded.problems
    if len(sets) > 1:
        raise CompletionError(f"{path.name} holds {len(sets)} gene sets; pick one with --set NAME: {listed(sets)}")
    return uploaded.gene_sets[0].genes, uploaded.problems


def listed(names: object) -> str:
    names = list(names)  # type: ignore[call-overload]
    return ", ".join(names[:NAMES_LISTED]) + (f" and {len(names) - NAMES_LISTED} more" if len(names) > NAMES_LISTED
                                              else "")


def check_output(path: Path | None, force: bool) -> None:
    if path is None:
        return
    if path.is_dir():
        raise CompletionError(f"{path} is a folder; give a file name such as {path / 'completion.csv'}")
    if path.exists() and not force:
        raise CompletionError(f"{path} exists; pass --force to overwrite it")
    for part in path.parents:
        if part.exists() and not part.is_dir():
            raise CompletionError(f"{part} is a file, not a folder")


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def number(value: float) -> str:
    return f"{value:.4g}"


def prediction_lines(completion: Completion) -> list[str]:
    """The predictions as a readable table: rank, gene, score, its parts, the sets that support it."""
    evidence = completion.evidence if has_evidence(completion) else [None] * len(completion.predictions)
    held_out = set(completion.masked)
    width = max([len(g) for g in completion.genes] + [4])
    header = f"{'rank':>4}  {'gene':<{width}}  {'score':>10}"
    if completion.masked:
        header += f"  {'status':<9}"
    if has_evidence(completion):
        header += f"  {'retrieval':>10}  {'model':>10}  supporting training sets (prompt genes in set/set size)"
    lines = [header]
    for rank, ((gene, score), item) in enumerate(zip(completion.predictions, evidence), start=1):
        line = f"{rank:>4}  {gene:<{width}}  {number(score):>10}"
        if completion.masked:
            line += f"  {'recovered' if gene in held_out else 'novel':<9}"
        if item is not None:
            sets = f"{len(item.sets)}: {item.summary(SETS_PRINTED)}" if item.sets else "none"
            parts = (denoised(item.from_retrieval, item.score), denoised(item.from_model, item.score))
            line += f"  {number(parts[0]):>10}  {number(parts[1]):>10}  {sets}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--genes", nargs="+", metavar="GENE", help="the genes (spaces or commas between them)")
    source.add_argument("--file", type=cli.existing_file, metavar="PATH",
                        help="a gene list (any separators; .gz too) or a GMT file (.gmt, .gmt.gz)")
    parser.add_argument("--set", metavar="NAME", help="the set to complete when --file is a GMT with several")
    parser.add_argument("--n", type=cli.at_least(1), default=None,
                        help="genes to propose (default: 20 when expanding, as many as were hidden when testing)")
    parser.add_argument("--mask-ratio", type=cli.number(0.0, 1.0), default=0.0,
                        help="0 (default): expand the list; above 0 (at most 0.95): hide this share and recover it")
    parser.add_argument("--seed", type=cli.seed, default=0, help="chooses the hidden genes")
    parser.add_argument("--ranking", choices=list(RANKINGS), default="best",
                        help="best: the shipped completer's ranking (best on validation); retrieval: set retrieval "
                             "alone; model: the language model alone")
    parser.add_argument("--out", type=Path, metavar="CSV", help="write the completion CSV here")
    parser.add_argument("--evidence", type=Path, metavar="CSV", help="write the long-format evidence CSV here")
    parser.add_argument("--force", action="store_true", help="overwrite --out / --evidence when they exist")
    args = parser.parse_args(argv)
    if args.set is not None and args.file is None:
        parser.error("--set picks a set of a GMT --file; it does nothing with --genes")
    if args.out is not None and args.evidence is not None and args.out.resolve() == args.evidence.resolve():
        parser.error("--out and --evidence name the same file")
    check_output(args.out, args.force)
    check_output(args.evidence, args.force)

    # everything that can be checked without the model, before it loads
    problems: list[str] = []
    if args.file is not None:
        genes, problems = read_genes(args.file, args.set)
    else:
        genes = tuple(split_genes(" ".join(args.genes)))
    request = CompletionRequest(genes, mask_ratio=args.mask_ratio, seed=args.seed, n=args.n or 0)

    from cellang.completion.completer import load_completer  # torch: seconds to import

    completer = load_completer()
    engine = pick_ranking(completer, args.ranking, "--ranking")
    if args.evidence is not None and engine.evidence is None:
        raise CompletionError("this completer has no retrieval datastore, so there is no evidence to write; "
                              "drop --evidence")
    completion = run_completion(engine, request)

    for problem in problems[:5]:  # after the completion, so a failure stays one line
        print(f"note: {args.file.name}: {problem}", file=sys.stderr)
    for note in completion.notes:
        print(f"note: {cli.one_line(note)}", file=sys.stderr)
    task = "hide and recover" if completion.masked else "expand"
    print(f"{task}: {len(completion.prompt)} prompt genes, {len(completion.predictions)} predicted by "
          f"{completion.method}. {engine.describe()}")
    if completion.masked:
        metrics = completion_metrics(completion, len(completer.universe))
        print(f"hidden: {len(completion.masked)} genes (mask ratio {args.mask_ratio:g}, seed {args.seed}); "
              + "; ".join(f"{label} {value}" for label, value in metric_rows(metrics).items()))
    print("\n".join(prediction_lines(completion)))
    if has_evidence(completion):
        print(evidence_note(completion))
    if args.out is not None:
        write(args.out, completion_csv(completion))
        print(f"completion -> {args.out}")
    if args.evidence is not None:
        from cellang.corpus import load_corpus

        descriptions = {p.name: p.description for p in load_corpus().pathways}
        write(args.evidence, evidence_csv(completion, descriptions))
        print(f"evidence -> {args.evidence}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
