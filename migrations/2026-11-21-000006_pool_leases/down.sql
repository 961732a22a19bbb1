DROP TABLE pool_provisioning;
DROP INDEX call_logs_live_number;
DROP INDEX phone_numbers_one_lease_per_holder;
ALTER TABLE phone_numbers
    DROP CONSTRAINT phone_numbers_dedicated_serves_its_tenant,
    DROP CONSTRAINT phone_numbers_lease_tenant_needs_lease,
    DROP COLUMN lease_tenant;
