"""``cellang``: one command line for everything the library does.

    cellang complete --genes MYOD1 MYOG DES           cellang embed cells.h5ad --out embedded.h5ad
    cellang adapt cells.h5ad --minutes 5              cellang delete --preset hsmm
    cellang train cells-rank --max-steps 1000         cellang build corpus
    cellang benchmark pathways                        cellang <command> --help

Each command is one module of :mod:`cellang.cli` with ``main(argv) -> int``, imported only when it runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from cellang import cli

# command -> module of cellang.cli; a group (build, benchmark, tune) -> {sub-command: module}
COMMANDS: dict[str, str | dict[str, str]] = {
    "complete": "complete",
    "embed": "embed",
    "adapt": "adapt",
    "classify": "classify",
    "delete": "run_deletion",
    "train": "train",
    "build": {"corpus": "build_corpus", "atlas": "build_atlas", "known-genes": "build_known_genes",
              "external": "build_external"},
    "benchmark": {"pathways": "benchmark_pathways", "embeddings": "benchmark_embeddings",
                  "leaveout": "benchmark_leaveout", "context": "benchmark_context", "corpus": "benchmark_corpus",
                  "cell-loading": "benchmark_cell_loading", "deletion-validity": "benchmark_deletion_validity",
                  "perturb": "benchmark_perturb", "classify": "benchmark_classify",
                  "mixing": "benchmark_mixing"},
    "tune": {"completer": "tune_completer", "screen": "tune_screen", "adapt": "tune_adapt"},
}
ABOUT = {
    "complete": "complete a gene list with the pathway models (expand it, or hide part and recover it)",
    "embed": "embed cells (.h5ad) with a cell encoder into obsm",
    "adapt": "adapt a cell encoder to your cells, without labels, within a time budget",
    "classify": "fine-tune a cell encoder to tell your cells' states apart (labelled cells, held-out test)",
    "delete": "in-silico deletion: rank genes by how far deleting them moves cells toward a goal state",
    "train": "train a model (pathway-gpt, pathway-set, cells-binned, cells-rank, ...)",
    "build": "build data: corpus, atlas, known-genes (shipped); external (test files, built here)",
    "benchmark": "measure against baselines, print a table, write results/*.json and .md",
    "tune": "choose settings on validation data: completer, screen, adapt",
}


def module_for(command: Sequence[str]) -> tuple[str, list[str]] | None:
    """(module name, the words naming it) for the leading words of a command line; None when unknown."""
    if not command or command[0] not in COMMANDS:
        return None
    entry = COMMANDS[command[0]]
    if isinstance(entry, str):
        return entry, [command[0]]
    if len(command) < 2 or command[1] not in entry:
        return None
    return entry[command[1]], list(command[:2])


def command_of(module_name: str) -> list[str]:
    """The words of the command that runs ``module_name`` (``build_corpus`` -> ["build", "corpus"])."""
    for name, entry in COMMANDS.items():
        if entry == module_name:
            return [name]
        if isinstance(entry, dict):
            for sub, module in entry.items():
                if module == module_name:
                    return [name, sub]
    raise KeyError(f"no command runs cellang.cli.{module_name}")


def run_module(module_name: str, argv: Sequence[str] | None = None) -> int:
    """Run the command of ``module_name`` as ``cellang <command>`` would (scripts/*.py call this)."""
    return main([*command_of(module_name), *(sys.argv[1:] if argv is None else argv)])


def usage() -> str:
    lines = ["usage: cellang <command> [options]   (cellang <command> --help for its options)", "", "commands:"]
    for name, entry in COMMANDS.items():
        lines.append(f"  {name:<10} {ABOUT[name]}")
        if isinstance(entry, dict):
            lines.append(f"  {'':<10}   {' | '.join(entry)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if words[0] in ("-V", "--version"):
        from cellang import __version__

        print(f"cellang {__version__}")
        return 0
    found = module_for(words)
    if found is None:
        entry = COMMANDS.get(words[0])
        if isinstance(entry, dict):
            asked = f"'{words[1]}'" if len(words) > 1 else "nothing"
            return cli.fail(f"cellang {words[0]} takes one of {', '.join(entry)}, not {asked}", "cellang")
        return cli.fail(f"unknown command {words[0]!r}; the commands: {', '.join(COMMANDS)} (cellang --help)",
                        "cellang")
    module_name, named = found
    from cellang.settings import settings

    settings.verbosity = "info"  # the library's messages are quiet in a notebook, visible on the command line
    settings.progress_bar = False  # each command prints its own progress
    cli.PROG = "cellang " + " ".join(named)
    rest = words[len(named):]
    sys.argv = ["cellang", *named, *rest]  # what records of the run write as its command line
    module = importlib.import_module(f"cellang.cli.{module_name}")
    return cli.run(module.main, rest)


if __name__ == "__main__":
    raise SystemExit(main())
