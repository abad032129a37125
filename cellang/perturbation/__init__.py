"""Where a deletion is scored.

In:  cells (AnnData; var_names approved symbols), which cells to perturb and toward which goal state
     (:class:`~.workflow.Selection`) and which genes, as one :class:`~.workflow.PerturbationRequest`, and
     the rank-value encoder (``cells-rank``).
Out: a :class:`~.workflow.DeletionResult`: the shift of every (cell, gene) pair, genes ranked by their mean
     shift toward the goal shrunk by the cells they were scored in, with rank-sum p and BH q, known-gene
     validation (AUROC), enrichment of the top hits, and the start cells with per-cell scores in ``obs``
     and the ranking in ``uns["cellang_perturb"]``.

Modules:

* ``engine``: delete or overexpress genes in rank encodings in batches and measure the embedding shift;
  ``naive``: the same one perturbation at a time, the reference the engine is tested and timed against;
* ``screen``: estimate every deletion at once, then score the most promising genes exactly;
* ``stats``: per-gene statistics, known-gene validation, enrichment and GSEA prerank of the ranking;
* ``validation``: trivial baselines and truth sets (DE genes, markers) for ``cellang benchmark deletion-validity``;
  ``immune_markers``: its immune cell-type markers (grnndata's GMT, or derived on the other datasets);
* ``request``: the :class:`~.request.PerturbationRequest` and its checks, made before any model loads;
* ``workflow``: :func:`~.workflow.run_perturbation`, end to end (the request's names are importable from it too);
* ``presets``: the HSMM demo and the cardiomyopathy requests and runners;
* ``fine_tune_first``: the encoder fine-tuned on the start against the goal cells before the run (Geneformer's way),
  then scored by the goal state's probability.
The In-silico deletion page's defaults, choices and downloads are in :mod:`cellang.app.deletion`.
"""
