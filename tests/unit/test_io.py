"""Count and clone-table readers, the bad-input catalogue, and the atomic writers."""

import gzip
import os
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from clonetrack import io
from clonetrack.errors import InputError
from clonetrack.io import readers

# The shared real data sits beside the repository (../shared/data).
DATA = next(
    (
        p
        for p in (
            Path(__file__).resolve().parents[3] / "shared" / "data",
            Path("/work/shared/data"),
        )
        if p.exists()
    ),
    Path("/work/shared/data"),
)

# cells x genes; zeros included so sparse storage and explicit entries both matter
COUNTS = np.array(
    [
        [0, 3, 0, 1],
        [2, 0, 0, 7],
        [0, 0, 5, 0],
    ]
)
BARCODES = ["AAAC-1", "AAAG-1", "TTTC-1"]
GENE_IDS = ["ENSG01", "ENSG02", "ENSG03", "ENSG04"]
SYMBOLS = ["CD3E", "MT-CO1", "HBB", "LYZ"]


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as fh:
        fh.write(text)
    return path


def write_mtx(path: Path, genes_by_cells: np.ndarray, *, declared=None, field="integer") -> Path:
    rows, cols = np.nonzero(genes_by_cells)
    n_rows, n_cols = genes_by_cells.shape
    declared = len(rows) if declared is None else declared
    lines = [
        f"%%MatrixMarket matrix coordinate {field} general",
        "%metadata_json: {}",
        f"{n_rows} {n_cols} {declared}",
    ]
    lines += [f"{r + 1} {c + 1} {genes_by_cells[r, c]}" for r, c in zip(rows, cols, strict=True)]
    return _text(path, "\n".join(lines) + "\n")


def write_10x_v3(
    folder: Path,
    *,
    counts=COUNTS,
    barcodes=BARCODES,
    ids=GENE_IDS,
    names=SYMBOLS,
    extra_feature=True,
) -> Path:
    """Cell Ranger 3 folder, gzipped, with an antibody feature that must be dropped."""
    matrix = counts.T
    features = [f"{i}\t{n}\tGene Expression" for i, n in zip(ids, names, strict=True)]
    if extra_feature:
        matrix = np.vstack([matrix, np.full((1, counts.shape[0]), 9)])
        features.append("CD3_TotalSeqB\tCD3\tAntibody Capture")
    write_mtx(folder / "matrix.mtx.gz", matrix)
    _text(folder / "features.tsv.gz", "\n".join(features) + "\n")
    _text(folder / "barcodes.tsv.gz", "\n".join(barcodes) + "\n")
    return folder


def write_10x_v2(folder: Path) -> Path:
    write_mtx(folder / "matrix.mtx", COUNTS.T)
    _text(
        folder / "genes.tsv", "".join(f"{i}\t{n}\n" for i, n in zip(GENE_IDS, SYMBOLS, strict=True))
    )
    _text(folder / "barcodes.tsv", "".join(f"{b}\n" for b in BARCODES))
    return folder


def write_10x_h5(path: Path, *, counts=COUNTS, barcodes=BARCODES, names=SYMBOLS) -> Path:
    """Cell Ranger 3 .h5 layout: features x cells in CSC."""
    csc = sp.csr_matrix(counts)  # CSR of cells x genes == CSC of genes x cells
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"] = csc.data.astype(np.int32)
        g["indices"] = csc.indices.astype(np.int64)
        g["indptr"] = csc.indptr.astype(np.int64)
        g["shape"] = np.array([counts.shape[1], counts.shape[0]], dtype=np.int32)
        g["barcodes"] = np.array(barcodes, dtype="S")
        feat = g.create_group("features")
        feat["id"] = np.array(GENE_IDS, dtype="S")
        feat["name"] = np.array(names, dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * len(GENE_IDS), dtype="S")
        feat["genome"] = np.array(["GRCh38"] * len(GENE_IDS), dtype="S")
    return path


def write_dense(
    path: Path, *, counts=COUNTS, names=SYMBOLS, barcodes=BARCODES, sep="\t", corner="Gene"
) -> Path:
    header = ([corner] if corner is not None else []) + list(barcodes)
    lines = [sep.join(header)]
    lines += [sep.join([g, *map(str, counts[:, j])]) for j, g in enumerate(names)]
    return _text(path, "\n".join(lines) + "\n")


