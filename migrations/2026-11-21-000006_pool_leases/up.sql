-- The pool's lease rules, made unwritable when broken:
-- * a lease names the tenant it serves, and a dedicated number serves no other tenant;
-- * one holder holds at most one number (a retried allocation finds its lease);
-- * buying numbers is serialised across instances by a lease-style mutex row,
--   so two instances filling the same gap do not both buy.
ALTER TABLE phone_numbers
    ADD COLUMN lease_tenant uuid REFERENCES profiles (id) ON DELETE SET NULL,
    ADD CONSTRAINT phone_numbers_lease_tenant_needs_lease
        CHECK (lease_tenant IS NULL OR lease_holder IS NOT NULL),
    ADD CONSTRAINT phone_numbers_dedicated_serves_its_tenant
        CHECK (dedicated_to IS NULL OR lease_tenant IS NULL OR lease_tenant = dedicated_to);

CREATE UNIQUE INDEX phone_numbers_one_lease_per_holder
    ON phone_numbers (lease_holder) WHERE lease_holder IS NOT NULL;

-- A number with a live call on it is not free even when its lease lapsed
-- (the instance that leased it died while the call goes on elsewhere).
CREATE INDEX call_logs_live_number
    ON call_logs (number_used) WHERE ended_at IS NULL AND number_used IS NOT NULL;

CREATE TABLE pool_provisioning (
    -- One row: the mutex.
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    holder     text CHECK (holder <> ''),
    held_until timestamptz,
    CONSTRAINT pool_provisioning_complete CHECK ((holder IS NULL) = (held_until IS NULL))
);
INSERT INTO pool_provisioning DEFAULT VALUES;
