-- Outbound campaigns ("bulk calls"). All state is here, so any instance can
-- carry on a campaign another one started, and a restart calls nobody twice:
-- each target moves pending -> claimed -> dialing -> calling -> outcome, every
-- step a conditional UPDATE, and `dialing` is written before the REST request
-- that places the call.
CREATE TABLE campaigns (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    name            text CHECK (name <> '' AND length(name) <= 200),
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'canceled')),
    -- Calls of this campaign at once (the tenant's limit and the pool bound it too).
    max_concurrency integer NOT NULL CHECK (max_concurrency BETWEEN 1 AND 1000),
    created_by      text NOT NULL CHECK (created_by <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT campaigns_finished_iff_not_running CHECK ((status = 'running') = (finished_at IS NULL))
);
SELECT diesel_manage_updated_at('campaigns');
CREATE INDEX campaigns_user ON campaigns (user_id, created_at DESC);
CREATE INDEX campaigns_running ON campaigns (created_at) WHERE status = 'running';

CREATE TABLE campaign_targets (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id      uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- Order in the submitted list.
    position         integer NOT NULL CHECK (position >= 0),
    to_number        e164 NOT NULL,
    -- pending: not tried yet (or put back: nothing was sent); claimed: admitted
    -- under the tenant's limit, waiting for a pool number; dialing: the REST
    -- request is (or may have been) sent; calling: Twilio gave a CallSid;
    -- then Twilio's outcome, `canceled` by an operator, or `uncertain`: the
    -- request may have placed a call we never heard of, so it is not repeated.
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'claimed', 'dialing', 'calling', 'completed',
                                       'busy', 'no-answer', 'failed', 'canceled', 'uncertain')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    instance_id      text CHECK (instance_id <> ''),
    from_number      e164,
    call_sid         text UNIQUE CHECK (call_sid <> ''),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    dial_started_at  timestamptz,
    ended_at         timestamptz,
    duration_seconds integer CHECK (duration_seconds >= 0),
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campaign_targets_position UNIQUE (campaign_id, position),
    -- One campaign never calls a number twice.
    CONSTRAINT campaign_targets_once UNIQUE (campaign_id, to_number),
    CONSTRAINT campaign_targets_owned CHECK (status NOT IN ('claimed', 'dialing') OR instance_id IS NOT NULL),
    CONSTRAINT campaign_targets_from CHECK (status NOT IN ('dialing', 'calling') OR from_number IS NOT NULL),
    CONSTRAINT campaign_targets_calling_has_sid CHECK (status <> 'calling' OR call_sid IS NOT NULL),
    CONSTRAINT campaign_targets_final_has_end CHECK (
        (status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled', 'uncertain')) = (ended_at IS NOT NULL))
);
SELECT diesel_manage_updated_at('campaign_targets');
CREATE INDEX campaign_targets_pending ON campaign_targets (campaign_id, next_attempt_at, position)
    WHERE status = 'pending';
CREATE INDEX campaign_targets_open ON campaign_targets (status, instance_id)
    WHERE status IN ('claimed', 'dialing', 'calling');
