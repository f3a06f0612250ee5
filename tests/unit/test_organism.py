"""Organism presets: what `organism: human | mouse` fills in, and that the bundled files exist."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from clonetrack import organism
from clonetrack.clones import cnv
from clonetrack.io.tables import load_markers

ROOT = Path(__file__).resolve().parents[2]


def default_config(**overrides) -> dict:
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config.update(overrides)
    return config


@pytest.mark.parametrize("name", organism.ORGANISMS)
def test_every_preset_setting_is_left_to_the_organism_in_the_shipped_config(name):
    config = default_config(organism=name)
    completed, filled = organism.apply_preset(config, basedir=ROOT)
    assert sorted(filled) == sorted(".".join(p) for p in organism.PRESETS[name])
    for path, value in organism.PRESETS[name].items():
        node = completed
        for key in path:
            node = node[key]
        if isinstance(value, str) and value.startswith("resources/"):
            assert (ROOT / value).exists(), value  # every bundled file of a preset ships
            assert Path(node).absolute() == ROOT / value
        else:
            assert node == value


def test_explicit_settings_win_over_the_preset_and_false_means_no_reference():
    config = default_config(organism="mouse", normal_reference=False)
    config["qc"]["mito_prefix"] = "MT-"
    completed, filled = organism.apply_preset(config, basedir=ROOT)
    assert completed["qc"]["mito_prefix"] == "MT-" and "qc.mito_prefix" not in filled
    assert completed["qc"]["ribo_prefixes"] == ["Rps", "Rpl"]
    assert completed["normal_reference"] is None
    assert config["qc"]["ribo_prefixes"] is None  # the caller's config is left as it was


def test_mouse_has_no_gene_positions_so_copy_number_says_why():
    completed, _ = organism.apply_preset(default_config(organism="mouse"), basedir=ROOT)
    assert "no gene positions for organism mouse" in organism.cnv_unavailable_reason(completed)
    human, _ = organism.apply_preset(default_config(), basedir=ROOT)
    assert organism.cnv_unavailable_reason(human) is None
    human["clones"]["infer_cnv"] = False
    assert organism.cnv_unavailable_reason(human) == "clones.infer_cnv is off"


def test_mouse_panel_has_the_human_panels_cell_types_in_mouse_symbols():
    human = load_markers(ROOT / "resources/markers/bone_marrow_markers.tsv")
    mouse = load_markers(ROOT / "resources/markers/mouse_marrow_markers.tsv")
    assert set(mouse["cell_type"]) == set(human["cell_type"])
    genes = mouse["gene"].astype(str)
    assert (genes.str[0].str.isupper() & ~genes.str[1:].str.isupper()).all()
    assert not mouse.duplicated(["cell_type", "gene"]).any()


def test_copy_number_guard_counts_all_genes_not_only_the_positioned_ones():
    positions = pd.DataFrame(
        {"chromosome": "chr1", "start": range(61), "end": range(1, 62)},
        index=pd.Index([f"G{i}" for i in range(61)], name="gene"),
    )
    mouse_like = pd.Index([f"G{i}" for i in range(61)] + [f"Other{i}" for i in range(2439)])
    reason = cnv.unpositioned_reason(mouse_like, positions, source="positions.tsv")
    assert reason.startswith("only 61 of 2500 genes (2.4%) have a position in positions.tsv")
    assert cnv.unpositioned_reason(pd.Index([f"G{i}" for i in range(61)]), positions) is None
