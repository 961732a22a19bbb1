//! The service side of the phone-number pool: the PhonePoolActor (policy, in
//! `callvisor-actors`) started on its own arbiter over the PostgreSQL lease
//! store ([`leases`]) and Twilio REST ([`provider`]), and the outbound
//! campaign runner next to it. One [`PoolSystem`] per instance; every
//! instance's pool and runner share the database, which is the only truth.

pub mod leases;
pub mod ops;
pub mod provider;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use diesel_async::AsyncPgConnection;
use tokio::sync::Notify;

use callvisor_actors::phone_pool::{PhonePoolActor, PoolPolicy};

use crate::campaigns::runner::CampaignRunner;
use crate::clients::twilio_account::TwilioAccount;
use crate::config::{PoolSettings, Settings};
use crate::db::{campaigns, numbers, AsyncPool, DbError};
use crate::secret::Secret;
use leases::DbNumberLeases;
use provider::TwilioProvider;

/// The pool's policy from configuration.
pub fn policy(settings: &PoolSettings) -> PoolPolicy {
    PoolPolicy {
        dedicated_plans: settings.dedicated_plans.clone(),
        shared_plans: settings.shared_plans.clone(),
        lease_ttl: Duration::from_millis(settings.lease_ms.max(100)),
        renew_every: Duration::from_millis(settings.renew_ms.max(50)),
        max_hold: Duration::from_secs(settings.max_hold_seconds.max(1)),
        auto_provision: settings.auto_provision,
        min_available: settings.min_available,
        max_numbers: settings.max_numbers,
        idle_release_after: (settings.idle_release_seconds > 0)
            .then(|| Duration::from_secs(settings.idle_release_seconds)),
        maintenance_every: Duration::from_millis(settings.maintenance_interval_ms.max(50)),
    }
}

/// The Twilio account of the configuration (numbers, outbound calls).
pub fn twilio_account(settings: &Settings) -> TwilioAccount {
    TwilioAccount::new(
        &settings.twilio.api_base,
        settings.twilio.account_sid.as_deref().unwrap_or_default(),
        settings
            .twilio
            .auth_token
            .clone()
            .unwrap_or_else(|| Secret::new("")),
    )
}

/// `PUBLIC_URL` + `path` (the webhooks Twilio is given).
pub fn public_url(settings: &Settings, path: &str) -> String {
    format!(
        "{}{path}",
        settings
            .server
            .public_url
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/')
    )
}

/// The running pool and campaign runner of one instance.
pub struct PoolSystem {
    /// The allocation policy and lease renewer.
    pub actor: Addr<PhonePoolActor>,
    /// Wakes this instance's campaign runner (a campaign was created).
    pub campaign_nudge: Arc<Notify>,
    arbiters: Vec<Arbiter>,
}

impl PoolSystem {
    /// Starts the PhonePoolActor and the campaign runner, each on its own
    /// arbiter. Must run inside an actix System.
    pub fn start(settings: &Settings, db: AsyncPool, instance_id: &str) -> Self {
        let account = twilio_account(settings);
        let provider = Arc::new(TwilioProvider::new(
            account.clone(),
            &settings.pool.provision_country,
            settings.pool.provision_area_code.as_deref(),
            public_url(settings, "/twilio/voice"),
        ));
        let leases = Arc::new(DbNumberLeases::new(db.clone()));
        let policy = policy(&settings.pool);
        let pool_arbiter = Arbiter::new();
        let actor = {
            let instance_id = instance_id.to_owned();
            actix::Supervisor::start_in_arbiter(&pool_arbiter.handle(), move |_| {
                PhonePoolActor::new(instance_id, leases, provider, policy)
            })
        };

        let campaign_nudge = Arc::new(Notify::new());
        let runner = CampaignRunner {
            db,
            pool: actor.clone(),
            twilio: account,
            settings: settings.campaigns.clone(),
            voice_url: public_url(settings, "/twilio/voice"),
            status_callback: public_url(settings, "/twilio/status"),
            instance_id: instance_id.to_owned(),
            nudge: campaign_nudge.clone(),
        };
        let runner_arbiter = Arbiter::new();
        runner_arbiter.spawn_fn(move || {
            actix_rt::spawn(runner.run());
        });
        if let Some(system) = actix_rt::System::try_current() {
            for arbiter in [&runner_arbiter, &pool_arbiter] {
                let parent = system.arbiter().clone();
                arbiter.spawn_fn(move || {
                    actix_rt::spawn(follow_parent(parent));
                });
            }
        }
        Self {
            actor,
            campaign_nudge,
            arbiters: vec![runner_arbiter, pool_arbiter],
        }
    }

    /// Stops the campaign runner, then the pool (leases are not released:
    /// calls under way keep their numbers until their outcome or expiry).
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// How often a background arbiter checks that its System still runs.
const PARENT_CHECK: Duration = Duration::from_secs(1);

/// Stops this arbiter once the System that started it is gone (an
/// in-process instance whose runtime ended, as in tests): its work would
/// otherwise go on against a database that no longer exists.
async fn follow_parent(parent: actix_rt::ArbiterHandle) {
    loop {
        actix_rt::time::sleep(PARENT_CHECK).await;
        if !parent.spawn(async {}) {
            Arbiter::current().stop();
            return;
        }
    }
}

/// Frees the pool number a call held (a campaign call's, or one leased with
/// the CallSid as holder), adding the call's seconds to its usage. Safe to
/// call more than once: a second call finds nothing. Returns the numbers freed.
pub async fn release_for_call(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
    call_seconds: Option<i64>,
) -> Result<Vec<String>, DbError> {
    let mut holders = vec![call_sid.to_owned()];
    if let Some(target) = campaigns::target_of_call(conn, call_sid).await? {
        holders.push(campaigns::holder_for(target));
    }
    numbers::release_any(conn, &holders, call_seconds).await
}
