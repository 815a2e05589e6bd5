-- xgate outbox on PostgreSQL, version 9: facts about the outbox itself. outbox_id: a random id drawn once,
-- when the schema is created or upgraded to this version. Each node records the id of the outbox it used
-- in [storage] state_dir and refuses to start on a database that holds another (one dropped and recreated,
-- or restored from the wrong backup, while the node was stopped): docs/delivery.md, "Its own identity".
CREATE TABLE xgate_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO xgate_meta (key, value) VALUES ('outbox_id', md5(random()::text || clock_timestamp()::text));
