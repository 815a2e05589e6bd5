-- xgate outbox on PostgreSQL, version 5: X's latest rate-limit reading per destination (limit, remaining,
-- reset, scope, when it came), written by the settle statement of the answer that carried it (one more CTE,
-- no round trip of its own) by whichever node sent, and read by the console of every node. The latest
-- reading wins (seen_at).
CREATE TABLE xgate_capacity (
    destination   text             PRIMARY KEY,
    request_limit integer,
    remaining     integer,
    reset_at      double precision,
    scope         text             NOT NULL,
    seen_at       double precision NOT NULL
);
