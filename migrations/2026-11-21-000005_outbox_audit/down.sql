DROP TABLE audit_log;
DROP TABLE webhook_events;
DROP TABLE outbox;
