-- The first four bytes of every root hash, 4,096 roots to a row: chunk c holds those of tree
-- sizes c·4096 + 1 … (c + 1)·4096, in order. A client's `prev_root` is found from them
-- (store::tree::root_size_of, newest chunk first, each candidate confirmed against the tree)
-- without a random-key index on `buffers` (dropped by 0004) and without a per-root array in
-- memory: the writer stores a chunk in the transaction that seals its last root and keeps only
-- the newest, incomplete chunk in memory (ledger::Ledger). Derived from `buffers.root_hash`.
CREATE TABLE IF NOT EXISTS root_prefixes (
    chunk    INTEGER PRIMARY KEY,
    prefixes BLOB    NOT NULL
);
INSERT OR REPLACE INTO root_prefixes(chunk, prefixes)
    SELECT idx >> 12,
           unhex(group_concat(hex(CASE WHEN length(root_hash) >= 4 THEN substr(root_hash, 1, 4) ELSE zeroblob(4) END),
                              '' ORDER BY idx))
    FROM buffers GROUP BY idx >> 12 HAVING count(*) = 4096;
