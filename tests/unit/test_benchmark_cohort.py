"""The benchmark's cohort, written by the simulator, is what the workflow accepts."""

import importlib.util
from pathlib import Path

import numpy as np
from clonetrack.io import read_counts
from clonetrack.io.sheet import read_sample_sheet

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_cohort.py"


def load():
    spec = importlib.util.spec_from_file_location("benchmark_cohort", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cohort_size_gives_about_the_requested_cells():
    bench = load()
    for n_cells, per_sample in ((100_000, 8_000), (20_000, 8_000), (1_000_000, 8_000)):
        n_patients, n_good = bench.cohort_size(n_cells, per_sample)
        # good cells plus 5% low-quality cells and 5% doublets, three samples per patient
        total = n_patients * 3 * (n_good + 2 * round(0.05 * n_good))
        assert n_patients >= 2 and abs(total - n_cells) <= 6 * n_patients
    assert bench.cohort_size(100_000, 8_000)[0] == 4  # the 12 samples of the 100k runs


def test_written_cohort_reads_as_a_sample_sheet(tmp_path):
    bench = load()
    sheet = bench.write_cohort(tmp_path, 1_200, n_genes=3_000, cells_per_sample=200, seed=0)
    samples = read_sample_sheet(sheet)
    assert len(samples) == 6 and samples["patient_id"].nunique() == 2
    assert (samples["batch"] == samples.index).all()  # one batch per sample, as the bare script
    total = 0
    for sample_id, row in samples.iterrows():
        adata = read_counts(tmp_path / row["path"], sample_id=sample_id, fmt=row["format"])
        x = adata.X
        assert adata.n_vars == 3_000 and adata.var_names.str.startswith("MT-").sum() == 13
        assert np.array_equal(x.data, np.round(x.data)) and x.data.min() > 0
        lib = np.asarray(x.sum(1)).ravel()
        assert 1_500 < np.median(lib) < 2_800  # about 2,000 UMIs per cell
        assert adata.obs_names.is_unique
        total += adata.n_obs
    assert abs(total - 1_200) <= 12
