"""The defaults that more than one door offers (the Python API, the command line and the pages), each written once
here so that the doors cannot drift apart. Light on purpose: importing it loads nothing else.

A default that belongs to one function stays beside it; a setting chosen on validation data stays with the
record that says how it was chosen (e.g. ``checkpoints/pathway-gpt/completer.json``).
"""

ADAPT_MINUTES = 5.0  # adapting an encoder to new cells without labels (cl.tl.adapt, cellang adapt, both cell pages)
FINE_TUNE_MINUTES = 5.0  # fine-tuning an encoder on labelled states (cl.tl.fine_tune, cellang classify, both pages)
# Fine-tuning on the start and goal states before a deletion run (the deletion page; cellang delete --fine-tune and
# cl.tl.rank_deletions(fine_tune_minutes=) take it as their value); the validity benchmark measured 3 minutes.
FINE_TUNE_FIRST_MINUTES = 3.0
