-- xgate outbox on PostgreSQL, version 3: who sent each conversion, the history of its settles, per-minute
-- counts for the console's charts, and rows found by conversion id (dedup diagnostics).

-- '' for rows stored before this version (a constant default: no table rewrite)
ALTER TABLE xgate_conversions ADD COLUMN source text NOT NULL DEFAULT '';
-- every row of one conversion id, whichever destination or source (an upgrade of a large table holds
-- writes while it builds: run `xgate db upgrade` as a deploy step, as for every migration)
CREATE INDEX xgate_conversions_conversion_id ON xgate_conversions (conversion_id);

-- one entry per settle call per row, appended in the settle's own statement; deleted with its row (purge,
-- discard). No primary key: it is only ever read by row_id, in time order.
CREATE TABLE xgate_attempts (
    row_id   bigint           NOT NULL,
    at       double precision NOT NULL,
    outcome  text             NOT NULL CHECK (outcome IN ('delivered', 'retry', 'deferred', 'dead')),
    status   smallint,
    error    text,
    debug_id text
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);
CREATE INDEX xgate_attempts_row ON xgate_attempts (row_id);

-- per minute (epoch seconds, a multiple of 60), destination and X event: conversions stored (and how many
-- carried each match signal) and settled by outcome. Written by enqueue and settle statements; split over
-- 16 shards (the writing backend's pid) like xgate_state_counts, so concurrent writers rarely wait on one
-- row; readers add the shards up. Minutes older than 15 days are purged.
CREATE TABLE xgate_minute_counts (
    minute      bigint   NOT NULL,
    destination text     NOT NULL,
    event_id    text     NOT NULL,
    shard       smallint NOT NULL,
    stored      bigint   NOT NULL DEFAULT 0,
    twclid      bigint   NOT NULL DEFAULT 0,
    email       bigint   NOT NULL DEFAULT 0,
    phone       bigint   NOT NULL DEFAULT 0,
    ip_ua       bigint   NOT NULL DEFAULT 0,
    delivered   bigint   NOT NULL DEFAULT 0,
    retried     bigint   NOT NULL DEFAULT 0,
    dead        bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, destination, event_id, shard)
);
