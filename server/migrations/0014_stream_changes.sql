-- The position check reads only the streams that moved (issue #19 item 4).
--
-- Every append stamps its user_streams row with the next value of one global sequence,
-- so a node asks "which streams changed since change_id N?" through the index instead of
-- reading every connected user's row. A transaction may take a value and commit after a
-- larger one is visible; readers re-read a lookback window (see server/realtime/hub.py).
-- Rows never appended to since this migration keep NULL and are found by the node's
-- periodic full check.
CREATE SEQUENCE user_streams_change_seq;
ALTER TABLE user_streams ADD COLUMN change_id bigint;
CREATE INDEX user_streams_change_id ON user_streams (change_id) WHERE change_id IS NOT NULL;
