"""Tune the shipped completer (retrieval exponents, GPT/retrieval weight) on validation pathways.

    python scripts/tune_completer.py                # reads and writes checkpoints/pathway-gpt
    python scripts/tune_completer.py --model-dir DIR

Validation pathways are the GPT's held-out training sets with no near-twin in training; the
benchmark's test split is never used. Writes DIR/completer.json (chosen values, validation scores,
the whole grid and the command) and prints the grid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cellang_core.corpus import load_corpus  # noqa: E402
from cellang_core.paths import CHECKPOINT_DIR  # noqa: E402
from cellang_core.tasks.complete import COMPLETER_CONFIG, PathwayCompleter  # noqa: E402
from cellang_core.tasks.tune_completer import tune  # noqa: E402
from cellang_core.training import portable_command_line  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-gpt")
    parser.add_argument("--mask-ratio", type=float, default=0.8)
    args = parser.parse_args(argv)

    completer = PathwayCompleter.load(args.model_dir)
    record = json.loads((args.model_dir / "training_record.json").read_text())
    chosen, grid = tune(load_corpus(), completer, record["val_fraction"], record["train_config"]["seed"],
                        args.mask_ratio)
    print(grid.to_markdown(index=False))
    config = {**chosen, "mask_ratio": args.mask_ratio,
              "command": portable_command_line(sys.argv if argv is None else ["scripts/tune_completer.py", *argv]),
              "grid": grid.to_dict(orient="records")}
    (args.model_dir / COMPLETER_CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    print(f"chosen: alpha {chosen['alpha']}, power {chosen['power']}, weight {chosen['weight']}; "
          f"validation {chosen['validation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
