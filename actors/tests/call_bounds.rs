//! A call's bounds, against a local Realtime server and probe actors: held
//! caller audio is bounded in time and bytes (the newest kept), unplayed agent
//! audio in bytes, a stalled upstream writer's backlog in bytes, each run of
//! drops reported once; and a call past its maximum length ends cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use callvisor_actors::call::audio_bounds::Dropped;
use callvisor_actors::call::messages::{
    CallStats, FromRealtime, FromTwilio, GetCallStats, GetUpstreamStats, RealtimeEvent,
    StreamIdentity, ToRealtime, ToTwilio,
};
use callvisor_actors::call::CallActor;
use callvisor_actors::ids::{CallSid, StreamSid, TenantId};
use callvisor_actors::persistence::PersistenceActor;
use callvisor_actors::ports::*;
use callvisor_actors::realtime::{Opening, RealtimeActor};
use callvisor_actors::supervisor::messages::CallEnded;
use callvisor_wire::protocol::realtime::SessionConfig;
use support::realtime::{Mode, RealtimeStandIn};

/// How long any awaited condition may take.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Probe {
    finished: Mutex<Vec<CallEnd>>,
    /// Marks of the agent audio "Twilio" was asked to play.
    audio_marks: Mutex<Vec<u64>>,
    closed: Mutex<u32>,
    ended: Mutex<u32>,
    /// What a Realtime connection reported to its owner.
    drops_reported: Mutex<Vec<Dropped>>,
    ready: Mutex<u32>,
    upstream_closed: Mutex<u32>,
}

struct Ports(Arc<Probe>);

impl CallStore for Ports {
    fn load_plan(
        &self,
        call_sid: &CallSid,
        tenant: &TenantId,
    ) -> PortFuture<Result<CallPlan, PortError>> {
        let plan = CallPlan {
            call_sid: call_sid.clone(),
            tenant_id: tenant.clone(),
            caller: None,
            recipient: None,
            session: SessionConfig::default(),
            handoff_number: None,
            caller_id: None,
            apology: "Sorry.".into(),
        };
        Box::pin(async move { Ok(plan) })
    }
    fn finish_call(&self, end: CallEnd) -> PortFuture<Result<(), PortError>> {
        self.0.finished.lock().unwrap().push(end);
        Box::pin(async { Ok(()) })
    }
}

impl TranscriptSink for Ports {
    fn write(&self, _batch: Vec<Segment>) -> PortFuture<Result<(), PortError>> {
        Box::pin(async { Ok(()) })
    }
}

impl ToolRunner for Ports {
    fn run(&self, _call: ToolCall) -> PortFuture<String> {
        Box::pin(async { "{}".to_owned() })
    }
}

impl CallControl for Ports {
    fn say_and_hang_up(
        &self,
        _: &CallSid,
        _: &str,
        _: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        Box::pin(async { Ok(()) })
    }
    fn transfer(&self, _: &CallSid, _: &str, _: Option<&str>) -> PortFuture<Result<(), PortError>> {
        Box::pin(async { Ok(()) })
    }
    fn hang_up(&self, _: &CallSid) -> PortFuture<Result<(), PortError>> {
        Box::pin(async { Ok(()) })
    }
}

impl StreamAuthority for Ports {
    fn check(&self, _: &str, _: &str, _: &str) -> Result<(), callvisor_actors::ports::TokenError> {
        Ok(())
    }
    fn claim(&self, _: StreamClaim) -> PortFuture<Result<(), StreamRefusal>> {
        Box::pin(async { Ok(()) })
    }
}

/// Stands in for the Twilio socket, the supervisor, and a Realtime owner.
struct Recorder(Arc<Probe>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<ToTwilio> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ToTwilio, _: &mut Self::Context) {
        match msg {
            ToTwilio::Audio { mark, .. } => self.0.audio_marks.lock().unwrap().push(mark),
            ToTwilio::Clear => {}
            ToTwilio::Close => *self.0.closed.lock().unwrap() += 1,
        }
    }
}