def assert_contract(adata, sample_id="S1", names=SYMBOLS):
    assert sp.isspmatrix_csr(adata.X) or isinstance(adata.X, sp.csr_array)
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X.toarray(), COUNTS)
    assert adata.obs_names.tolist() == [f"{sample_id}_{b}" for b in BARCODES]
    assert adata.obs["barcode"].tolist() == BARCODES
    assert (adata.obs["sample_id"] == sample_id).all()
    assert adata.var_names.tolist() == names


# ---------------------------------------------------------------------------------------------
# format detection


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("x.h5", "10x_h5"),
        ("x.h5ad", "h5ad"),
        ("x.txt.gz", "dense_txt"),
        ("x.TSV", "dense_txt"),
        ("x.csv.gz", "dense_txt"),
        ("x.txt", "dense_txt"),
    ],
)
def test_detect_format_files(tmp_path, name, fmt):
    (tmp_path / name).touch()
    assert io.detect_format(tmp_path / name) == fmt


def test_detect_format_folders(tmp_path):
    assert io.detect_format(write_10x_v3(tmp_path / "v3")) == "10x_mtx"
    assert io.detect_format(write_10x_v2(tmp_path / "v2")) == "10x_mtx"
    (tmp_path / "outs" / "filtered_feature_bc_matrix").mkdir(parents=True)
    with pytest.raises(InputError, match=r"outs is a folder without matrix\.mtx.*did you mean"):
        io.detect_format(tmp_path / "outs")


def test_detect_format_unknown(tmp_path):
    (tmp_path / "counts.loom").touch()
    with pytest.raises(
        InputError, match=r"cannot tell the format of .*counts\.loom.*set the `format` column"
    ):
        io.detect_format(tmp_path / "counts.loom")


# ---------------------------------------------------------------------------------------------
# readers on tiny fixtures


def test_read_10x_v2(tmp_path):
    adata = io.read_counts(write_10x_v2(tmp_path / "v2"), sample_id="S1")
    assert_contract(adata)
    assert adata.var["gene_ids"].tolist() == GENE_IDS
    assert adata.uns["clonetrack"]["read"]["format"] == "10x_mtx"


def test_read_10x_v3_keeps_gene_expression(tmp_path):
    adata = io.read_counts(write_10x_v3(tmp_path / "v3"), sample_id="S1")
    assert_contract(adata)  # the antibody row (all 9s) is gone
    assert adata.var["gene_ids"].tolist() == GENE_IDS
    everything = io.read_counts(tmp_path / "v3", sample_id="S1", feature_type=None)
    assert everything.n_vars == 5 and everything.X[:, 4].sum() == 27


def test_read_10x_duplicate_symbols_made_unique(tmp_path):
    names = ["CD3E", "TBCE", "TBCE", "TBCE"]
    adata = io.read_counts(write_10x_v3(tmp_path / "v3", names=names), sample_id="S1")
    assert adata.var_names.tolist() == ["CD3E", "TBCE", "TBCE-1", "TBCE-2"]
    assert adata.var["gene_ids"].tolist() == GENE_IDS
    assert adata.uns["clonetrack"]["read"]["n_genes_renamed"] == 2


def test_read_10x_h5(tmp_path):
    adata = io.read_counts(write_10x_h5(tmp_path / "filtered_feature_bc_matrix.h5"), sample_id="S1")
    assert_contract(adata)
    assert adata.var["gene_ids"].tolist() == GENE_IDS
    assert adata.uns["clonetrack"]["read"]["format"] == "10x_h5"


