//! CallActor with probe ports: the end-of-call sequence runs exactly once
//! whatever triggers it, and an unreachable agent ends in an apology and a
//! clean end, never silence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use callvisor_actors::call::messages::{
    FromTwilio, GetCallStats, HandOver, HandOverRefused, StreamIdentity, ToTwilio,
};
use callvisor_actors::call::CallActor;
use callvisor_actors::ids::{CallSid, StreamSid, TenantId};
use callvisor_actors::persistence::PersistenceActor;
use callvisor_actors::ports::*;
use callvisor_actors::supervisor::messages::CallEnded;
use callvisor_wire::protocol::realtime::SessionConfig;

#[derive(Default)]
struct Probe {
    finished: Mutex<Vec<CallEnd>>,
    apologies: Mutex<Vec<String>>,
    twilio: Mutex<Vec<String>>,
    ended: Mutex<u32>,
    /// The call's "supervisor" (and first "socket"), for a mailbox barrier.
    recorder: Mutex<Option<Addr<Recorder>>>,
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
            caller: Some("+15550000001".into()),
            recipient: Some("+15550000002".into()),
            session: SessionConfig::default(),
            handoff_number: None,
            caller_id: Some("+15550000002".into()),
            apology: "Sorry, try later.".into(),
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
        _call_sid: &CallSid,
        text: &str,
        _language: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        self.0.apologies.lock().unwrap().push(text.to_owned());
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

/// Records what the call sends to "Twilio" and to "the supervisor".
struct Recorder(Arc<Probe>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<ToTwilio> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ToTwilio, _: &mut Self::Context) {
        let name = match msg {
            ToTwilio::Audio { .. } => "audio",
            ToTwilio::Clear => "clear",
            ToTwilio::Close => "close",
        };
        self.0.twilio.lock().unwrap().push(name.to_owned());
    }
}

/// Answered once everything sent to the recorder before it was handled.
#[derive(Message)]
#[rtype(result = "()")]
struct Barrier;

impl Handler<Barrier> for Recorder {
    type Result = ();
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

impl Handler<CallEnded> for Recorder {
    type Result = ();
    fn handle(&mut self, _: CallEnded, _: &mut Self::Context) {
        *self.0.ended.lock().unwrap() += 1;
    }
}

/// A port nothing listens on: connections are refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start_call(probe: &Arc<Probe>, realtime_url: String, max_reconnects: u32) -> Addr<CallActor> {
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
        tuning: CallTuning {
            max_reconnects,
            connect_timeout: Duration::from_millis(500),
            handover_grace: Duration::from_millis(50),
            handover_silence: Duration::from_millis(300),
            ..CallTuning::default()
        },
    };
    let persistence = PersistenceActor::new(ports, 10, Duration::from_millis(10)).start();
    let recorder = Recorder(probe.clone()).start();
    *probe.recorder.lock().unwrap() = Some(recorder.clone());
    CallActor::new(
        1,
        CallSid::parse("CA1").unwrap(),
        TenantId::parse("t1").unwrap(),
        deps,
        persistence,
        recorder.clone().recipient(),
        recorder.recipient(),
        7,
        Some(identity("MZ1")),
    )
    .start()
}

fn identity(stream_sid: &str) -> StreamIdentity {
    StreamIdentity {
        stream_sid: StreamSid::parse(stream_sid).unwrap(),
        account_sid: Some("AC1".to_owned()),
    }
}

/// A hand-over request from a new socket `socket` saying `identity`.
fn hand_over(socket: u64, identity: StreamIdentity) -> (HandOver, Addr<Recorder>, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let recorder = Recorder(probe.clone()).start();
    let msg = HandOver {
        twilio: recorder.clone().recipient(),
        socket,
        identity,
    };
    (msg, recorder, probe)
}

/// Waits until the call's actor has stopped (the last thing its end does:
/// nothing more can come from it) and the recorder has handled all it sent.
async fn ended(call: &Addr<CallActor>, probe: &Probe) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while call.connected() {
        assert!(std::time::Instant::now() < deadline, "the call never ended");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    let recorder = probe.recorder.lock().unwrap().clone().unwrap();
    recorder.send(Barrier).await.unwrap();
}

/// Waits until the call has handled what was sent to it, and then past the
/// hand-over grace `start_call` sets (50 ms): a socket loss that counted
/// would have ended the call by then. Only for "the call goes on" checks;
/// without tokio's `test-util` feature there is no paused clock to advance.
async fn past_handover_grace(call: &Addr<CallActor>) {
    call.send(GetCallStats).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
}

#[actix_rt::test]
async fn stop_and_socket_loss_together_end_the_call_once() {
    // Arrange: an agent that can never be reached, so only Twilio drives the end.
    let probe = Arc::new(Probe::default());
    let call = start_call(
        &probe,
        format!("ws://127.0.0.1:{}/v1/realtime", closed_port()),
        100,
    );
    // Act: Twilio's stop, then the socket closing, then a late duplicate.
    call.do_send(FromTwilio::Stopped { socket: 7 });
    call.do_send(FromTwilio::SocketClosed { socket: 7 });
    call.do_send(FromTwilio::Stopped { socket: 7 });
    ended(&call, &probe).await;
    // Assert
    let finished = probe.finished.lock().unwrap();
    assert_eq!(finished.len(), 1, "finish_call exactly once");
    assert_eq!(finished[0].reason, EndReason::TwilioStopped);
    assert_eq!(*probe.ended.lock().unwrap(), 1, "supervisor told once");
    assert!(probe.apologies.lock().unwrap().is_empty());
}

