"""Where cells become embeddings.

In:  an AnnData of cells x genes (counts, log1p, TPM or FPKM; var_names approved symbols, or call
     ``cellang.cells.harmonise_var`` first) and a cell encoder name (``cells-binned``, ``cells-rank``).
Out: the same AnnData with ``obsm["X_<model>_cls"]`` and ``obsm["X_<model>_mean"]`` and a report in
     ``uns["cellang_embedding"]``; for the page, UMAPs of every view and AvgBIO / batch ASW against the
     HVG + PCA baseline.

Modules:

* ``loading``: read a trained encoder and its tokeniser back, cached (no training code), and list the encoders
  a page can offer: the shipped ones and the user's own (``models/``, ``CELLANG_MODELS``);
* ``embed``: :func:`~.embed.embed_cells`, the one entry point that writes embeddings;
* ``metrics``: scIB-style AvgBIO (NMI, ARI, ASW), batch ASW, the PCA baseline, UMAP coordinates;
* ``explorer``: what the Cell embeddings page does (embed, map, score); ``exports``: its downloads;
* ``training``: train the encoders (``cellang train`` cells-binned`` / ``cells-rank``).
"""
