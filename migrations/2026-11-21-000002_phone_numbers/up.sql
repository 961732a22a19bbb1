-- The phone-number pool. PostgreSQL is the truth for allocation: a number is
-- held through a lease (holder, instance, expiry) that the holding instance
-- renews; an expired lease may be claimed again, so a crashed instance's
-- numbers come back by themselves.
CREATE TABLE phone_numbers (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number     e164 NOT NULL UNIQUE,
    status           text NOT NULL DEFAULT 'available'
                     CHECK (status IN ('available', 'in_use', 'reserved', 'maintenance')),
    -- Set for enterprise tenants' own numbers; NULL for the shared pool.
    dedicated_to     uuid REFERENCES profiles (id) ON DELETE SET NULL,
    provider_sid     text UNIQUE CHECK (provider_sid <> ''),
    lease_holder     text CHECK (lease_holder <> ''),
    lease_instance   text CHECK (lease_instance <> ''),
    lease_expires_at timestamptz,
    total_calls      bigint NOT NULL DEFAULT 0 CHECK (total_calls >= 0),
    total_seconds    bigint NOT NULL DEFAULT 0 CHECK (total_seconds >= 0),
    -- Billed minutes: each call's duration rounded up to a whole minute.
    total_minutes    bigint NOT NULL DEFAULT 0 CHECK (total_minutes >= 0),
    last_used_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- A lease is all three fields or none, and exactly the in-use numbers hold one.
    CONSTRAINT phone_numbers_lease_complete CHECK (
        (lease_holder IS NULL AND lease_instance IS NULL AND lease_expires_at IS NULL)
        OR (lease_holder IS NOT NULL AND lease_instance IS NOT NULL AND lease_expires_at IS NOT NULL)
    ),
    CONSTRAINT phone_numbers_lease_iff_in_use CHECK ((status = 'in_use') = (lease_holder IS NOT NULL))
);
SELECT diesel_manage_updated_at('phone_numbers');

-- The allocation order for shared numbers: least used first.
CREATE INDEX phone_numbers_shared_by_usage
    ON phone_numbers (total_minutes, last_used_at NULLS FIRST)
    WHERE dedicated_to IS NULL;
CREATE INDEX phone_numbers_dedicated ON phone_numbers (dedicated_to) WHERE dedicated_to IS NOT NULL;
CREATE INDEX phone_numbers_lease_expiry ON phone_numbers (lease_expires_at) WHERE lease_holder IS NOT NULL;
