//! Fifty calls at once for ten seconds through the echoing Realtime stand-in:
//! every call logged, no audio frame lost or reordered in either direction.

use std::time::Duration;

use callvisor_standins::audio::read_tag_base64;
use callvisor_standins::realtime_script::RealtimeMode;
use callvisor_standins::realtime_server::RealtimeConfig;
use callvisor_standins::{place_call, CallEnd, CloseReason, StandInsConfig};

use crate::helpers::calls::CallWorld;

const CALLS: usize = 50;

#[actix_web::test]
async fn fifty_concurrent_calls_lose_and_reorder_nothing() {
    // Arrange
    let config = StandInsConfig {
        realtime: RealtimeConfig {
            mode: RealtimeMode::Echo,
            ..Default::default()
        },
        ..Default::default()
    };
    let world = CallWorld::start_with(config, &[]).await;
    // Act
    let calls = (0..CALLS).map(|i| {
        let mut caller = world.caller();
        caller.speak_for = Duration::from_secs(10);
        caller.call_tag = Some(1000 + i as u32);
        caller.end = CallEnd::Stop {
            after_audio: Duration::from_millis(1000),
        };
        place_call(caller)
    });
    let reports = futures_util::future::join_all(calls).await;
    // Assert: downstream (agent -> caller), per call
    let mut sids = Vec::new();
    for report in reports {
        let report = report.unwrap();
        assert_eq!(
            report.close,
            Some(CloseReason::StopSent),
            "{}",
            report.call_sid
        );
        assert_eq!(report.frames_sent, 500);
        assert_eq!(
            report.frames_echoed, report.frames_sent,
            "{}: lost {:?}",
            report.call_sid, report.lost_frames
        );
        assert_eq!(report.out_of_order_echoes, 0);
        assert_eq!(report.duplicate_echoes, 0);
        assert_eq!(report.foreign_frames, 0, "no cross-talk between calls");
        sids.push(report.call_sid);
    }
    // upstream (caller -> agent), per session: every frame, in order
    let sessions = world.standins.realtime.sessions();
    assert_eq!(sessions.len(), CALLS);
    for session in &sessions {
        assert_eq!(session.appends, 500, "session {}", session.index);
        let indices: Vec<u32> = session
            .appended_payloads
            .iter()
            .map(|p| read_tag_base64(p).expect("tagged frame").index)
            .collect();
        assert_eq!(
            indices,
            (0..500).collect::<Vec<u32>>(),
            "session {}",
            session.index
        );
    }
    for sid in &sids {
        world
            .wait_for_row(sid, Duration::from_secs(20), |r| r.ended)
            .await;
    }
    world.stop().await;
}
