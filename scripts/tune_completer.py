"""Tune the shipped completer (retrieval exponents, GPT/retrieval weight) on validation pathways.

    python scripts/tune_completer.py                # reads and writes checkpoints/pathway-gpt
    python scripts/tune_completer.py --model-dir DIR

Validation pathways are the GPT's held-out training sets with no near-twin in training; the
benchmark's test split is never used. Writes DIR/completer.json (chosen values, validation scores,
the whole grid and the command) and prints the grid.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cellang_core import checkpoints, cli  # noqa: E402
from cellang_core.completion.completer import COMPLETER_CONFIG, PathwayCompleter  # noqa: E402
from cellang_core.completion.tuning import tune  # noqa: E402
from cellang_core.corpus import load_corpus  # noqa: E402
from cellang_core.paths import CHECKPOINT_DIR  # noqa: E402
from cellang_core.training import portable_command_line  # noqa: E402


def load_model(model_dir: Path) -> tuple[PathwayCompleter, float, int]:
    """(the GPT alone, its validation fraction, its training seed): what the tuning must hold out again.
    A corrupt checkpoint (weights, JSON, config keys) is one error naming the folder."""
    completer = PathwayCompleter.load(model_dir)
    with checkpoints.reading(model_dir):
        record = checkpoints.read_metadata(model_dir)[2]
        return completer, record["val_fraction"], record["train_config"]["seed"]


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-gpt")
    parser.add_argument("--mask-ratio", type=cli.fraction, default=0.8, help="share of each pathway hidden")
    args = parser.parse_args(argv)

    completer, val_fraction, seed = load_model(args.model_dir)
    if not os.access(args.model_dir, os.W_OK):  # checked now: the grid takes minutes
        raise ValueError(f"cannot write {COMPLETER_CONFIG} into {args.model_dir.name}/: the folder is read-only")
    chosen, grid = tune(load_corpus(), completer, val_fraction, seed, args.mask_ratio)
    print(grid.to_markdown(index=False))
    config = {**chosen, "mask_ratio": args.mask_ratio,
              "command": portable_command_line(sys.argv if argv is None else ["scripts/tune_completer.py", *argv]),
              "grid": grid.to_dict(orient="records")}
    (args.model_dir / COMPLETER_CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    print(f"chosen: alpha {chosen['alpha']}, power {chosen['power']}, weight {chosen['weight']}; "
          f"validation {chosen['validation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
