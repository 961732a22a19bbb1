-- The Twilio stream carrying each call, recorded when its media socket is
-- admitted: a replayed stream token for a call live elsewhere (another
-- streamSid, or this one on another instance with a fresh heartbeat) is
-- refused by any instance.
ALTER TABLE call_logs ADD COLUMN stream_sid text;