@pytest.mark.parametrize("where", ["X", "layers"])
def test_read_h5ad(tmp_path, where):
    var = pd.DataFrame({"gene_ids": GENE_IDS, "highly_variable": True}, index=SYMBOLS)
    if where == "X":
        src = ad.AnnData(
            X=sp.csc_matrix(COUNTS.astype(np.int64)), obs=pd.DataFrame(index=BARCODES), var=var
        )
    else:  # X normalised, raw counts in layers
        src = ad.AnnData(
            X=np.log1p(COUNTS.astype(np.float32)), obs=pd.DataFrame(index=BARCODES), var=var
        )
        src.layers["counts"] = sp.csr_matrix(COUNTS)
    src.obs["leiden"] = "0"
    src.write_h5ad(tmp_path / "s.h5ad")
    adata = io.read_counts(tmp_path / "s.h5ad", sample_id="S1")
    assert_contract(adata)
    assert adata.var["gene_ids"].tolist() == GENE_IDS
    assert list(adata.obs.columns) == ["barcode", "sample_id"]  # foreign annotations dropped


@pytest.mark.parametrize(
    ("name", "sep", "corner"),
    [("s.dem.txt.gz", "\t", "Gene"), ("s.csv", ",", ""), ("s.tsv", "\t", None)],
)
def test_read_dense(tmp_path, name, sep, corner):
    path = write_dense(tmp_path / name, sep=sep, corner=corner)
    adata = io.read_counts(path, sample_id="S1")
    assert_contract(adata)
    assert "gene_ids" not in adata.var.columns


def test_read_dense_in_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "_DENSE_CHUNK_VALUES", 3)  # one gene per chunk
    assert_contract(io.read_counts(write_dense(tmp_path / "s.txt"), sample_id="S1"))


def test_read_dense_quoted_r_output(tmp_path):
    lines = ['"' + '"\t"'.join(BARCODES) + '"']
    lines += [f'"{g}"\t' + "\t".join(map(str, COUNTS[:, j])) for j, g in enumerate(SYMBOLS)]
    path = _text(tmp_path / "r.txt", "\n".join(lines) + "\n")
    assert_contract(io.read_counts(path, sample_id="S1"))


# ---------------------------------------------------------------------------------------------
# real data


@pytest.mark.realdata
@pytest.mark.skipif(not DATA.exists(), reason="shared real data not mounted")
def test_read_vangalen_dense_matches_pandas():
    path = DATA / "vangalen2019" / "GSM3587996_BM1.dem.txt.gz"
    adata = io.read_counts(path, sample_id="BM1")
    ref = pd.read_csv(path, sep="\t", index_col=0)
    assert adata.shape == (ref.shape[1], ref.shape[0])
    assert adata.X.sum(dtype=np.float64) == ref.to_numpy().sum()
    assert adata.var_names.tolist() == ref.index.tolist()
    for j in (0, 17, ref.shape[1] - 1):
        cell = ref.columns[j]
        np.testing.assert_array_equal(
            adata[f"BM1_{cell}"].X.toarray().ravel(), ref[cell].to_numpy()
        )


@pytest.mark.realdata
@pytest.mark.skipif(not DATA.exists(), reason="shared real data not mounted")
@pytest.mark.parametrize(
    ("chem", "n_cells"), [("pbmc1k_3p_v2", 954), ("pbmc1k_3p_v3", 906), ("pbmc1k_5p", 1000)]
)
def test_read_pbmc_cellranger(chem, n_cells):
    folder = DATA / "pbmc_3chem" / chem / "filtered_feature_bc_matrix"
    adata = io.read_counts(folder, sample_id=chem)
    assert adata.shape == (n_cells, 19974)
    features = pd.read_csv(folder / "features.tsv.gz", sep="\t", header=None)
    # symbols made unique, and the count of renamed ones recorded, however many the release has
    assert adata.var_names.is_unique
    assert adata.uns["clonetrack"]["read"]["n_genes_renamed"] == features[1].duplicated().sum()
    assert adata.var["gene_ids"].tolist() == features[0].tolist()
    with gzip.open(folder / "matrix.mtx.gz", "rt") as fh:
        fh.readline()
        fh.readline()
        nnz = int(fh.readline().split()[2])
    assert adata.X.nnz == nnz


# ---------------------------------------------------------------------------------------------
# bad inputs


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match=r"gone\.h5ad \(sample 'S1'\) does not exist"):
        io.read_counts(tmp_path / "gone.h5ad", sample_id="S1")


def test_unknown_format_argument(tmp_path):
    path = write_dense(tmp_path / "s.txt")
    with pytest.raises(InputError, match=r"unknown format 'loom' for .*s\.txt \(sample 'S1'\)"):
        io.read_counts(path, sample_id="S1", fmt="loom")


