-- Pool rows are rewritten on every claim and release (lease columns, usage,
-- last use). Claims and releases change the lease holder, which the
-- one-lease-per-holder index covers, so PostgreSQL cannot update those rows in
-- place (HOT), and a non-HOT update inserts an entry into every index of the
-- table; under churn each of them bloats. Two indexes did not earn that cost:
-- * the allocation order is a sort of the claimable rows (a pool holds tens to
--   hundreds of numbers; the sort is microseconds), and the index could not
--   serve it anyway (the order starts with "dedicated first");
-- * expired leases are found by the background round, a few times a minute.
-- Without them a claim and a release each make two index inserts fewer, and a
-- lease renewal (only the expiry changes) can be an in-place update.
-- Measured (`callvisor bench pool`, 3 instances x 8 claimers, 50 numbers, this
-- 2-core machine): median 1,813 allocate + release cycles/s with them, 2,266
-- without.
DROP INDEX phone_numbers_shared_by_usage;
DROP INDEX phone_numbers_lease_expiry;

-- A small, hot table: vacuum it after a fixed number of dead rows rather than
-- a fraction of its (tiny) size, so churn does not leave it bloated for long.
ALTER TABLE phone_numbers SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                               autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);
