//! `bench pool`: number-pool allocate + release cycles per second with several instances
//! on one database. Each instance is a thread with its own connection pool and instance
//! id (what separate processes would have); its workers claim a number
//! ([`callvisor::db::numbers::claim`], `SKIP LOCKED`) and release it, as fast as they can. A
//! number given to a second holder while the first holds it is a double allocation, seen
//! two ways: a claim returning a number another worker of any instance registered as held,
//! or a release finding its lease gone (taken from under its holder).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use uuid::Uuid;

use super::{out, ScratchDb};
use callvisor::db::{self, migrate, numbers};

/// `bench pool` options.
#[derive(Debug, Clone, Args)]
pub struct PoolArgs {
    /// Instances (threads with their own pool and instance id).
    #[arg(long, default_value_t = 3)]
    pub instances: usize,
    /// Concurrent claimers per instance.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Numbers in the pool.
    #[arg(long, default_value_t = 50)]
    pub numbers: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(Default)]
struct Tally {
    cycles: AtomicU64,
    exhausted: AtomicU64,
    errors: AtomicU64,
    double: AtomicU64,
}

/// Runs the pool benchmark and prints its figures.
///
/// # Errors
/// No database, or a double allocation was seen.
pub fn run(args: &PoolArgs) -> Result<(), String> {
    let db = ScratchDb::create()?;
    let mut conn =
        migrate::connect_with_retry(&db.url, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    migrate::run_pending(&mut conn).map_err(|e| e.to_string())?;
    conn.batch_execute(&format!(
        "INSERT INTO profiles (phone_number, is_subscribed, display_name) VALUES ('+15550400000', true, 'bench');
         INSERT INTO phone_numbers (phone_number, status)
         SELECT '+1555041' || lpad(g::text, 4, '0'), 'available' FROM generate_series(0, {}) g",
        args.numbers.max(1) - 1
    ))
    .map_err(|e| e.to_string())?;
    let tenant: Id = diesel::sql_query(
        "SELECT id::text AS id FROM profiles WHERE phone_number = '+15550400000'",
    )
    .get_result(&mut conn)
    .map_err(|e| e.to_string())?;
    let tenant = Uuid::parse_str(&tenant.id).map_err(|e| e.to_string())?;
    let held: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut threads = Vec::new();
    for instance in 0..args.instances.max(1) {
        let (url, held, tally, stop) = (
            db.url.clone(),
            Arc::clone(&held),
            Arc::clone(&tally),
            Arc::clone(&stop),
        );
        let workers = args.workers.max(1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        threads.push(std::thread::spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let Ok(pool) = db::build_async_pool(&url, workers, Duration::from_secs(10)) else {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let instance_id = format!("bench-instance-{instance}");
                let mut tasks = Vec::new();
                for worker in 0..workers {
                    let (pool, held, tally, stop, instance_id) = (
                        pool.clone(),
                        Arc::clone(&held),
                        Arc::clone(&tally),
                        Arc::clone(&stop),
                        instance_id.clone(),
                    );
                    tasks.push(tokio::task::spawn_local(async move {
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            n += 1;
                            let holder = format!("{instance_id}-w{worker}-{n}");
                            let Ok(mut conn) = pool.get().await else {
                                tally.errors.fetch_add(1, Ordering::Relaxed);
                                continue;
                            };
                            let claim = numbers::Claim {
                                tenant_id: tenant,
                                holder: &holder,
                                instance_id: &instance_id,
                                use_dedicated: false,
                                use_shared: true,
                                ttl_seconds: 60.0,
                            };
                            match numbers::claim(&mut conn, &claim).await {
                                Ok(Some(leased)) => {
                                    if let Ok(mut held) = held.lock() {
                                        if let Some(other) =
                                            held.insert(leased.phone_number.clone(), holder.clone())
                                        {
                                            log::error!(
                                                "BENCH_DOUBLE_ALLOCATION number={} holders={other},{holder}",
                                                leased.phone_number
                                            );
                                            tally.double.fetch_add(1, Ordering::Relaxed);
                                        }
                                    }
                                    // Off the register before the database frees it.
                                    if let Ok(mut held) = held.lock() {
                                        held.remove(&leased.phone_number);
                                    }
                                    match numbers::release(&mut conn, &holder, Some(60)).await {
                                        Ok(Some(_)) => {
                                            tally.cycles.fetch_add(1, Ordering::Relaxed);
                                        }
                                        // Our lease was gone: someone else was given the number.
                                        Ok(None) => {
                                            log::error!("BENCH_DOUBLE_ALLOCATION holder={holder} reason=lease_lost");
                                            tally.double.fetch_add(1, Ordering::Relaxed);
                                        }
                                        Err(_) => {
                                            tally.errors.fetch_add(1, Ordering::Relaxed);
                                        }
                                    }
                                }
                                Ok(None) => {
                                    tally.exhausted.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(_) => {
                                    tally.errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
        }));
    }
    std::thread::sleep(Duration::from_secs(args.seconds.max(1)));
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cycles = tally.cycles.load(Ordering::Relaxed);
    let double = tally.double.load(Ordering::Relaxed);
    let in_use: Id =
        diesel::sql_query("SELECT count(*)::text AS id FROM phone_numbers WHERE status = 'in_use'")
            .get_result(&mut conn)
            .map_err(|e| e.to_string())?;
    drop(conn);
    out!("== callvisor-dev bench pool");
    out!(
        "setup      {} instances × {} workers on one database, {} numbers",
        args.instances,
        args.workers,
        args.numbers
    );
    out!(
        "cycles     {cycles} allocate + release in {elapsed:.1} s: {:.0} cycles/s",
        cycles as f64 / elapsed.max(1e-9)
    );
    out!(
        "checks     double allocations {double}, pool empty at the moment of a claim {}, errors {}, left in use {}",
        tally.exhausted.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        in_use.id
    );
    if double > 0 {
        return Err(format!("{double} double allocations"));
    }
    Ok(())
}
