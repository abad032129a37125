"""PathwayVocabulary and PathwayBatcher: where gene symbols become tokens and batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cellang.tokenizers.pathway import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    PathwayBatcher,
    PathwayVocabulary,
)

SETS = [
    ("TP53", "MDM2", "CDKN1A"),
    ("MYC", "MAX"),
    ("EGFR", "GRB2", "SOS1", "KRAS", "BRAF", "MAP2K1", "MAPK1"),
    ("TP53", "ATM", "CHEK2", "BRCA1"),
    ("GAPDH",),
]


def test_vocabulary_puts_specials_first_then_sorted_genes() -> None:
    vocabulary = PathwayVocabulary.from_gene_sets(SETS)
    all_genes = sorted({g for s in SETS for g in s})
    assert len(vocabulary) == len(SPECIAL_TOKENS) + len(all_genes)
    assert [vocabulary.token(i) for i in range(4)] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert vocabulary.genes == tuple(all_genes)
    assert vocabulary.gene_ids(["ATM"]) == [4]  # "ATM" sorts first


def test_encode_wraps_in_bos_eos_and_shuffles_only_with_rng() -> None:
    vocabulary = PathwayVocabulary.from_gene_sets(SETS)
    genes = SETS[2]
    plain = vocabulary.encode(genes)
    assert plain[0] == BOS_ID and plain[-1] == EOS_ID
    assert vocabulary.decode(plain) == list(genes)

    rng = np.random.default_rng(0)
    orders = {tuple(vocabulary.decode(vocabulary.encode(genes, rng))) for _ in range(20)}
    assert len(orders) > 1, "an rng must change the gene order"
    assert all(sorted(order) == sorted(genes) for order in orders), "shuffling must keep the set"


def test_decode_drops_special_tokens() -> None:
    vocabulary = PathwayVocabulary.from_gene_sets(SETS)
    ids = [BOS_ID, *vocabulary.gene_ids(["MYC", "MAX"]), EOS_ID, PAD_ID, PAD_ID, 3]
    assert vocabulary.decode(ids) == ["MYC", "MAX"]
    assert vocabulary.decode(torch.tensor(ids)) == ["MYC", "MAX"]


def test_unknown_gene_raises_key_error_naming_it() -> None:
    vocabulary = PathwayVocabulary.from_gene_sets(SETS)
    with pytest.raises(KeyError, match="NOTAGENE1"):
        vocabulary.encode(["TP53", "NOTAGENE1"])
    with pytest.raises(KeyError, match="<bos>"):
        vocabulary.gene_ids(["<bos>"])  # special tokens are not genes


def test_special_token_cannot_be_a_gene() -> None:
    with pytest.raises(ValueError, match="reserved"):
        PathwayVocabulary(["TP53", "<eos>"])


def test_vocabulary_json_and_file_round_trip(tmp_path) -> None:
    vocabulary = PathwayVocabulary.from_gene_sets(SETS)
    again = PathwayVocabulary.from_json(vocabulary.to_json())
    assert again == vocabulary and again.genes == vocabulary.genes
    vocabulary.save(tmp_path / "vocabulary.json")
    loaded = PathwayVocabulary.load(tmp_path / "vocabulary.json")
    assert loaded == vocabulary
    assert loaded.encode(SETS[0]) == vocabulary.encode(SETS[0])


def test_from_json_rejects_reordered_genes_and_foreign_formats() -> None:
    data = PathwayVocabulary.from_gene_sets(SETS).to_json()
    with pytest.raises(ValueError, match="sorted"):
        PathwayVocabulary.from_json({**data, "genes": list(reversed(data["genes"]))})
    with pytest.raises(ValueError, match="format"):
        PathwayVocabulary.from_json({**data, "format": "something-else"})


def _batcher(**overrides) -> tuple[PathwayBatcher, PathwayVocabulary]:
    vocabulary = PathwayVocabulary.from_gene_sets(SETS)
    options = dict(batch_size=2, block_size=16, seed=3, drop_last=False)
    options.update(overrides)
    return PathwayBatcher(SETS, vocabulary, **options), vocabulary


def _rows(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Full token rows: the first input token followed by the targets."""
    return torch.cat([inputs[:, :1], targets], dim=1)


