"""Leave-one-dataset-out: encoders pretrained without a dataset, then scored on it zero-shot and after adapting.

A user's cells were never in pretraining; the atlas datasets were. So the honest measurement of an encoder is on
a dataset it never saw: pretrain on the other atlas datasets (:func:`pretrain_without`), embed the left-out cells
as they are (zero-shot), adapt to them without labels (:mod:`.adapt`), and score both beside HVG + PCA fit on the
same cells (``cellang benchmark leaveout``).

A recipe (:class:`Recipe`) is what ``cellang train`` cells-<mode>`` is told besides the data: the mode, the
steps, pathway initialisation and the tokeniser's options. :data:`RECIPES` holds the shipped ones and the
candidates measured against them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellang import checkpoints
from cellang.embedding import training as cell_training
from cellang.models.encoder import EncoderConfig
from cellang.paths import REPO_ROOT
from cellang.tokenizers import binned


@dataclass(frozen=True)
class Recipe:
    """mode: "binned" or "rank"; steps: optimizer steps of 32 cells; init_from_pathway: gene embeddings from the
    pathway model; options: keyword arguments of :func:`~.training.train_cell_encoder` (n_hvg, hvg_selection,
    input_panel, pathway_genes, min_cells, mask_ratio, window) and the model's ``max_len`` and ``rank_positions``."""

    name: str
    mode: str
    steps: int
    init_from_pathway: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    about: str = ""

    def with_steps(self, steps: int) -> Recipe:
        return dataclasses.replace(self, steps=steps)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("binned", "binned", cell_training.TRAINING["binned"].max_steps, init_from_pathway=True,
           about="the shipped cells-binned recipe: 1,200 per-dataset variable genes, every cell's top 255 of them"),
    Recipe("binned-panel", "binned", cell_training.TRAINING["binned"].max_steps, init_from_pathway=True,
           options={"n_hvg": 20000, "input_panel": 1200, "pathway_genes": True},
           about="a broad vocabulary (every expressed gene and the pathway model's genes, pathway-initialised); each "
                 "dataset read through its own 1,200 most variable genes"),
    Recipe("rank", "rank", cell_training.TRAINING["rank"].max_steps,
           about="the shipped cells-rank recipe: genes by median-scaled expression, top 255"),
    Recipe("rank-window", "rank", cell_training.TRAINING["rank"].max_steps,
           options={"max_len": 2048, "window": 256, "rank_positions": "log"},
           about="a rank encoder that reads a cell's top 2,047 genes, trained on windows of 255 of them drawn at "
                 "random, each at its rank bucket (so training costs what the 256-token recipe costs)"),
)}


MODELS_FOLDER = REPO_ROOT / "runs" / "leaveout"  # where the benchmark keeps its models, reused between runs


def pretrained_folder(root: Path, left_out: str, recipe: Recipe) -> Path:
    """Where ``cellang benchmark leaveout`` keeps ``recipe``'s encoder pretrained without ``left_out``:
    ``root/<left_out>/<recipe>-<steps>`` (adapted copies sit beside it, with a suffix)."""
    return root / left_out / f"{recipe.name}-{recipe.steps}"


def pretrained_folders(root: Path, left_out: str, recipe_name: str) -> list[Path]:
    """The folders :func:`pretrained_folder` named for ``recipe_name`` without ``left_out``, at any step count."""
    return sorted(f for f in (root / left_out).glob(f"{recipe_name}-*")
                  if f.is_dir() and f.name[len(recipe_name) + 1:].isdigit())


def training_datasets(left_out: str, available: list[str] | None = None) -> list[str]:
    """The atlas datasets an encoder that never saw ``left_out`` trains on (ValueError for an unknown name)."""
    from cellang.atlas import atlas_datasets

    names = list(available) if available is not None else atlas_datasets()
    if left_out not in names:
        raise ValueError(f"no dataset {left_out!r} in the cell atlas; it has {', '.join(names)}")
    return [name for name in names if name != left_out]


def made_by(record: dict[str, Any], recipe: Recipe, datasets: list[str], seed: int,
            config: dict[str, Any] | None = None) -> bool:
    """Whether a training record (and the model's config) is of ``recipe`` trained on exactly ``datasets`` with
    ``seed`` (so that a model trained earlier, by this module or by ``cellang train`` with the same settings, is
    reused)."""
    tokenizer = record.get("tokenizer") or {}
    options = recipe.options
    same = (record.get("model") == cell_training.MODEL_NAMES[recipe.mode]
            and sorted(record.get("datasets") or {}) == sorted(datasets)
            and record.get("steps") == recipe.steps and record.get("seed") == seed
            and bool(record.get("init_from_pathway")) == recipe.init_from_pathway
            and tokenizer.get("max_len") == options.get("max_len", EncoderConfig.max_len)
            and tokenizer.get("window", 0) == options.get("window", 0)
            and (config or {}).get("rank_positions", "index")
            == options.get("rank_positions", EncoderConfig.rank_positions))
    if recipe.mode == "binned":
        same = same and (tokenizer.get("n_hvg") == options.get("n_hvg", binned.N_HVG)
                         and tokenizer.get("hvg_selection") == options.get("hvg_selection", binned.HVG_SELECTION)
                         and tokenizer.get("input_panel", 0) == options.get("input_panel", binned.INPUT_PANEL)
                         and bool(tokenizer.get("extra_genes")) == bool(options.get("pathway_genes")))
    return bool(same)


def pretrain_without(left_out: str, recipe: Recipe, folder: Path, *, seed: int = 0,
                     datasets: list[str] | None = None) -> Path:
    """The ``recipe`` encoder pretrained on every atlas dataset but ``left_out``, in ``folder`` (returned).

    A finished model there whose record says it was made so (:func:`made_by`) is reused; an interrupted run
    resumes from ``folder``/../.<name>.run. ``datasets``: the atlas to leave from (default: all). The left-out
    dataset is never read: only the training datasets are loaded.
    """
    names = training_datasets(left_out, datasets)
    if checkpoints.checkpoint_exists(folder):
        config, _, record = checkpoints.read_metadata(folder)
        if made_by(record, recipe, names, seed, config):
            return folder
        raise ValueError(f"{folder} holds another model (not {recipe.name} without {left_out}, seed {seed}); "
                         "move it or choose another folder")
    options = dict(recipe.options)
    config = EncoderConfig(n_genes=0, mode=recipe.mode, max_len=options.pop("max_len", EncoderConfig.max_len),
                           rank_positions=options.pop("rank_positions", EncoderConfig.rank_positions),
                           n_bins=EncoderConfig.n_bins if recipe.mode == "binned" else 0)
    train_config = dataclasses.replace(cell_training.TRAINING[recipe.mode], max_steps=recipe.steps, seed=seed)
    adatas, manifest_sha256 = cell_training.load_atlas_corpus(names)
    cell_training.train_cell_encoder(
        adatas, model_config=config, train_config=train_config,
        init_pathway=cell_training.PATHWAY_CHECKPOINT if recipe.init_from_pathway else None,
        run_dir=folder.parent / f".{folder.name}.run", export_dir=folder, resume=True,
        record_extra={"atlas_manifest_sha256": manifest_sha256,
                      "leave_out": {"dataset": left_out, "recipe": recipe.name}},
        **options)
    return folder
