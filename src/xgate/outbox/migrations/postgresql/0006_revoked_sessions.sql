-- xgate outbox on PostgreSQL, version 6: the console's signed-out sessions (Outbox.revoke_session), so a
-- session signed out on one node is refused by every node. `id` is a hash of the session's nonce, kept
-- until the session would have expired; each sign-out and the housekeeping purge delete expired ones.
CREATE TABLE xgate_revoked_sessions (
    id         text             PRIMARY KEY,
    expires_at double precision NOT NULL
);