impl Handler<CallEnded> for Recorder {
    type Result = ();
    fn handle(&mut self, _: CallEnded, _: &mut Self::Context) {
        *self.0.ended.lock().unwrap() += 1;
    }
}

impl Handler<FromRealtime> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: FromRealtime, _: &mut Self::Context) {
        match msg.event {
            RealtimeEvent::AudioDropped { dropped } => {
                self.0.drops_reported.lock().unwrap().push(dropped)
            }
            RealtimeEvent::Ready => *self.0.ready.lock().unwrap() += 1,
            RealtimeEvent::Closed { .. } => *self.0.upstream_closed.lock().unwrap() += 1,
            _ => {}
        }
    }
}

fn tuning() -> CallTuning {
    CallTuning {
        max_reconnects: 100,
        // No session.updated is not a failure within the test's time.
        connect_timeout: Duration::from_secs(30),
        ..CallTuning::default()
    }
}

fn start_call(probe: &Arc<Probe>, realtime_url: String, tuning: CallTuning) -> Addr<CallActor> {
    let ports = Arc::new(Ports(probe.clone()));
    let deps = CallDeps {
        store: ports.clone(),
        tools: ports.clone(),
        control: ports.clone(),
        authority: ports.clone(),
        realtime: RealtimeEndpoint {
            url: realtime_url,
            api_key: Arc::from("sk-test"),
        },
        tuning,
    };
    let persistence = PersistenceActor::new(ports, 10, Duration::from_millis(10)).start();
    let recorder = Recorder(probe.clone()).start();
    CallActor::new(
        1,
        CallSid::parse("CA1").unwrap(),
        TenantId::parse("t1").unwrap(),
        deps,
        persistence,
        recorder.clone().recipient(),
        recorder.recipient(),
        7,
        Some(StreamIdentity {
            stream_sid: StreamSid::parse("MZ1").unwrap(),
            account_sid: Some("AC1".to_owned()),
        }),
    )
    .start()
}

