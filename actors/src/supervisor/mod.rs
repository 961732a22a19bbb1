//! CallSupervisor: the registry of this instance's live calls.
//!
//! OTP's `simple_one_for_one` with *temporary* children: it starts a
//! [`CallActor`] when a stream attaches (on the stream's worker thread, so a
//! call's audio never crosses threads), asks the live call whether a second
//! socket for its CallSid is a genuine hand-over (the call decides: same
//! streamSid/accountSid, old socket closed or silent; otherwise the new
//! socket is refused and the first keeps the call) instead of starting a
//! second agent, and never restarts a call: there is no caller to restart it
//! for. Draining stops new calls, lets live ones finish within a
//! grace period, then ends them and waits for their records to be written.
//!
//! One per process, on its own arbiter; per-tenant concurrency limits are
//! counted in the database (they hold across instances), not here.

pub mod messages;
pub mod sideband;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::call::messages::{
    CallCommand, FromTwilio, HandOver, HandOverRefused, SocketId, StreamIdentity, ToTwilio,
};
use crate::call::CallActor;
use crate::events;
use crate::ids::{CallSid, TenantId};
use crate::persistence::PersistenceActor;
use crate::ports::{CallDeps, EndReason};
use messages::{
    AttachError, AttachStream, CallEnded, DrainAll, DrainReport, HangUp, ListCalls, LiveCall,
    Transferred,
};

struct Entry {
    actor_id: u64,
    addr: Addr<CallActor>,
    tenant_id: TenantId,
    started: Instant,
}

