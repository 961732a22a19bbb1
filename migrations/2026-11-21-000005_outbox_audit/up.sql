-- The outbox: side effects that must happen exactly once (usage to Stripe,
-- call summaries, shop notifications), written in the same transaction as the
-- change that causes them and delivered by a worker that retries.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    -- e.g. 'stripe_usage:CA123': a second enqueue of the same effect is a no-op.
    dedupe_key      text NOT NULL UNIQUE CHECK (dedupe_key <> ''),
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb
                    CHECK (jsonb_typeof(payload) = 'object'),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    locked_by       text,
    locked_until    timestamptz,
    done_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE done_at IS NULL;

-- Webhook deliveries already processed (Stripe event ids, OpenAI webhook ids),
-- so a retried delivery changes nothing.
CREATE TABLE webhook_events (
    source      text NOT NULL CHECK (source IN ('stripe', 'openai', 'twilio')),
    event_id    text NOT NULL CHECK (event_id <> ''),
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);

-- Who changed what through the admin API, and when.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    actor   text NOT NULL CHECK (actor <> ''),
    action  text NOT NULL CHECK (action <> ''),
    target  text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
