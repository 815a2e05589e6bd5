-- xgate outbox on PostgreSQL, version 1. Times are epoch seconds (double precision), as on SQLite.

CREATE TABLE xgate_conversions (
    id               bigserial PRIMARY KEY,
    destination      text             NOT NULL,
    pixel_id         text             NOT NULL,
    event_id         text             NOT NULL,
    conversion_id    text             NOT NULL,
    event_name       text             NOT NULL,
    state            text             NOT NULL CHECK (state IN ('queued', 'leased', 'delivered', 'dead')),
    attempts         integer          NOT NULL DEFAULT 0,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    next_attempt_at  double precision NOT NULL,
    lease_token      text,
    lease_expires_at double precision,
    leased_by        text,
    last_error       text,
    debug_id         text,
    match_signals    text             NOT NULL,
    -- the JSON body stored at ingest, sent as it is
    body             bytea            NOT NULL
) WITH (
    -- every row is written about three times (stored, leased, settled) and deleted after the retention
    -- period: vacuum after 2% of the table is dead rather than the default 20%, so freed space is reused by
    -- new rows before the table grows
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);
-- partial indexes: a row sits in the one of its state, so a state change touches small indexes only
CREATE INDEX xgate_conversions_queued_due ON xgate_conversions (next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX xgate_conversions_lease_expiry ON xgate_conversions (lease_expires_at, id) WHERE state = 'leased';
CREATE INDEX xgate_conversions_undelivered_age ON xgate_conversions (created_at)
    WHERE state IN ('queued', 'leased');
CREATE INDEX xgate_conversions_delivered_at ON xgate_conversions (updated_at) WHERE state = 'delivered';
CREATE INDEX xgate_conversions_dead ON xgate_conversions (id) WHERE state = 'dead';

-- rows per (destination, state), kept by each write in its own transaction, so status and /metrics never
-- scan xgate_conversions. Each count is split over 16 shards (picked by the writing backend's pid) so that
-- concurrent writers of one destination rarely wait on one counter row; readers add the shards up.
CREATE TABLE xgate_state_counts (
    destination text     NOT NULL,
    state       text     NOT NULL,
    shard       smallint NOT NULL,
    n           bigint   NOT NULL,
    PRIMARY KEY (destination, state, shard)
);

-- the dedup key of every stored conversion until the dedup window ends: it outlives its row, which is
-- purged after the (shorter) retention period or discarded from the dead letters
CREATE TABLE xgate_dedup_keys (
    pixel_id      text             NOT NULL,
    event_id      text             NOT NULL,
    conversion_id text             NOT NULL,
    row_id        bigint           NOT NULL,
    expires_at    double precision NOT NULL,
    PRIMARY KEY (pixel_id, event_id, conversion_id)
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);
CREATE INDEX xgate_dedup_keys_expiry ON xgate_dedup_keys (expires_at);

-- per destination: the last delivery and the last error, written by the settle calls
CREATE TABLE xgate_health (
    destination     text PRIMARY KEY,
    last_success_at double precision,
    last_error      text,
    last_error_at   double precision
);