/// The live calls of this process.
pub struct CallSupervisor {
    deps: CallDeps,
    persistence: Addr<PersistenceActor>,
    calls: HashMap<CallSid, Entry>,
    next_actor_id: u64,
    draining: bool,
    /// Woken whenever the registry becomes empty.
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl CallSupervisor {
    /// A supervisor whose calls use `deps` and write through `persistence`.
    pub fn new(deps: CallDeps, persistence: Addr<PersistenceActor>) -> Self {
        Self {
            deps,
            persistence,
            calls: HashMap::new(),
            next_actor_id: 1,
            draining: false,
            idle_waiters: Vec::new(),
        }
    }

    fn wake_if_idle(&mut self) {
        if self.calls.is_empty() {
            for waiter in self.idle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn wait_idle(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if self.calls.is_empty() {
            let _ = tx.send(());
        } else {
            self.idle_waiters.push(tx);
        }
        rx
    }
}

/// What a new call's actor is started with.
struct CallStart {
    call_sid: CallSid,
    tenant_id: TenantId,
    deps: CallDeps,
    /// Where the caller's audio goes: a Twilio socket, or media elsewhere.
    twilio: Recipient<ToTwilio>,
    socket: SocketId,
    /// The Twilio stream's identity (`None`: no socket to hand over).
    identity: Option<StreamIdentity>,
}

impl CallSupervisor {
    /// Starts a call's actor on `arbiter` and registers it (a temporary
    /// child: never restarted). One path for Twilio and sideband calls.
    fn start_call(
        &mut self,
        ctx: &mut Context<Self>,
        arbiter: &ArbiterHandle,
        start: CallStart,
    ) -> Addr<CallActor> {
        let actor_id = self.next_actor_id;
        self.next_actor_id += 1;
        let persistence = self.persistence.clone();
        let supervisor = ctx.address().recipient();
        let (call_sid, tenant_id) = (start.call_sid.clone(), start.tenant_id.clone());
        let addr = CallActor::start_in_arbiter(arbiter, move |_ctx| {
            CallActor::new(
                actor_id,
                start.call_sid,
                start.tenant_id,
                start.deps,
                persistence,
                supervisor,
                start.twilio,
                start.socket,
                start.identity,
            )
        });
        self.calls.insert(
            call_sid,
            Entry {
                actor_id,
                addr: addr.clone(),
                tenant_id,
                started: Instant::now(),
            },
        );
        addr
    }
}

impl Actor for CallSupervisor {
    type Context = Context<Self>;
}

impl Handler<AttachStream> for CallSupervisor {
    type Result = ResponseFuture<Result<Recipient<FromTwilio>, AttachError>>;

    fn handle(&mut self, msg: AttachStream, ctx: &mut Self::Context) -> Self::Result {
        let identity = StreamIdentity {
            stream_sid: msg.stream_sid.clone(),
            account_sid: msg.account_sid.clone(),
        };
        if let Some(entry) = self.calls.get(&msg.call_sid) {
            // The call decides (it knows its socket's identity and liveness);
            // the supervisor goes on serving others meanwhile.
            let addr = entry.addr.clone();
            let ask = addr.send(HandOver {
                twilio: msg.twilio,
                socket: msg.socket,
                identity,
            });
            return Box::pin(async move {
                match ask.await {
                    Ok(Ok(())) => Ok(addr.recipient()),
                    Ok(Err(HandOverRefused::InUse)) => Err(AttachError::InUse),
                    Ok(Err(HandOverRefused::Ending)) | Err(_) => Err(AttachError::Ended),
                }
            });
        }
        if self.draining {
            return Box::pin(async { Err(AttachError::Draining) });
        }
        let addr = self.start_call(
            ctx,
            &msg.arbiter,
            CallStart {
                call_sid: msg.call_sid,
                tenant_id: msg.tenant_id,
                deps: self.deps.clone(),
                twilio: msg.twilio,
                socket: msg.socket,
                identity: Some(identity),
            },
        );
        Box::pin(async move { Ok(addr.recipient()) })
    }
}

impl Handler<CallEnded> for CallSupervisor {
    type Result = ();

    fn handle(&mut self, msg: CallEnded, _ctx: &mut Self::Context) {
        if self
            .calls
            .get(&msg.call_sid)
            .is_some_and(|entry| entry.actor_id == msg.actor_id)
        {
            self.calls.remove(&msg.call_sid);
        }
        self.wake_if_idle();
    }
}

impl Handler<ListCalls> for CallSupervisor {
    type Result = MessageResult<ListCalls>;

    fn handle(&mut self, _msg: ListCalls, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.calls
                .iter()
                .map(|(call_sid, entry)| LiveCall {
                    call_sid: call_sid.clone(),
                    tenant_id: entry.tenant_id.clone(),
                    seconds: entry.started.elapsed().as_secs(),
                })
                .collect(),
        )
    }
}

impl Handler<HangUp> for CallSupervisor {
    type Result = bool;

    fn handle(&mut self, msg: HangUp, _ctx: &mut Self::Context) -> bool {
        match self.calls.get(&msg.call_sid) {
            Some(entry) => {
                entry.addr.do_send(CallCommand::End { reason: msg.reason });
                true
            }
            None => false,
        }
    }
}

impl Handler<Transferred> for CallSupervisor {
    type Result = bool;

    fn handle(&mut self, msg: Transferred, _ctx: &mut Self::Context) -> bool {
        match self.calls.get(&msg.call_sid) {
            Some(entry) => {
                entry.addr.do_send(CallCommand::Transferred { to: msg.to });
                true
            }
            None => false,
        }
    }
}

impl Handler<DrainAll> for CallSupervisor {
    type Result = ResponseActFuture<Self, DrainReport>;

    fn handle(&mut self, msg: DrainAll, _ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let live_at_start = self.calls.len();
        log::info!(
            "{} live_calls={live_at_start} grace_ms={}",
            events::DRAIN_STARTED,
            msg.grace.as_millis()
        );
        let idle = self.wait_idle();
        let grace = msg.grace;
        let finish_timeout = msg.finish_timeout;
        Box::pin(
            async move { actix_rt::time::timeout(grace, idle).await.is_ok() }
                .into_actor(self)
                .then(move |finished, act, _ctx| {
                    let ended_by_deadline = if finished { 0 } else { act.calls.len() };
                    for entry in act.calls.values() {
                        entry.addr.do_send(CallCommand::End {
                            reason: EndReason::Shutdown,
                        });
                    }
                    let idle = act.wait_idle();
                    async move {
                        let _ = actix_rt::time::timeout(finish_timeout, idle).await;
                        ended_by_deadline
                    }
                    .into_actor(act)
                })
                .map(move |ended_by_deadline, act, _ctx| {
                    let report = DrainReport {
                        live_at_start,
                        ended_by_deadline,
                        left: act.calls.len(),
                    };
                    log::info!(
                        "{} live_at_start={} ended_by_deadline={} left={}",
                        events::DRAIN_FINISHED,
                        report.live_at_start,
                        report.ended_by_deadline,
                        report.left
                    );
                    report
                }),
        )
    }
}

/// How long a drain waits for ended calls to write their records, by default.
pub const DEFAULT_FINISH_TIMEOUT: Duration = Duration::from_secs(10);
