"""Organism presets: the gene patterns, marker panel and reference files that follow from it.

``organism: human | mouse`` in the config picks a preset. Each setting below is ``null`` in
``config/config.yaml``, meaning "the organism's value"; a value given there wins over the preset.
This table is the one definition of what each organism implies; config comments and
``docs/methods.md`` point here.
"""

from __future__ import annotations

import os
from copy import deepcopy

#: Settings each organism fills in, by config path. Paths are relative to the workflow's folder.
#: ``None`` means the organism has no such file: copy number is skipped (no gene positions) or
#: there is no healthy reference, each with its reason in the outputs.
PRESETS: dict[str, dict[tuple[str, ...], object]] = {
    "human": {
        ("qc", "mito_prefix"): "MT-",
        ("qc", "ribo_prefixes"): ["RPS", "RPL"],
        # HBA1, HBB, ... but not HBEGF, HBS1L or HBP1.
        ("qc", "hb_pattern"): r"^HB(?!EGF|S1L|P1)[ABDEGMQZ]\d?$",
        ("annotation", "markers"): "resources/markers/bone_marrow_markers.tsv",
        ("clones", "cnv", "gene_positions"): "resources/genes/hg38_gene_positions.tsv.gz",
        ("normal_reference",): "resources/reference/healthy_marrow.h5ad",
    },
    "mouse": {
        ("qc", "mito_prefix"): "mt-",
        ("qc", "ribo_prefixes"): ["Rps", "Rpl"],
        # Hba-a1, Hba-a2, Hbb-bs, Hbb-bt, Hbb-y, ... (MGI symbols); not Hbegf or Hbs1l.
        ("qc", "hb_pattern"): r"^Hb[ab]-",
        ("annotation", "markers"): "resources/markers/mouse_marrow_markers.tsv",
        # No mouse gene positions are bundled: give a table (symbol, chromosome, start, end) here
        # to infer copy number in mouse.
        ("clones", "cnv", "gene_positions"): None,
        ("normal_reference",): None,
    },
}
ORGANISMS = tuple(PRESETS)


def _get(config: dict, path: tuple[str, ...]):
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    return node, node.get(path[-1])


def apply_preset(config: dict, *, basedir: str | os.PathLike) -> tuple[dict, list[str]]:
    """Fill every preset setting left ``null`` with the organism's value (in a copy).

    Bundled files become absolute paths under ``basedir`` (the workflow's folder), so that a run
    from another working directory finds them. ``normal_reference: false`` means none, whatever
    the organism.

    Returns
    -------
    The completed config, and the settings the preset filled (dotted paths).
    """
    organism = config.get("organism", "human")
    if organism not in PRESETS:
        raise ValueError(f"organism {organism!r}: choose one of {ORGANISMS}")
    out = deepcopy(config)
    filled = []
    for path, value in PRESETS[organism].items():
        node, current = _get(out, path)
        if current is not None:
            continue
        if isinstance(value, str) and value.startswith("resources/"):
            bundled = os.path.join(os.fspath(basedir), value)
            # short in messages when run from the workflow's folder, absolute from elsewhere
            if os.path.abspath(value) != os.path.abspath(bundled):
                value = bundled
        node[path[-1]] = deepcopy(value)
        filled.append(".".join(path))
    if out.get("normal_reference") is False:
        out["normal_reference"] = None
    return out, filled


def cnv_unavailable_reason(config: dict) -> str | None:
    """Why copy number is not inferred, or ``None`` when it is."""
    if not config["clones"]["infer_cnv"]:
        return "clones.infer_cnv is off"
    if not config["clones"]["cnv"]["gene_positions"]:
        return (
            f"no gene positions for organism {config.get('organism', 'human')} "
            "(clones.cnv.gene_positions): copy number skipped"
        )
    return None
