-- xgate outbox on PostgreSQL, version 7: rejected events (field and reason, never the rejected value), so
-- the console's live stream on any node shows events refused by every node. Written in batches by each
-- node; each write trims the sources it names to their newest 200 rows.
CREATE TABLE xgate_rejections (
    id          bigserial        PRIMARY KEY,
    at          double precision NOT NULL,
    source      text             NOT NULL,
    event_name  text             NOT NULL,
    destination text,
    error       text             NOT NULL
);
CREATE INDEX xgate_rejections_source ON xgate_rejections (source, id);