@pytest.mark.parametrize("name", ["empty.txt.gz", "empty.h5ad", "empty.h5"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).touch()
    with pytest.raises(InputError, match=rf"{name} \(sample 'S1'\) is empty"):
        io.read_counts(tmp_path / name, sample_id="S1")


def test_empty_gzip_dense(tmp_path):
    path = _text(tmp_path / "blank.txt.gz", "")
    with pytest.raises(InputError, match=r"blank\.txt\.gz \(sample 'S1'\) is empty"):
        io.read_counts(path, sample_id="S1")


def test_dense_header_without_genes(tmp_path):
    path = _text(tmp_path / "nogenes.txt", "Gene\tc1\tc2\n")
    with pytest.raises(InputError, match=r"nogenes\.txt \(sample 'S1'\) has a header but no genes"):
        io.read_counts(path, sample_id="S1")


def test_dense_without_cells(tmp_path):
    path = _text(tmp_path / "nocells.txt", "Gene\nCD3E\nLYZ\n")
    with pytest.raises(InputError, match=r"nocells\.txt \(sample 'S1'\) has 1 header fields"):
        io.read_counts(path, sample_id="S1")


def test_zero_cells_h5ad(tmp_path):
    ad.AnnData(X=np.zeros((0, 4), dtype=np.float32), var=pd.DataFrame(index=SYMBOLS)).write_h5ad(
        tmp_path / "none.h5ad"
    )
    with pytest.raises(InputError, match=r"none\.h5ad \(sample 'S1'\) holds 0 cells and 4 genes"):
        io.read_counts(tmp_path / "none.h5ad", sample_id="S1")


def test_zero_barcodes_10x(tmp_path):
    folder = write_10x_v3(tmp_path / "v3")
    _text(folder / "barcodes.tsv.gz", "")
    with pytest.raises(InputError, match=r"barcodes\.tsv\.gz \(sample 'S1'\) is empty"):
        io.read_counts(folder, sample_id="S1")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(20, len(data) - 10):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _corrupt])
def test_damaged_gzip_dense(tmp_path, damage):
    # enough text that half the compressed stream is mid-data
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(50, 400))
    names = [f"G{i}" for i in range(400)]
    path = write_dense(
        tmp_path / "s.dem.txt.gz", counts=counts, names=names, barcodes=[f"c{i}" for i in range(50)]
    )
    damage(path)
    with pytest.raises(
        InputError, match=r"s\.dem\.txt\.gz \(sample 'S1'\) is truncated or corrupt"
    ):
        io.read_counts(path, sample_id="S1")


@pytest.mark.parametrize("damage", [_truncate, _corrupt])
def test_damaged_gzip_mtx(tmp_path, damage):
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(200, 300))
    folder = write_10x_v3(
        tmp_path / "v3",
        counts=counts,
        barcodes=[f"c{i}" for i in range(200)],
        ids=[f"E{i}" for i in range(300)],
        names=[f"G{i}" for i in range(300)],
        extra_feature=False,
    )
    damage(folder / "matrix.mtx.gz")
    with pytest.raises(
        InputError, match=r"matrix\.mtx\.gz \(sample 'S1'\) is truncated or corrupt"
    ):
        io.read_counts(folder, sample_id="S1")


def test_truncated_plain_mtx(tmp_path):
    folder = write_10x_v2(tmp_path / "v2")
    lines = (folder / "matrix.mtx").read_text().splitlines()
    (folder / "matrix.mtx").write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(
        InputError, match=r"matrix\.mtx \(sample 'S1'\) declares 5 entries but holds 3 complete"
    ):
        io.read_counts(folder, sample_id="S1")


def test_corrupt_h5(tmp_path):
    path = write_10x_h5(tmp_path / "raw.h5")
    _truncate(path)
    with pytest.raises(InputError, match=r"raw\.h5 \(sample 'S1'\) cannot be opened as HDF5"):
        io.read_counts(path, sample_id="S1")


