-- Tenants (the old system's `profiles`) and their agent configuration.
-- A tenant must be creatable with `INSERT INTO profiles (phone_number, is_subscribed)`
-- alone, so every other column has a default.

-- E.164: '+', a non-zero country digit, 7 to 15 digits in all.
CREATE DOMAIN e164 AS text CHECK (VALUE ~ '^\+[1-9][0-9]{6,14}$');

CREATE TABLE profiles (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number         e164 UNIQUE,
    is_subscribed        boolean NOT NULL DEFAULT false,
    stripe_customer_id   text UNIQUE CHECK (stripe_customer_id <> ''),
    display_name         text,
    plan                 text NOT NULL DEFAULT 'standard'
                         CHECK (plan IN ('standard', 'enterprise')),
    max_concurrent_calls integer NOT NULL DEFAULT 5
                         CHECK (max_concurrent_calls BETWEEN 0 AND 10000),
    handoff_number       e164,
    -- BCP 47 primary tag with optional subtags: 'en', 'fr', 'rw', 'ja', 'en-US'.
    preferred_language   text NOT NULL DEFAULT 'en'
                         CHECK (preferred_language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    voice                text CHECK (voice <> ''),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('profiles');

CREATE TABLE user_prompts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL UNIQUE REFERENCES profiles (id) ON DELETE CASCADE,
    system_prompt   text NOT NULL DEFAULT '',
    -- Free-form agent settings (greeting_message, ...); always a JSON object.
    config_metadata jsonb NOT NULL DEFAULT '{}'::jsonb
                    CHECK (jsonb_typeof(config_metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('user_prompts');