/// A 20 ms frame (216 base64 characters) whose text says which one it is.
fn frame(i: usize) -> String {
    format!("{i:0>216}")
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stats_when(call: &Addr<CallActor>, done: impl Fn(&CallStats) -> bool) -> CallStats {
    let start = Instant::now();
    loop {
        let stats = call.send(GetCallStats).await.unwrap();
        if done(&stats) {
            return stats;
        }
        assert!(start.elapsed() < PATIENCE, "timed out; last {stats:?}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn held_caller_audio_is_bounded_in_time_keeps_the_newest_and_is_reported_once() {
    // Arrange: an agent whose session is not configured yet; 2 s may be held.
    let realtime = RealtimeStandIn::start(Mode::Answering).await;
    let probe = Arc::new(Probe::default());
    let mut tuning = tuning();
    tuning.held_audio = HoldLimits {
        max_bytes: 1 << 20,
        max_ms: 2_000,
    };
    let call = start_call(&probe, realtime.url.clone(), tuning);
    // Act: 6 s of caller audio before the session is ready.
    for i in 0..300 {
        call.do_send(FromTwilio::Audio {
            payload: frame(i).into(),
        });
    }
    // Assert: the newest 2 s are held, 4 s dropped, nothing reported yet.
    let stats = stats_when(&call, |s| s.held_dropped.frames == 200).await;
    assert_eq!(
        (stats.held_frames, stats.held_ms, stats.held_bytes),
        (100, 2_000, 21_600)
    );
    assert_eq!(stats.held_dropped.bytes, 200 * 216);
    assert_eq!(
        stats.held_drop_reports, 0,
        "a burst is reported when it ends"
    );
    // Act: the session is configured.
    realtime.open_gate();
    wait_for("the held audio upstream", || {
        realtime.appends().len() >= 100
    })
    .await;
    // Assert: exactly the newest 100 frames went, in order; one report.
    let expected: Vec<String> = (200..300).map(frame).collect();
    assert_eq!(realtime.appends(), expected);
    let stats = call.send(GetCallStats).await.unwrap();
    assert_eq!(stats.held_frames, 0);
    assert_eq!(stats.held_drop_reports, 1);
    assert_eq!(
        stats.held_dropped,
        Dropped {
            frames: 200,
            bytes: 200 * 216
        }
    );
    // Live audio now flows straight through, and reports nothing more.
    for i in 300..305 {
        call.do_send(FromTwilio::Audio {
            payload: frame(i).into(),
        });
    }
    wait_for("live audio upstream", || realtime.appends().len() == 105).await;
    assert_eq!(call.send(GetCallStats).await.unwrap().held_drop_reports, 1);
}

#[actix_rt::test]
async fn held_caller_audio_is_bounded_in_bytes() {
    // Arrange: ten frames' worth of bytes, plenty of time.
    let realtime = RealtimeStandIn::start(Mode::Answering).await;
    let probe = Arc::new(Probe::default());
    let mut tuning = tuning();
    tuning.held_audio = HoldLimits {
        max_bytes: 10 * 216,
        max_ms: 60_000,
    };
    let call = start_call(&probe, realtime.url.clone(), tuning);
    // Act
    for i in 0..50 {
        call.do_send(FromTwilio::Audio {
            payload: frame(i).into(),
        });
    }
    let stats = stats_when(&call, |s| s.held_dropped.frames == 40).await;
    // Assert
    assert_eq!((stats.held_frames, stats.held_bytes), (10, 2_160));
    realtime.open_gate();
    wait_for("the held audio upstream", || realtime.appends().len() >= 10).await;
    assert_eq!(realtime.appends(), (40..50).map(frame).collect::<Vec<_>>());
    assert_eq!(call.send(GetCallStats).await.unwrap().held_drop_reports, 1);
}

#[actix_rt::test]
async fn unplayed_agent_audio_is_bounded_in_bytes() {
    // Arrange: at most 50 frames' worth unplayed at Twilio (which never acknowledges).
    let realtime = RealtimeStandIn::start(Mode::Answering).await;
    realtime.open_gate();
    let probe = Arc::new(Probe::default());
    let mut tuning = tuning();
    tuning.max_agent_audio_bytes = 50 * 216;
    let call = start_call(&probe, realtime.url.clone(), tuning);
    wait_for("a configured session", || {
        realtime.shared.ready_sent.load(Ordering::SeqCst) == 1
    })
    .await;
    // Act: the agent answers with 4 s of audio at once.
    realtime.send_audio("item_a", (0..200).map(frame).collect());
    // Assert: 50 chunks went to Twilio, the rest was dropped, not yet reported.
    let stats = stats_when(&call, |s| s.agent_dropped.frames == 150).await;
    assert_eq!(probe.audio_marks.lock().unwrap().len(), 50);
    assert_eq!(stats.agent_in_flight_bytes, 50 * 216);
    assert_eq!(stats.agent_drop_reports, 0);
    // Act: Twilio plays everything; more audio comes.
    let last = *probe.audio_marks.lock().unwrap().last().unwrap();
    call.do_send(FromTwilio::MarkPlayed {
        name: format!("m{last}").into(),
    });
    realtime.send_audio("item_a", (200..210).map(frame).collect());
    // Assert: it is sent; the run of drops was reported once, with its counts.
    wait_for("more agent audio", || {
        probe.audio_marks.lock().unwrap().len() == 60
    })
    .await;
    let stats = call.send(GetCallStats).await.unwrap();
    assert_eq!(stats.agent_drop_reports, 1);
    assert_eq!(
        stats.agent_dropped,
        Dropped {
            frames: 150,
            bytes: 150 * 216
        }
    );
    assert_eq!(stats.agent_in_flight_bytes, 10 * 216);
}

#[actix_rt::test]
async fn a_stalled_upstream_backlog_is_bounded_in_bytes() {
    // Arrange: a server that configures the session and then stops reading.
    let realtime = RealtimeStandIn::start(Mode::Stalled).await;
    let probe = Arc::new(Probe::default());
    let owner = Recorder(probe.clone()).start();
    let bound = 64 * 1024;
    let actor = RealtimeActor::new(
        CallSid::parse("CA1").unwrap(),
        TenantId::parse("t1").unwrap(),
        RealtimeEndpoint {
            url: realtime.url.clone(),
            api_key: Arc::from("sk-test"),
        },
        SessionConfig::default(),
        Opening::Greet,
        owner.recipient(),
        1,
        Duration::from_secs(30),
        bound,
    )
    .start();
    wait_for("session.updated", || *probe.ready.lock().unwrap() == 1).await;
    // Act: far more caller audio than the socket buffers hold (~5 MB).
    let sent = 20_000u64;
    for i in 0..sent {
        actor.do_send(ToRealtime::Audio {
            payload: frame(i as usize).into(),
        });
    }
    // Assert: the writer's backlog stays within its bound plus one frame.
    let start = Instant::now();
    let stats = loop {
        let stats = actor.send(GetUpstreamStats).await.unwrap();
        if stats.appends + stats.dropped.frames == sent {
            break stats;
        }
        assert!(start.elapsed() < PATIENCE, "timed out; last {stats:?}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        stats.dropped.frames > 0,
        "the server never pushed back: {stats:?}"
    );
    assert!(
        stats.queued_bytes <= bound + 512,
        "backlog {} over its bound",
        stats.queued_bytes
    );
    assert_eq!(stats.drop_reports, 0, "the run of drops is still going");
    // Act: the connection dies.
    realtime.kill().await;
    wait_for("the close report", || {
        *probe.upstream_closed.lock().unwrap() == 1
    })
    .await;
    // Assert: the run of drops was reported once, before the close.
    assert_eq!(
        *probe.drops_reported.lock().unwrap(),
        vec![stats.dropped],
        "one report with the run's counts"
    );
}

#[actix_rt::test]
async fn the_call_counts_and_logs_a_stalled_upstreams_drops_once() {
    // Arrange: a call whose agent stops reading once configured.
    let realtime = RealtimeStandIn::start(Mode::Stalled).await;
    let probe = Arc::new(Probe::default());
    let mut tuning = tuning();
    tuning.max_upstream_queued_bytes = 16 * 1024;
    let call = start_call(&probe, realtime.url.clone(), tuning);
    stats_when(&call, |s| s.agent_ready).await;
    // Act: a lot of caller audio, then the connection dies.
    for i in 0..20_000 {
        call.do_send(FromTwilio::Audio {
            payload: frame(i).into(),
        });
    }
    let before = call.send(GetCallStats).await.unwrap();
    realtime.kill().await;
    // Assert: one report reached the call, with drops counted; nothing was held.
    let stats = stats_when(&call, |s| s.upstream_drop_reports >= 1).await;
    assert_eq!(before.upstream_dropped, Dropped::default());
    assert_eq!(stats.upstream_drop_reports, 1);
    assert!(stats.upstream_dropped.frames > 10_000, "{stats:?}");
    assert_eq!(
        stats.upstream_dropped.bytes,
        stats.upstream_dropped.frames * 216
    );
    assert_eq!(stats.held_dropped, Dropped::default());
}

#[actix_rt::test]
async fn a_call_past_its_maximum_length_ends_with_max_duration() {
    // Arrange: a one-second limit; the agent is busy reconnecting, no one hangs up.
    let probe = Arc::new(Probe::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().port();
    drop(listener);
    let mut tuning = tuning();
    tuning.max_call_duration = Duration::from_secs(1);
    let started = Instant::now();
    let _call = start_call(
        &probe,
        format!("ws://127.0.0.1:{closed}/v1/realtime"),
        tuning,
    );
    // Act
    wait_for("the call's record", || {
        !probe.finished.lock().unwrap().is_empty()
    })
    .await;
    // Assert: ended through the normal path, once, not before its time.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let reasons: Vec<EndReason> = probe
        .finished
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.reason)
        .collect();
    assert_eq!(reasons, vec![EndReason::MaxDuration]);
    assert_eq!(reasons[0].as_str(), "max_duration");
    assert_eq!(
        *probe.closed.lock().unwrap(),
        1,
        "the media stream is closed"
    );
    wait_for("the supervisor told", || *probe.ended.lock().unwrap() == 1).await;
}
