//! `GET /twilio/media` (and `/twilio-media`): Twilio's media-stream WebSocket.
//! The socket actor checks the stream token in Twilio's `start` message before
//! anything is opened for the call; it runs on this request's worker thread,
//! and so will the call's actors.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use callvisor_actors::twilio_stream::TwilioStreamActor;
use callvisor_wire::protocol::twilio::MAX_TWILIO_FRAME_BYTES;

use super::error::ApiError;
use crate::startup::AppState;

/// Upgrades to the media stream.
pub async fn media(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    if state.lifecycle.is_draining() {
        return Err(ApiError::Unavailable("instance is draining".into()).into());
    }
    let calls = &state.calls;
    let actor = TwilioStreamActor::new(
        calls.deps.authority.clone(),
        calls.supervisor.clone().recipient(),
        calls.deps.tuning.twilio_idle_timeout,
        calls.deps.tuning.max_buffered_frames,
    );
    ws::WsResponseBuilder::new(actor, &req, stream)
        .frame_size(MAX_TWILIO_FRAME_BYTES)
        .start()
}
