ALTER TABLE phone_numbers RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
                                 autovacuum_analyze_scale_factor, autovacuum_analyze_threshold);
CREATE INDEX phone_numbers_lease_expiry ON phone_numbers (lease_expires_at) WHERE lease_holder IS NOT NULL;
CREATE INDEX phone_numbers_shared_by_usage
    ON phone_numbers (total_minutes, last_used_at NULLS FIRST)
    WHERE dedicated_to IS NULL;
