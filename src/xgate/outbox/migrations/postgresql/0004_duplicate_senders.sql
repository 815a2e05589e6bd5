-- xgate outbox on PostgreSQL, version 4: who sent a stored conversion again (Outbox.duplicates), for the
-- console's dedup diagnostics: per kept row, source and trust (public: a browser source's key), the copies
-- answered `duplicate`. Upserted by enqueue on the duplicate path only (one statement in its transaction);
-- deleted with its row (purge, discard), and by purge once the last copy is older than the dedup window.
CREATE TABLE xgate_duplicate_senders (
    row_id   bigint           NOT NULL,
    source   text             NOT NULL,
    public   boolean          NOT NULL,
    first_at double precision NOT NULL,
    last_at  double precision NOT NULL,
    n        bigint           NOT NULL,
    PRIMARY KEY (row_id, source, public)
);
CREATE INDEX xgate_duplicate_senders_last_at ON xgate_duplicate_senders (last_at);
