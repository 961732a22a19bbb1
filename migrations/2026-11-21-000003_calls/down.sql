DROP TABLE transcript_segments;
DROP TABLE call_logs;