@pytest.mark.parametrize(
    ("bad_file", "text"),
    [("features.tsv.gz", "E1\tA\tGene Expression\n"), ("barcodes.tsv.gz", "AAAC-1\nAAAG-1\n")],
)
def test_mtx_dimension_mismatch(tmp_path, bad_file, text):
    folder = write_10x_v3(tmp_path / "v3")
    _text(folder / bad_file, text)
    with pytest.raises(
        InputError,
        match=r"matrix\.mtx\.gz \(sample 'S1'\) is 5 features x 3 cells but "
        r"features\.tsv\.gz lists "
        r"\d+ features and barcodes\.tsv\.gz lists \d+ barcodes",
    ):
        io.read_counts(folder, sample_id="S1")


def test_lineage_matrix_given_as_counts(tmp_path):
    folder = tmp_path / "tags"
    write_mtx(folder / "matrix.mtx.gz", COUNTS.T)
    _text(folder / "features.tsv.gz", "".join(f"T{i}\tT{i}\tCellTag\n" for i in range(4)))
    _text(folder / "barcodes.tsv.gz", "\n".join(BARCODES) + "\n")
    with pytest.raises(
        InputError,
        match=r"features\.tsv\.gz \(sample 'S1'\) has no 'Gene Expression'.*lineage_barcodes",
    ):
        io.read_counts(folder, sample_id="S1")


def test_non_integer_counts_dense(tmp_path):
    counts = COUNTS.astype(float)
    counts[1, 2] = 0.53
    path = write_dense(tmp_path / "norm.txt", counts=counts)
    with pytest.raises(
        InputError,
        match=r"norm\.txt \(sample 'S1'\) contains non-integer values "
        r"\(e\.g\. 0\.53 for gene HBB in cell AAAG-1\): clonetrack needs raw UMI counts",
    ):
        io.read_counts(path, sample_id="S1")


def test_non_integer_counts_h5ad(tmp_path):
    src = ad.AnnData(
        X=np.log1p(COUNTS.astype(np.float32)),
        obs=pd.DataFrame(index=BARCODES),
        var=pd.DataFrame(index=SYMBOLS),
    )
    src.write_h5ad(tmp_path / "lognorm.h5ad")
    with pytest.raises(
        InputError, match=r"lognorm\.h5ad \(sample 'S1'\) contains non-integer.*layers\['counts'\]"
    ):
        io.read_counts(tmp_path / "lognorm.h5ad", sample_id="S1")


def test_real_field_mtx_with_fractions(tmp_path):
    folder = write_10x_v2(tmp_path / "v2")
    write_mtx(folder / "matrix.mtx", COUNTS.T * 0.5, field="real")
    with pytest.raises(
        InputError, match=r"v2 \(sample 'S1'\) contains non-integer values \(e\.g\. 1\.5 for gene"
    ):
        io.read_counts(folder, sample_id="S1")


def test_negative_counts(tmp_path):
    counts = COUNTS.copy()
    counts[2, 0] = -4
    path = write_dense(tmp_path / "neg.tsv", counts=counts)
    with pytest.raises(
        InputError,
        match=r"neg\.tsv \(sample 'S1'\) contains negative values "
        r"\(e\.g\. -4 for gene CD3E in cell TTTC-1\)",
    ):
        io.read_counts(path, sample_id="S1")


def test_non_numeric_dense(tmp_path):
    path = _text(tmp_path / "words.txt", "Gene\tc1\tc2\nCD3E\t1\tmany\n")
    with pytest.raises(
        InputError, match=r"words\.txt \(sample 'S1'\) could not be parsed as a genes x cells table"
    ):
        io.read_counts(path, sample_id="S1")


def test_dense_short_row(tmp_path):
    path = _text(tmp_path / "short.txt", "Gene\tc1\tc2\nCD3E\t1\t2\nLYZ\t1\n")
    with pytest.raises(
        InputError, match=r"short\.txt \(sample 'S1'\) has an empty count for gene LYZ in cell c2"
    ):
        io.read_counts(path, sample_id="S1")


def test_duplicated_barcodes(tmp_path):
    folder = write_10x_v3(tmp_path / "v3", barcodes=["AAAC-1", "AAAG-1", "AAAC-1"])
    with pytest.raises(
        InputError, match=r"v3 \(sample 'S1'\) has 1 duplicated cell barcodes \(e\.g\. AAAC-1\)"
    ):
        io.read_counts(folder, sample_id="S1")


