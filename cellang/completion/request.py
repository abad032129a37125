"""A completion request: what the Pathway completion page and ``cellang complete`` ask the completer.

In:  the genes, the task (mask ratio 0 *expands* the list, above 0 *tests* it by hiding part), the count,
     the mode (ranked or sample) and its settings.
Out: the request's problems in words (``request_problems``; a request that has any is refused when made) and,
     through ``run_completion``, a :class:`~cellang.completion.completer.Completion`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from cellang.completion.completer import (
    BEST_ON_VALIDATION,
    LANGUAGE_MODEL_ONLY,
    MODES,
    SET_RETRIEVAL_ONLY,
    Completion,
    CompletionError,
    PathwayCompleter,
    masked_count,
)
from cellang.genes import GeneResolver, load_resolver
from cellang.paths import RESULTS_DIR
from cellang.text import MAX_SEED, out_of_range

MAX_INPUT_GENES = 2000
MAX_RANKED = 500  # genes a ranked completion may ask for
MAX_SAMPLED = 50  # sampling draws genes one at a time: more is slow on a CPU
MEMORY_JACCARD = 0.5  # a test whose gene set is this close to a training set measures memory (the novel rule)
EXPAND_N = 20  # genes proposed when expanding a list and no number is given
# The two tasks, as the page and the CLI name them.
EXPAND = "Expand the list (propose genes to add)"
TEST = "Hide part and recover it (test)"


@dataclass(frozen=True)
class CompletionRequest:
    """What the completer is asked; ``n`` 0 means as many as were masked (20 without masking);
    ``mask_ratio`` 0 means no masking (every gene is the prompt).

    Checked once, here, when it is made: a request that cannot run whatever the model (no genes, too many
    identifiers, a setting out of range, an unknown mode) raises :class:`CompletionError` naming every problem
    (also as the list ``error.problems``, which the page shows beside its button). Nothing further down checks
    these again.
    """

    genes: tuple[str, ...]
    mask_ratio: float = 0.0
    seed: int = 0
    n: int = 0
    mode: str = "ranked"
    temperature: float = 1.0
    top_k: int = 50
    n_samples: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "genes", tuple(str(g) for g in self.genes))
        problems = request_problems(self)
        if problems:
            error = CompletionError(" ".join(problems))
            error.problems = problems  # type: ignore[attr-defined]
            raise error


# How a completion may be ranked, as the CLI and the Python API name it.
RANKINGS = {"best": BEST_ON_VALIDATION, "retrieval": SET_RETRIEVAL_ONLY, "model": LANGUAGE_MODEL_ONLY}


def pick_ranking(completer: PathwayCompleter, choice: str, option: str = "ranking") -> PathwayCompleter:
    """The completer ranking by ``choice`` (a key of RANKINGS); CompletionError naming the ones offered
    (``option``: how the caller's users name the setting)."""
    if choice not in RANKINGS:
        raise CompletionError(f"{option} {choice!r} is not one of {', '.join(RANKINGS)}")
    rankings = completer.rankings()
    if choice == "best":
        return next(iter(rankings.values()))  # rankings() puts the completer's own ranking first
    if RANKINGS[choice] in rankings:
        return rankings[RANKINGS[choice]]
    offered = [key for key, label in RANKINGS.items() if key == "best" or label in rankings]
    raise CompletionError(f"{option} {choice} is not offered by the shipped completer (it offers: "
                          f"{', '.join(offered)}). {completer.describe()}")


def request_problems(request: CompletionRequest) -> list[str]:
    """Sentences naming what makes ``request`` unable to run (empty when it can): no genes, too many
    identifiers, a setting out of its range, an unknown mode."""
    if not request.genes:
        return ["no genes given: pick a pathway, paste genes or upload a file"]
    if len(request.genes) > MAX_INPUT_GENES:
        return [f"{len(request.genes):,} identifiers given; at most {MAX_INPUT_GENES:,} can be completed at once"]
    if request.mode not in MODES:
        return [f"mode must be one of {', '.join(MODES)}, not {request.mode!r}"]
    limit = MAX_SAMPLED if request.mode == "sample" else MAX_RANKED
    count_label = "Genes to add" if request.mask_ratio == 0 else "Genes to predict"
    checks = [out_of_range("Seed", request.seed, 0, MAX_SEED),
              out_of_range(count_label, request.n, 0, limit),
              out_of_range("Mask ratio", request.mask_ratio, 0.0, 0.95)]
    if request.mode == "sample":
        checks += [out_of_range("Top-k", request.top_k, 1, 1000), out_of_range("Samples", request.n_samples, 1, 32),
                   out_of_range("Temperature", request.temperature, 0.1, 2.0)]
    return [problem for problem in checks if problem]


def planned_count(request: CompletionRequest, n_known: int) -> int:
    """How many genes will be predicted for ``n_known`` usable input genes."""
    if request.n:
        wanted = request.n
    elif request.mask_ratio > 0 and n_known >= 2:
        wanted = masked_count(n_known, request.mask_ratio)
    else:
        wanted = EXPAND_N
    return min(wanted, MAX_SAMPLED if request.mode == "sample" else MAX_RANKED)


def run_completion(completer: PathwayCompleter, request: CompletionRequest,
                   resolver: GeneResolver | None = None) -> Completion:
    """Complete ``request.genes`` (checked when the request was made); raises :class:`CompletionError` with a
    plain message when the genes cannot be completed (none known to the model, one gene to test)."""
    mask_ratio = request.mask_ratio if request.mask_ratio > 0 else None
    resolver = resolver or load_resolver()
    known = [g for g in resolver.harmonise(request.genes).symbols if g in completer.vocabulary]
    if mask_ratio is not None and len(known) == 1:
        raise CompletionError(f"only one of the genes given ({known[0]}) is known to the model, and hiding part "
                              "of a list needs two: one to show the model, one to recover. Expand the list instead "
                              "(hide nothing: mask ratio 0) to get genes to add to it.")
    count = planned_count(request, len(known))
    completion = completer.complete(
        request.genes, mask_ratio=mask_ratio, seed=request.seed, n=count, mode=request.mode,
        temperature=request.temperature, top_k=request.top_k, n_samples=request.n_samples, resolver=resolver,
    )
    memory = memory_warning(completer, known) if mask_ratio is not None else None
    if memory:
        completion.notes.insert(0, memory)
    if request.mode == "sample":
        completion.notes.append(sample_note())
    wanted = request.n or len(completion.masked)
    if wanted > count:
        asked = f"{wanted} genes asked for" if request.n else f"{wanted} genes were held out"
        completion.notes.append(f"{asked}, but {request.mode} mode predicts at most {count} here; "
                                f"predicted {count}.")
    return completion


def memory_warning(completer: PathwayCompleter, genes: list[str]) -> str | None:
    """The warning a test result needs when the whole gene set is (nearly) one of the completer's training sets,
    whose genes the completer has read: recovering them then measures memory, not prediction."""
    evidence = getattr(completer, "evidence", None)  # the training sets with their names, when the completer has them
    if evidence is None:
        return None
    nearest = evidence.nearest_set(genes)
    if nearest is None or nearest[1] < MEMORY_JACCARD:
        return None
    name, jaccard = nearest
    same = "is" if jaccard == 1.0 else f"resembles (Jaccard {jaccard:.2f})"
    return (f"This gene set {same} the training set {name}, which the completer has read: recovering its hidden "
            "genes measures memory, not prediction. Test on a held-out pathway (the picker lists them first) or "
            "your own list to see how it predicts.")


BENCHMARK_RESULTS = RESULTS_DIR / "benchmark_pathways.json"


@lru_cache(maxsize=1)
def sample_note() -> str:
    """What sample mode is: draws from the pathway GPT alone, with its measured benchmark row beside the shipped
    completer's (from results/benchmark_pathways.json; said without numbers when that file is absent)."""
    text = ("Sample mode draws genes from the pathway language model alone, not from the shipped completer that "
            "ranked mode uses")
    try:
        summary = {row["method"]: row for row in json.loads(BENCHMARK_RESULTS.read_text(encoding="utf-8"))["summary"]}
        gpt = summary["pathway-gpt"]
        shipped = next(row for method, row in summary.items() if method.startswith("shipped"))
    except (OSError, ValueError, KeyError, StopIteration):
        return text + ", and it is weaker: use ranked mode for the best completion."
    return (text + f": on the benchmark it completed {gpt['significant']:,} of {gpt['pathways']:,} pathways "
            f"significantly (median recall {gpt['median_recall']:.0%}) against the shipped completer's "
            f"{shipped['significant']:,} ({shipped['median_recall']:.0%}). Use ranked mode for the best completion.")
