ALTER TABLE call_logs DROP COLUMN stream_sid;
