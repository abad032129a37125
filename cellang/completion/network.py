"""A completion as a network: predicted genes linked to the prompt genes they share training sets with.

In:  the prompt genes, the predicted genes with scores, the training gene sets (or a prebuilt
     :class:`CoMembership`), optionally the held-out genes.
Out: a :class:`networkx.Graph` (``co_membership_graph``) and a self-contained HTML page drawing it
     (``render_network_html``: pyvis/vis-network inlined, no outside resources, labels escaped).

Edges say "these two genes sit together in N training gene sets": they explain a prediction by
the corpus, not by the model, so they are evidence a person can check.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterable, Sequence

import networkx as nx
import numpy as np
import scipy.sparse as sp

ROLES = ("prompt", "recovered", "novel")
ROLE_COLOURS = {"prompt": "#4c78a8", "recovered": "#54a24b", "novel": "#f58518"}
ROLE_SHAPES = {"prompt": "dot", "recovered": "diamond", "novel": "triangle"}  # not by colour alone
ROLE_MEANING = {
    "prompt": "shown to the model",
    "recovered": "predicted and held out (a hit)",
    "novel": "predicted, not in the input",
}


class CoMembership:
    """A sparse binary gene x set matrix of the training sets, for counting shared sets fast.

    Build it once per corpus (it is immutable) and reuse it: ``shared`` is a sparse product of a few
    rows, milliseconds for hundreds of genes.
    """

    def __init__(self, train_sets: Iterable[Iterable[str]]):
        index: dict[str, int] = {}
        rows: list[int] = []
        columns: list[int] = []
        n_sets = 0
        for column, gene_set in enumerate(train_sets):
            for gene in dict.fromkeys(gene_set):
                rows.append(index.setdefault(gene, len(index)))
                columns.append(column)
            n_sets = column + 1
        self.index = index
        self.n_sets = n_sets
        self.matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.int32), (np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64))),
            shape=(len(index), n_sets),
        )

    def __contains__(self, gene: object) -> bool:
        return gene in self.index

    def _rows(self, genes: Sequence[str]) -> sp.csr_matrix:
        """Rows of ``genes`` in order; a gene outside the training sets gives an empty row."""
        known = [(i, self.index[g]) for i, g in enumerate(genes) if g in self.index]
        selector = sp.csr_matrix(
            (np.ones(len(known), dtype=np.int32),
             ([i for i, _ in known], [j for _, j in known])),
            shape=(len(genes), len(self.index)),
        )
        return selector @ self.matrix

    def shared(self, a_genes: Sequence[str], b_genes: Sequence[str]) -> np.ndarray:
        """(len(a_genes), len(b_genes)) int array: how many training sets hold both genes."""
        a_genes, b_genes = list(a_genes), list(b_genes)
        if not a_genes or not b_genes:
            return np.zeros((len(a_genes), len(b_genes)), dtype=np.int64)
        product = self._rows(a_genes) @ self._rows(b_genes).T
        return np.asarray(product.toarray(), dtype=np.int64)


def co_membership_graph(prompt: Sequence[str], predicted: Sequence[tuple[str, float]],
                        train_sets: CoMembership | Iterable[Iterable[str]], max_edges_per_gene: int = 5,
                        masked: Collection[str] | None = None, *, keep_isolated_prompt: bool = True) -> nx.Graph:
    """Prompt and predicted genes as nodes; each predicted gene linked to the prompt genes it shares
    the most training sets with.

    Nodes carry ``role`` (``prompt``; ``recovered`` when a predicted gene is in ``masked``, else
    ``novel``) and, for predicted genes, ``score`` and ``rank`` (1 = best). Edges carry ``weight``,
    the number of shared training sets (only weight >= 1, at most ``max_edges_per_gene`` per
    predicted gene, strongest first, ties in prompt order). A predicted gene that is also a prompt
    gene stays a prompt node; repeats keep their first score. ``keep_isolated_prompt=False`` drops
    prompt genes without an edge (for large prompts).
    """
    if max_edges_per_gene < 0:
        raise ValueError(f"max_edges_per_gene must be >= 0, got {max_edges_per_gene}")
    co = train_sets if isinstance(train_sets, CoMembership) else CoMembership(train_sets)
    prompt_genes = list(dict.fromkeys(prompt))
    prompt_set = set(prompt_genes)
    held_out = set(masked or ())
    scored: dict[str, float] = {}
    for gene, score in predicted:
        if gene not in prompt_set and gene not in scored:
            scored[gene] = float(score)
    predicted_genes = list(scored)

    graph = nx.Graph()
    for gene in prompt_genes:
        graph.add_node(gene, role="prompt")
    for rank, gene in enumerate(predicted_genes, start=1):
        graph.add_node(gene, role="recovered" if gene in held_out else "novel", score=scored[gene], rank=rank)

    if max_edges_per_gene and predicted_genes and prompt_genes:
        counts = co.shared(predicted_genes, prompt_genes)
        for row, gene in zip(counts, predicted_genes):
            order = np.argsort(-row, kind="stable")[:max_edges_per_gene]
            for column in order:
                if row[column] < 1:
                    break
                graph.add_edge(gene, prompt_genes[column], weight=int(row[column]))
    if not keep_isolated_prompt:
        graph.remove_nodes_from([g for g in prompt_genes if graph.degree(g) == 0])
    return graph


# --- HTML ---------------------------------------------------------------------------------------

_OPTIONS = {
    "layout": {"randomSeed": 7, "improvedLayout": True},
    "physics": {
        "solver": "forceAtlas2Based",
        "forceAtlas2Based": {"gravitationalConstant": -40, "springLength": 90, "avoidOverlap": 0.4},
        "stabilization": {"enabled": True, "iterations": 300, "fit": True},
    },
    "interaction": {"hover": True, "tooltipDelay": 120, "navigationButtons": False},
    "nodes": {"font": {"size": 14, "face": "sans-serif"}, "borderWidth": 1},
    "edges": {"color": {"color": "#b0b0b0", "highlight": "#555555"}, "smooth": False},
}
# pyvis' template loads Bootstrap from a CDN even in "in_line" mode; nothing here needs it.
_OUTSIDE_TAG = re.compile(
    r"<link\b[^>]*\bhref\s*=\s*[\"']?\s*(?:https?:)?//[^>]*>"
    r"|<script\b[^>]*\bsrc\s*=\s*[\"']?\s*(?:https?:)?//[^>]*>\s*</script\s*>",
    re.IGNORECASE | re.DOTALL,
)
# ... and keeps a commented-out pair of local <link>/<script> tags; drop comments holding tags.
_TAG_COMMENT = re.compile(r"<!--(?:(?!-->).)*?<(?:script|link)\b(?:(?!-->).)*-->", re.IGNORECASE | re.DOTALL)
_ANY_OUTSIDE = re.compile(
    r"<script\b[^>]*\bsrc\s*=|<link\b[^>]*\bhref\s*=|<(?:img|iframe)\b[^>]*\bsrc\s*=\s*[\"']?\s*(?:https?:)?//",
    re.IGNORECASE,
)


def _title(gene: str, data: dict) -> str:
    lines = [gene, f"{data.get('role', 'gene')}: {ROLE_MEANING.get(data.get('role', ''), '')}"]
    if "score" in data:
        lines.append(f"rank {data.get('rank', '?')}, score {data['score']:.4g}")
    return html.escape("\n".join(lines))


def render_network_html(graph: nx.Graph, *, height: str = "560px") -> str:
    """A self-contained HTML page drawing ``graph`` with vis-network (inlined: works offline).

    Nodes are coloured by ``role`` (see ``ROLE_COLOURS``), predicted genes sized by rank, edges
    widened by ``weight``. Labels and tooltips are HTML-escaped, and the node data is embedded as
    script-safe JSON. Equal graphs (same nodes, edges and attributes in the same order) give equal
    HTML; the layout itself is computed in the browser from a fixed seed.
    """
    from pyvis.network import Network

    network = Network(height=height, width="100%", cdn_resources="in_line", bgcolor="#ffffff")
    ids = {gene: number for number, gene in enumerate(graph.nodes)}
    n_predicted = max(1, sum(1 for _, d in graph.nodes(data=True) if "rank" in d))
    for gene, data in graph.nodes(data=True):
        role = data.get("role", "novel")
        size = 14 if role == "prompt" else 10 + 14 * (1 - (data.get("rank", n_predicted) - 1) / n_predicted)
        network.add_node(ids[gene], label=html.escape(str(gene)), title=_title(str(gene), data),
                         color=ROLE_COLOURS.get(role, "#999999"), size=round(size, 2),
                         shape=ROLE_SHAPES.get(role, "dot"))  # no "group": pyvis would drop the colour
    for a, b, data in graph.edges(data=True):
        weight = int(data.get("weight", 1))
        network.add_edge(ids[a], ids[b], value=weight,
                         title=html.escape(f"{a} and {b}: {weight} shared training set{'s' if weight != 1 else ''}"))
    network.options = dict(_OPTIONS)  # a plain dict is dumped as JSON by pyvis
    page = network.generate_html()
    page = _TAG_COMMENT.sub("", _OUTSIDE_TAG.sub("", page))
    if _ANY_OUTSIDE.search(page):  # pyvis changed its template: fail loudly rather than phone home
        raise RuntimeError("the network page would load an outside resource; refusing to render it")
    return page


def network_legend() -> str:
    """Markdown naming the colours and shapes, for a caption under the drawing."""
    return " · ".join(f":{_MARKDOWN_COLOUR[role]}[{_SYMBOL[role]}] **{role}**: {ROLE_MEANING[role]}"
                      for role in ROLES)


_MARKDOWN_COLOUR = {"prompt": "blue", "recovered": "green", "novel": "orange"}
_SYMBOL = {"prompt": "●", "recovered": "◆", "novel": "▲"}


def graph_summary(graph: nx.Graph) -> dict[str, int]:
    """Counts for a caption: nodes per role, edges, predicted genes without any edge."""
    roles = [d.get("role") for _, d in graph.nodes(data=True)]
    return {
        **{role: roles.count(role) for role in ROLES},
        "edges": graph.number_of_edges(),
        "unlinked_predictions": sum(1 for g, d in graph.nodes(data=True)
                                    if d.get("role") != "prompt" and graph.degree(g) == 0),
    }


__all__ = ["CoMembership", "ROLES", "ROLE_COLOURS", "co_membership_graph", "graph_summary",
           "network_legend", "render_network_html"]
