"""cellang: do cells have a language?

The core package holds all logic; the Streamlit pages and the scripts only call it.
Data flows one way: sources -> data -> tokenisers -> models -> workflows -> app/scripts. One package per
workflow: ``completion`` (a gene list becomes a completion), ``embedding`` (cells become embeddings),
``perturbation`` (a deletion is scored). What several workflows share (``enrich``, ``overview``,
``browse``, ``plots``, ``stats``) sits at this level, beside the lower layers (``genes``, ``gmt``,
``corpus``, ``cells``, ``atlas``, ``preprocess``, ``tokenizers``, ``models``, ``training``, ``checkpoints``,
``device``, ``progress``).
Inference never imports training: each workflow reads its models through its ``loading`` module.
"""

__version__ = "0.1.0"
