-- Reservations taken by the agent. The old engine's defects are constraints
-- here: one request per call, `answers` always an object, real date and time
-- types, and the SMS text and time recorded together.
CREATE TABLE reservation_requests (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    call_sid         text NOT NULL UNIQUE CHECK (call_sid <> ''),
    user_id          uuid REFERENCES profiles (id) ON DELETE CASCADE,
    customer_name    text,
    customer_phone   text,
    answers          jsonb NOT NULL DEFAULT '{}'::jsonb
                     CHECK (jsonb_typeof(answers) = 'object'),
    requested_date   date,
    -- HH:mm: whole minutes only.
    requested_time   time CHECK (EXTRACT(SECOND FROM requested_time) = 0),
    party_size       integer CHECK (party_size > 0),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
    shop_notified_at timestamptz,
    sms_body_sent    text,
    sms_sent_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reservation_requests_sms_recorded_together
        CHECK ((sms_body_sent IS NULL) = (sms_sent_at IS NULL)),
    CONSTRAINT reservation_requests_decided_has_sms
        CHECK (status IN ('pending', 'cancelled') OR sms_sent_at IS NOT NULL)
);
SELECT diesel_manage_updated_at('reservation_requests');
CREATE INDEX reservation_requests_user ON reservation_requests (user_id, created_at DESC);
