"""Embed cells with a cell encoder: the CLS and mean-pooled embedding of every cell, written into a copy of the file.

    cellang embed cells.h5ad --out cells-embedded.h5ad                      # cells-binned
    cellang embed cells.h5ad --model cells-rank --out cells-rank.h5ad
    cellang embed cells.h5ad --model my-cells-binned-adapted-cells --out adapted.h5ad

The output is the input's cells and genes with obsm["X_<model>_cls"] and obsm["X_<model>_mean"] (float32) and
uns["cellang_embedding"][<model>] (the encoder, its folder, the genes it used). Gene identifiers are mapped to
approved symbols first (Ensembl, Entrez, previous symbols and aliases are understood); the output keeps the
input's own genes. Only .h5ad, 10x .h5 and 10x folders are read, never a pickle. An output that exists is
refused unless --force; the input is never overwritten.
"""

from __future__ import annotations

from pathlib import Path

from cellang import cli


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("cells", type=Path, metavar="CELLS.h5ad", help="your cells")
    parser.add_argument("--model", default="cells-binned",
                        help="cells-binned (default), cells-rank or one of your models (my-...)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT.h5ad", help="where the embedded copy goes")
    parser.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    args = parser.parse_args(argv)
    if not args.cells.exists():
        parser.error(f"{args.cells}: no such file or folder")
    if args.out.suffix != ".h5ad":
        parser.error(f"--out {args.out.name}: give a file name ending in .h5ad")
    if args.out.exists() and args.out.resolve() == args.cells.resolve():
        parser.error("--out names the input file; the input is never overwritten: choose another name")
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} exists; pass --force to overwrite it")

    from cellang.cells.io import read_cells, write_h5ad
    from cellang.embedding.embed import obsm_keys
    from cellang.embedding.workflow import embed_into

    adata = read_cells(args.cells)
    name, messages = embed_into(adata, args.model, harmonise=True,
                                progress=lambda fraction, text: print(f"[{fraction:4.0%}] {text}", flush=True))
    for level, message in messages:
        print(f"{level}: {cli.one_line(message)}")
    write_h5ad(adata, args.out)
    cls_key, mean_key = obsm_keys(name)
    print(f"{adata.n_obs:,} cells embedded with {name}: obsm {cls_key}, {mean_key} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