def test_duplicated_gene_ids(tmp_path):
    folder = write_10x_v3(tmp_path / "v3", ids=["E1", "E2", "E2", "E4"])
    with pytest.raises(
        InputError, match=r"v3 \(sample 'S1'\) has 1 duplicated gene ids \(e\.g\. E2\)"
    ):
        io.read_counts(folder, sample_id="S1")


def test_duplicated_gene_names_dense(tmp_path):
    path = write_dense(tmp_path / "dup.txt.gz", names=["CD3E", "LYZ", "CD3E", "HBB"])
    with pytest.raises(
        InputError,
        match=r"dup\.txt\.gz \(sample 'S1'\) has 1 duplicated gene names \(e\.g\. CD3E\)"
        r".*only gene identifier",
    ):
        io.read_counts(path, sample_id="S1")


def test_duplicated_gene_names_h5ad(tmp_path):
    with pytest.warns(
        UserWarning, match="Variable names are not unique"
    ):  # anndata's own, expected
        src = ad.AnnData(
            X=COUNTS.astype(np.float32),
            obs=pd.DataFrame(index=BARCODES),
            var=pd.DataFrame(index=["A", "B", "A", "C"]),
        )
    src.write_h5ad(tmp_path / "dup.h5ad")
    with pytest.raises(
        InputError, match=r"dup\.h5ad \(sample 'S1'\) has 1 duplicated gene names \(e\.g\. A\)"
    ):
        # anndata repeats the warning on reading the same file back
        with pytest.warns(UserWarning, match="Variable names are not unique"):
            io.read_counts(tmp_path / "dup.h5ad", sample_id="S1")


def test_format_folder_mismatch(tmp_path):
    path = write_dense(tmp_path / "s.txt")
    with pytest.raises(
        InputError, match=r"s\.txt \(sample 'S1'\) is a file but format 10x_mtx needs"
    ):
        io.read_counts(path, sample_id="S1", fmt="10x_mtx")


# ---------------------------------------------------------------------------------------------
# clone tables


def test_read_clone_table(tmp_path):
    path = _text(
        tmp_path / "clones.tsv", "barcode\tclone_id\tconfidence\nAAAC-1\tc1\t0.9\nAAAG-1\tc2\t1\n"
    )
    df = io.read_clone_table(path, sample_id="S1")
    assert df["barcode"].tolist() == ["AAAC-1", "AAAG-1"]
    assert df["clone_id"].tolist() == ["c1", "c2"]
    assert df["confidence"].tolist() == [0.9, 1.0]
    assert df["obs_name"].tolist() == ["S1_AAAC-1", "S1_AAAG-1"]


def test_read_clone_table_csv_without_confidence(tmp_path):
    path = _text(tmp_path / "clones.csv.gz", "clone_id,barcode\n7,AAAC-1\n")
    df = io.read_clone_table(path, sample_id="S1")
    assert df[["barcode", "clone_id"]].values.tolist() == [["AAAC-1", "7"]]
    assert df["confidence"].tolist() == [1.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"clones\.tsv \(sample 'S1'\) is empty"),
        (
            "cell\tclone\nA\t1\n",
            r"clones\.tsv \(sample 'S1'\) lacks column\(s\) barcode, clone_id "
            r"\(found: cell, clone\)",
        ),
        (
            "barcode\tclone_id\nA\t1\nB\t\nC\t \n",
            r"clones\.tsv \(sample 'S1'\): empty clone_id in row\(s\) 2, 3",
        ),
        (
            "barcode\tclone_id\tconfidence\nA\t1\thigh\nB\t1\t0.5\n",
            r"non-numeric confidence in row\(s\) 1:",
        ),
        (
            "barcode\tclone_id\tconfidence\nA\t1\t1.2\nB\t1\t-0.1\n",
            r"confidence outside \[0, 1\] in row\(s\) 1, 2",
        ),
        (
            "barcode\tclone_id\nA\t1\nB\t1\nA\t2\n",
            r"barcode listed more than once in row\(s\) 1, 3",
        ),
    ],
)
def test_bad_clone_table(tmp_path, text, match):
    path = _text(tmp_path / "clones.tsv", text)
    with pytest.raises(InputError, match=match):
        io.read_clone_table(path, sample_id="S1")


