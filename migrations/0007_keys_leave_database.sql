-- The server's private keys leave the database for the key store (DATA_DIR/keys, one file per key
-- and version: keystore::trail). Databases written before this hold the Ed25519 root-signing key
-- and the page-token HMAC key as the settings rows 'signing_key' and 'page_token_key'. This marks
-- the move as pending while they are there; the step that follows at open (keystore::trail::
-- move_keys_out) writes the key files (fsynced), records the root-signing public key as the
-- setting 'public_key', deletes the rows, VACUUMs and checkpoints the WAL so that their bytes are
-- gone from the files, and only then clears the mark: a crash at any point is finished at the next
-- open.
INSERT INTO settings(key, value)
SELECT 'keys_move_pending', x'01'
WHERE EXISTS (SELECT 1 FROM settings WHERE key IN ('signing_key', 'page_token_key'));
