//! `GET /twilio/media` (and `/twilio-media`): Twilio's media-stream WebSocket.
//! The socket actor checks the stream token in Twilio's `start` message before
//! anything is opened for the call; it runs on this request's worker thread,
//! and so will the call's actors. Until its `start` passes a socket is a
//! stranger: it takes a place in the process-wide start gate first, and over
//! the gate's cap the upgrade is refused with 503.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use callvisor_actors::events;
use callvisor_actors::twilio_stream::TwilioStreamActor;
use callvisor_wire::protocol::twilio::MAX_TWILIO_FRAME_BYTES;

use super::error::ApiError;
use crate::state::AppState;

/// Upgrades to the media stream.
pub async fn media(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    if state.lifecycle.is_draining() {
        return Err(ApiError::unavailable("unavailable", "instance is draining").into());
    }
    let calls = &state.calls;
    let slot = match calls.start_gate.try_enter() {
        Ok(slot) => slot,
        Err(full) => {
            // Sampled: a flood must not become a flood of lines.
            if full.refused == 1 || full.refused.is_multiple_of(100) {
                log::warn!(
                    "{} call_sid=- tenant=- reason=too_many_awaiting_start cap={} refused_total={}",
                    events::STREAM_REJECTED,
                    full.cap,
                    full.refused
                );
            }
            return Err(ApiError::unavailable(
                "unavailable",
                "too many media sockets awaiting start",
            )
            .into());
        }
    };
    let actor = TwilioStreamActor::new(
        calls.deps.authority.clone(),
        calls.supervisor.clone().recipient(),
        calls.stream_settings.clone(),
        slot,
    );
    ws::WsResponseBuilder::new(actor, &req, stream)
        .frame_size(MAX_TWILIO_FRAME_BYTES)
        .start()
}