def test_missing_clone_table(tmp_path):
    with pytest.raises(InputError, match=r"clone table .*nope\.tsv \(sample 'S1'\) does not exist"):
        io.read_clone_table(tmp_path / "nope.tsv", sample_id="S1")


# ---------------------------------------------------------------------------------------------
# atomic writers


def test_write_table_atomic(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    target = tmp_path / "new" / "deep" / "t.tsv.gz"
    io.write_table_atomic(df, target, index=False)
    with gzip.open(target, "rt") as fh:  # compression inferred from the final name
        assert fh.read() == "a\tb\n1\tx\n2\ty\n"
    assert os.listdir(target.parent) == ["t.tsv.gz"]
    assert target.stat().st_mode & 0o044  # readable by others as with a plain open()


def test_write_atomic_failure_leaves_nothing(tmp_path):
    class Boom(Exception):
        pass

    class Bad(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            super().to_csv(*args, **kwargs)
            raise Boom

    target = tmp_path / "t.tsv"
    target.write_text("old\n")
    with pytest.raises(Boom):
        io.write_table_atomic(Bad({"a": [1]}), target)
    assert target.read_text() == "old\n"  # previous version intact
    assert os.listdir(tmp_path) == ["t.tsv"]  # temporary file removed


def test_write_h5ad_atomic(tmp_path):
    adata = ad.AnnData(
        X=sp.csr_matrix(COUNTS.astype(np.float32)),
        obs=pd.DataFrame(index=BARCODES),
        var=pd.DataFrame(index=SYMBOLS),
    )
    target = tmp_path / "out" / "a.h5ad"
    io.write_h5ad_atomic(adata, target)
    back = ad.read_h5ad(target)
    np.testing.assert_array_equal(back.X.toarray(), COUNTS)
    assert os.listdir(target.parent) == ["a.h5ad"]


def test_read_h5ad_finds_counts_in_raw_when_x_is_normalised(tmp_path):
    """An analysed object: X log-normalised on a subset of genes, the counts in raw."""
    full = ad.AnnData(
        X=sp.csr_matrix(COUNTS.astype(np.float32)),
        obs=pd.DataFrame(index=BARCODES),
        var=pd.DataFrame(index=SYMBOLS),
    )
    src = full[:, :3].copy()
    src.X = sp.csr_matrix(np.log1p(src.X.toarray() / 2.5))
    src.raw = full
    src.write_h5ad(tmp_path / "analysed.h5ad")
    adata = io.read_counts(tmp_path / "analysed.h5ad", sample_id="S1")
    assert adata.uns["clonetrack"]["read"]["counts_from"] == "raw.X"
    assert list(adata.var_names) == SYMBOLS
    np.testing.assert_array_equal(adata.X.toarray(), COUNTS)


def test_read_h5ad_normalised_without_counts_is_refused(tmp_path):
    src = ad.AnnData(
        X=np.log1p(COUNTS.astype(np.float32)) / 3,
        obs=pd.DataFrame(index=BARCODES),
        var=pd.DataFrame(index=SYMBOLS),
    )
    src.write_h5ad(tmp_path / "norm.h5ad")
    with pytest.raises(InputError, match=r"norm\.h5ad \(sample 'S1'\) contains non-integer values"):
        io.read_counts(tmp_path / "norm.h5ad", sample_id="S1")


def test_atomic_writer_removes_what_a_killed_writer_left(tmp_path):
    """SIGKILL leaves the temporary file behind; the next writer of that target removes it, and
    leaves other targets' temporary files alone."""
    target = tmp_path / "cells_kept.h5ad"
    stale = tmp_path / ".tmp-abc123-cells_kept.h5ad"
    other = tmp_path / ".tmp-def456-ledger.tsv"
    stale.write_text("half")
    other.write_text("busy")
    with io.atomic_target(target) as tmp:
        Path(tmp).write_text("whole")
    assert target.read_text() == "whole"
    assert not stale.exists()
    assert other.exists()
