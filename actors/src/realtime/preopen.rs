//! Realtime sessions opened while the phone rings, before the call's media
//! socket exists (it cuts seconds from the first answer: the handshake and the
//! session set-up are done by the time Twilio connects). They are parked here by CallSid; the call's actor adopts its
//! session when its socket arrives on this instance. A session nobody adopts
//! (the socket landed on another instance, which opened its own) closes itself
//! after its park timeout; one whose socket failed its token or was refused
//! here is closed at once ([`discard`]). A parked session never speaks: its
//! greeting (a paid response) waits for the adoption.
//!
//! The registry is process-wide: the webhook and the socket are usually served
//! by different worker threads. A session adopted from another thread keeps
//! living on the webhook's thread, so that call's audio crosses threads (one
//! hop each way per frame): the price of the faster first answer, which
//! `calls.preopen_realtime = false` declines.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use actix::Addr;

use super::RealtimeActor;
use crate::call::messages::ToRealtime;

static PARKED: LazyLock<Mutex<HashMap<String, Addr<RealtimeActor>>>> =
    LazyLock::new(Mutex::default);

fn with_parked<T>(f: impl FnOnce(&mut HashMap<String, Addr<RealtimeActor>>) -> T) -> T {
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    let mut parked = PARKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut parked)
}

/// Parks a session for `call_sid` (a retried webhook replaces the older one, which times out).
pub fn park(call_sid: &str, session: Addr<RealtimeActor>) {
    with_parked(|parked| parked.insert(call_sid.to_owned(), session));
}

/// Takes the session parked for `call_sid`, if any.
pub fn take(call_sid: &str) -> Option<Addr<RealtimeActor>> {
    with_parked(|parked| parked.remove(call_sid))
}

/// Forgets `session` if it is still the one parked for `call_sid` (it expired or failed).
pub fn forget(call_sid: &str, session: &Addr<RealtimeActor>) {
    with_parked(|parked| {
        if parked.get(call_sid) == Some(session) {
            parked.remove(call_sid);
        }
    });
}

/// Closes the session parked for `call_sid`, if any: its socket failed its
/// token or was refused, so nobody will adopt it. Answers whether one was parked.
pub fn discard(call_sid: &str) -> bool {
    match take(call_sid) {
        Some(session) => {
            session.do_send(ToRealtime::Close);
            true
        }
        None => false,
    }
}

/// Whether a session is parked for `call_sid` (tests: the process-wide
/// count is shared by every call of the process, this names one).
pub fn is_parked(call_sid: &str) -> bool {
    with_parked(|parked| parked.contains_key(call_sid))
}

/// How many sessions are parked (tests, metrics).
pub fn parked_count() -> usize {
    with_parked(|parked| parked.len())
}
