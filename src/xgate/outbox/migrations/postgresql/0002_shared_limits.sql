-- xgate outbox on PostgreSQL, version 2: what the nodes share besides the queue.

-- X's rate limit per key (an ad account, else a pixel): a token bucket every node takes from, and the pause
-- after a 429 (Outbox.take_requests / pause). tokens NULL: a full bucket. `granted` is what the last take
-- gave (its UPDATE returns it: RETURNING sees only the new row).
CREATE TABLE xgate_request_budgets (
    key          text             PRIMARY KEY,
    tokens       double precision,
    stamp        double precision NOT NULL,
    paused_until double precision NOT NULL DEFAULT 0,
    granted      integer          NOT NULL DEFAULT 0
);

-- who does what one node at a time (Outbox.claim_duty): a lease on a name, renewed by its holder
CREATE TABLE xgate_duties (
    name       text             PRIMARY KEY,
    holder     text             NOT NULL,
    expires_at double precision NOT NULL
);
