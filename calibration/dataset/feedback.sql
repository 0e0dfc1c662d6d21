-- DuckDB: the synced CSV batches as the table `feedback`, read from the local mirror of their keys
-- (the one parameter is the list of files), in the dialect sync writes (so no file is sniffed for
-- one). Every cell is text, as Athena's OpenCSVSerde reads it;
-- `device` and `date` come from the Hive-style keys (device=<id>/date=<YYYY-MM-DD>/...), and
-- union_by_name lets batches written before a column existed (model_version) read as NULL there.
-- On Athena, Trino or Spark the same table is the external table in the README.
CREATE TABLE feedback AS
SELECT *
FROM read_csv(
    ?,
    header = true,
    delim = ',',
    quote = '"',
    escape = '"',
    all_varchar = true,
    union_by_name = true,
    hive_partitioning = true,
    hive_types = {'device': 'VARCHAR', 'date': 'VARCHAR'}
)
