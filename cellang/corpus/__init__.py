"""The pathway corpus: source loaders, quality control, the build, and the loader of the built corpus."""

from cellang.corpus.store import Corpus, Pathway, load_corpus, vocabulary_genes

__all__ = ["Corpus", "Pathway", "load_corpus", "vocabulary_genes"]
