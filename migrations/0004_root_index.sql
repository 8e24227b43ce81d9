-- The root-hash index on buffers is gone: it took one random leaf per sealed buffer (15 of the
-- ~93 pages a single-event commit wrote, 13.5 KB per event in bulk ingest). The one lookup by root
-- hash, a client's `prev_root`, is served from the prefixes of the root hashes the server keeps in
-- memory (ledger::Ledger::root_size_candidate), confirmed against the in-memory tree.
DROP INDEX buffers_seg_root;
