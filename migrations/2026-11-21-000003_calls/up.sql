-- Calls: one `call_logs` row per call (inserted when the call starts, so the
-- row doubles as the cross-instance registry of live calls), and the
-- transcript as it is spoken, one row per segment, written in batches.
CREATE TABLE call_logs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    call_sid          text NOT NULL UNIQUE CHECK (call_sid <> '' AND length(call_sid) <= 64),
    user_id           uuid REFERENCES profiles (id) ON DELETE SET NULL,
    caller_number     text,
    recipient_number  text,
    direction         text NOT NULL DEFAULT 'inbound'
                      CHECK (direction IN ('inbound', 'outbound')),
    channel           text NOT NULL DEFAULT 'pstn'
                      CHECK (channel IN ('pstn', 'sip', 'whatsapp')),
    -- The pool number the call went out from (outbound) or came in on.
    number_used       text,
    -- Twilio's call statuses, spelled as Twilio spells them.
    status            text NOT NULL DEFAULT 'in-progress'
                      CHECK (status IN ('queued', 'ringing', 'in-progress', 'completed',
                                        'busy', 'failed', 'no-answer', 'canceled')),
    started_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at),
    duration_seconds  integer CHECK (duration_seconds >= 0),
    -- The whole conversation once the call ended: [{"role","text","at"}, ...] in order.
    transcript        jsonb NOT NULL DEFAULT '[]'::jsonb
                      CHECK (jsonb_typeof(transcript) = 'array'),
    summary           text,
    end_reason        text,
    transferred_to    text,
    transferred_at    timestamptz,
    -- Live-call registry: the instance carrying the call and its last heartbeat.
    instance_id       text,
    heartbeat_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT call_logs_ended_has_duration
        CHECK (ended_at IS NULL OR duration_seconds IS NOT NULL)
);
SELECT diesel_manage_updated_at('call_logs');

CREATE INDEX call_logs_user_started ON call_logs (user_id, started_at DESC);
-- Live calls per tenant, counted for concurrency limits across instances.
CREATE INDEX call_logs_live ON call_logs (user_id) WHERE ended_at IS NULL;

CREATE TABLE transcript_segments (
    id        bigserial PRIMARY KEY,
    call_sid  text NOT NULL REFERENCES call_logs (call_sid) ON DELETE CASCADE,
    seq       integer NOT NULL CHECK (seq >= 0),
    role      text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    text      text NOT NULL,
    spoken_at timestamptz NOT NULL,
    CONSTRAINT transcript_segments_call_seq UNIQUE (call_sid, seq)
);
