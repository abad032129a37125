"""Where a gene list becomes a completion.

In:  genes (any identifiers; harmonised to approved symbols) and a request: mask ratio, seed, how many
     genes to predict, ranked or sampled.
Out: a :class:`~cellang.completion.completer.Completion` (prompt, held-out genes, ranked
     predictions with scores), and its tables and downloads (:mod:`.tables`). ``cl.pw.complete`` is the
     public door; the page's report (network, enrichment reading) is :mod:`cellang.app.completion_report`.

Modules, in the order a completion flows through them:

* ``loading``: read a trained pathway GPT or denoising autoencoder back (no training code);
* ``completer``: the GPT as a completer, masking (:func:`~.completer.mask_pathway`, the one masking
  rule), ranked and sampled completion, and the shipped retrieval-augmented completer;
* ``ranking``: :func:`~.ranking.top_excluding`, the one top-k-outside-the-prompt rule every completer
  ranks by;
* ``retrieval``: set retrieval over the training sets; ``baselines``: co-occurrence, DAE, frequency,
  random;
* ``set_model``: the masked-set transformer as a completer; ``neighbours``: what retrieval finds for a
  prompt as candidate features, with leave-group-out; ``rerank``: the trained reader of those candidates;
* ``benchmark``: masked completion of held-out pathways scored by Fisher test and BH, every method in one
  run; ``tuning``: retrieval and interpolation settings chosen on validation pathways only;
* ``gene_input``: the genes a person gives (pasted, uploaded, a corpus pathway); ``request``: what is asked
  of the completer (task, count, mode, their limits) and running it;
* ``evidence``: why each gene was suggested (supporting training sets, model and retrieval shares);
* ``gbm_reader``: gradient-boosted trees on the reader's features, its baseline in the benchmark;
* ``tables``: a completion as tables, metrics and CSV / GMT files (the API, ``cellang complete`` and the page);
  ``network``: the co-membership graph and its offline drawing (``cl.pl.network`` and the page);
* ``training``, ``dae_training``, ``set_training``, ``rerank_training``: train the models
  (``cellang train pathway`` / ``pathway-dae`` / ``pathway-set`` / ``pathway-rerank``).
"""