#[actix_rt::test]
async fn a_replaced_sockets_close_does_not_end_the_call() {
    let probe = Arc::new(Probe::default());
    let call = start_call(
        &probe,
        format!("ws://127.0.0.1:{}/v1/realtime", closed_port()),
        100,
    );
    call.do_send(FromTwilio::SocketClosed { socket: 6 }); // not this call's socket
    past_handover_grace(&call).await;
    assert!(probe.finished.lock().unwrap().is_empty());
    call.do_send(FromTwilio::SocketClosed { socket: 7 });
    ended(&call, &probe).await;
    assert_eq!(
        probe.finished.lock().unwrap()[0].reason,
        EndReason::SocketLost
    );
}

#[actix_rt::test]
async fn an_unreachable_agent_ends_in_an_apology_not_silence() {
    // Arrange: two reconnects allowed, nothing listening.
    let probe = Arc::new(Probe::default());
    let call = start_call(
        &probe,
        format!("ws://127.0.0.1:{}/v1/realtime", closed_port()),
        2,
    );
    // Act: first attempt + 2 reconnects (100 ms, 200 ms backoff) fail.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while probe.apologies.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no apology");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    // Assert: the apology is asked for while the stream stays open (closing it
    // first would let Twilio hang up before the apology plays)...
    assert_eq!(
        *probe.apologies.lock().unwrap(),
        vec!["Sorry, try later.".to_owned()]
    );
    assert!(!probe.twilio.lock().unwrap().contains(&"close".to_owned()));
    assert!(probe.finished.lock().unwrap().is_empty());
    // ...and when Twilio's redirect stops the stream, the call ends as failed upstream.
    call.do_send(FromTwilio::Stopped { socket: 7 });
    ended(&call, &probe).await;
    let finished = probe.finished.lock().unwrap();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].reason, EndReason::UpstreamFailed);
}

#[actix_rt::test]
async fn a_second_socket_is_refused_while_the_first_is_alive_or_says_another_stream() {
    let probe = Arc::new(Probe::default());
    let call = start_call(
        &probe,
        format!("ws://127.0.0.1:{}/v1/realtime", closed_port()),
        100,
    );
    // The first socket talks (Twilio: every 20 ms).
    call.do_send(FromTwilio::Audio {
        payload: "AAAA".into(),
    });
    let (same, _r1, _p1) = hand_over(8, identity("MZ1"));
    assert_eq!(call.send(same).await.unwrap(), Err(HandOverRefused::InUse));
    // Another stream, even after the first socket closed: refused.
    call.do_send(FromTwilio::SocketClosed { socket: 7 });
    let (other, _r2, _p2) = hand_over(9, identity("MZ2"));
    assert_eq!(call.send(other).await.unwrap(), Err(HandOverRefused::InUse));
    let mut other_account = identity("MZ1");
    other_account.account_sid = Some("AC2".to_owned());
    let (other, _r3, _p3) = hand_over(10, other_account);
    assert_eq!(call.send(other).await.unwrap(), Err(HandOverRefused::InUse));
    ended(&call, &probe).await;
    assert_eq!(
        probe.finished.lock().unwrap()[0].reason,
        EndReason::SocketLost,
        "no hand-over came within the grace"
    );
    assert!(!probe.twilio.lock().unwrap().contains(&"close".to_owned()));
}

#[actix_rt::test]
async fn the_same_stream_takes_over_once_the_first_socket_closed_or_went_silent() {
    let probe = Arc::new(Probe::default());
    let call = start_call(
        &probe,
        format!("ws://127.0.0.1:{}/v1/realtime", closed_port()),
        100,
    );
    // Closed: the same stream takes over within the grace; the call goes on.
    call.do_send(FromTwilio::SocketClosed { socket: 7 });
    let (msg, _new, new_probe) = hand_over(8, identity("MZ1"));
    assert_eq!(call.send(msg).await.unwrap(), Ok(()));
    past_handover_grace(&call).await;
    assert!(
        probe.finished.lock().unwrap().is_empty(),
        "the call goes on"
    );
    // Silent (open but no frame for handover_silence): taken over too, and the
    // old socket is told to close.
    let (msg, _newer, newer_probe) = hand_over(9, identity("MZ1"));
    assert_eq!(
        call.send(msg).await.unwrap(),
        Err(HandOverRefused::InUse),
        "socket 8 just attached"
    );
    // Once socket 8 has been silent for handover_silence (300 ms), the same
    // stream's next socket is let in (asked every 10 ms until then).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (_newest, _p) = loop {
        let (msg, newest, p) = hand_over(10, identity("MZ1"));
        match call.send(msg).await.unwrap() {
            Ok(()) => break (newest, p),
            Err(refused) => assert!(
                std::time::Instant::now() < deadline,
                "silent socket never replaced: {refused:?}"
            ),
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    };
    // The replaced socket's close is not the call's end.
    call.do_send(FromTwilio::SocketClosed { socket: 8 });
    past_handover_grace(&call).await;
    assert!(probe.finished.lock().unwrap().is_empty());
    assert!(
        newer_probe.twilio.lock().unwrap().is_empty(),
        "9 was refused"
    );
    assert_eq!(*new_probe.twilio.lock().unwrap(), vec!["close".to_owned()]);
    call.do_send(FromTwilio::Stopped { socket: 10 });
    ended(&call, &probe).await;
    assert_eq!(
        probe.finished.lock().unwrap()[0].reason,
        EndReason::TwilioStopped
    );
}
