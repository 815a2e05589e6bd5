-- xgate outbox on PostgreSQL, version 8: per minute, the events each source received by outcome and X's
-- answers per destination (kind event / delivery / failure), so every node's console shows the totals of
-- every node. Each node adds what it counted about once a second (one upsert); purge keeps 15 days.
CREATE TABLE xgate_outcome_counts (
    minute  bigint NOT NULL,
    kind    text   NOT NULL,
    name    text   NOT NULL,
    outcome text   NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (minute, kind, name, outcome)
);
