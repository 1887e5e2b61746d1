"""The dataset as parquet manifests (``images.parquet`` + ``heads.parquet``), its card, its export.

- :mod:`.io`: streaming, atomic writers and schema-checked readers (row group by row group);
- :mod:`.build`: gather every shard's render table, labels and filter decisions, split by shard;
- :mod:`.card`: the dataset card (counts, filter yield, heads per image, pose and box-size
  histograms) as JSON, CSV and PNG;
- :mod:`.export`: the paper's release layout (``split_000NN/images``, ``annotations/*.npz``).

Reading the manifests anywhere::

    pandas.read_parquet("data/manifest/heads.parquet")
    polars.read_parquet("data/manifest/heads.parquet")
    duckdb.sql("SELECT split, count(*) FROM 'data/manifest/heads.parquet' GROUP BY split")
    datasets.load_dataset("parquet", data_files={"train": "data/manifest/heads.parquet"})
"""