def test_each_row_is_exactly_one_pathway() -> None:
    batcher, vocabulary = _batcher()
    seen = []
    for inputs, targets in batcher.epoch_batches(0):
        assert inputs.dtype == torch.long and inputs.shape == targets.shape
        for row in _rows(inputs, targets).tolist():
            assert row[0] == BOS_ID
            assert row.count(BOS_ID) == 1, "a row must never hold two pathways"
            assert row.count(EOS_ID) == 1
            end = row.index(EOS_ID)
            assert all(token == PAD_ID for token in row[end + 1 :]), "only padding after <eos>"
            seen.append(frozenset(vocabulary.decode(row)))
    assert sorted(seen, key=sorted) == sorted((frozenset(s) for s in SETS), key=sorted)


def test_targets_are_inputs_shifted_left_with_pad_after_the_end() -> None:
    batcher, _ = _batcher(batch_size=5)
    inputs, targets = next(batcher.epoch_batches(0))
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    longest = max(len(s) for s in SETS)
    assert inputs.shape[1] == longest + 1  # <bos> + genes; the final <eos> is only a target
    lengths = (targets != PAD_ID).sum(dim=1)
    assert sorted(lengths.tolist()) == sorted(len(s) + 1 for s in SETS)


def test_long_sets_are_truncated_to_a_random_subset() -> None:
    batcher, vocabulary = _batcher(batch_size=5, block_size=4)
    subsets = set()
    for epoch in range(5):
        for inputs, targets in batcher.epoch_batches(epoch):
            assert inputs.shape[1] <= 4
            for row in _rows(inputs, targets).tolist():
                genes = vocabulary.decode(row)
                assert len(genes) <= 3 and row.count(EOS_ID) == 1
                if len(genes) == 3 and set(genes) <= set(SETS[2]):
                    subsets.add(frozenset(genes))
    assert len(subsets) > 1, "truncation must happen after shuffling, not always keep the same genes"


def test_batches_are_reproducible_and_change_every_epoch() -> None:
    first, _ = _batcher()
    second, _ = _batcher()
    epoch0 = [b[0] for b in first.epoch_batches(0)]
    assert all(torch.equal(a, b[0]) for a, b in zip(epoch0, second.epoch_batches(0)))
    epoch1 = [b[0] for b in first.epoch_batches(1)]
    assert any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(epoch0, epoch1))
    other_seed, _ = _batcher(seed=4)
    assert any(
        a.shape != b[0].shape or not torch.equal(a, b[0]) for a, b in zip(epoch0, other_seed.epoch_batches(0))
    )


def test_stream_resumes_from_any_position() -> None:
    batcher, _ = _batcher()
    assert batcher.batches_per_epoch == 3  # 5 sets in batches of 2, last one short
    reference = list(itertools.islice(batcher.stream(), 10))
    for start in (0, 2, 3, 7):
        resumed = list(itertools.islice(batcher(start), 10 - start))
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(reference[start:], resumed))


def test_drop_last_keeps_batch_size_fixed() -> None:
    batcher, _ = _batcher(drop_last=True)
    assert batcher.batches_per_epoch == 2
    assert all(len(inputs) == 2 for inputs, _ in itertools.islice(batcher.stream(), 8))
    with pytest.raises(ValueError, match="cannot fill"):
        _batcher(batch_size=6, drop_last=True)


def test_batcher_rejects_unknown_genes() -> None:
    vocabulary = PathwayVocabulary.from_gene_sets(SETS[:1])
    with pytest.raises(KeyError, match="MYC"):
        PathwayBatcher(SETS, vocabulary, batch_size=2, block_size=8, seed=0)
