//! Calls carried elsewhere (SIP, WhatsApp through OpenAI): registered like
//! any other call, but with their own ports (call control through OpenAI, the
//! sideband socket as the Realtime endpoint) and a [`MediaElsewhere`] port in
//! place of a Twilio socket.
//!
//! [`MediaElsewhere`]: crate::call::media::MediaElsewhere

use actix::prelude::*;

use super::messages::AttachError;
use super::{CallStart, CallSupervisor};
use crate::call::media::{BindCall, MediaElsewhere};
use crate::call::messages::FromTwilio;
use crate::events;
use crate::ids::{CallSid, TenantId};
use crate::ports::CallDeps;

/// Socket id of a call without a Twilio socket (it is never replaced).
const NO_SOCKET: u64 = 0;

/// Start following a call whose media is elsewhere (its sideband socket is
/// `deps.realtime`); the call's actors start on `arbiter`.
#[derive(Message)]
#[rtype(result = "Result<Recipient<FromTwilio>, AttachError>")]
pub struct AttachSideband {
    /// The call (OpenAI's `call_id`).
    pub call_sid: CallSid,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// This call's ports.
    pub deps: CallDeps,
    /// The worker thread to run on.
    pub arbiter: ArbiterHandle,
}

impl Handler<AttachSideband> for CallSupervisor {
    type Result = MessageResult<AttachSideband>;

    fn handle(&mut self, msg: AttachSideband, ctx: &mut Self::Context) -> Self::Result {
        if let Some(entry) = self.calls.get(&msg.call_sid) {
            // Accepted twice (a retried webhook): one call, one agent.
            return MessageResult(Ok(entry.addr.clone().recipient()));
        }
        if self.draining {
            return MessageResult(Err(AttachError::Draining));
        }
        let media = {
            let (call_sid, control) = (msg.call_sid.clone(), msg.deps.control.clone());
            MediaElsewhere::start_in_arbiter(&msg.arbiter, move |_| {
                MediaElsewhere::new(call_sid, control)
            })
        };
        log::info!(
            "{} call_sid={} tenant={} media=elsewhere",
            events::SIP_SIDEBAND_ATTACHED,
            msg.call_sid,
            msg.tenant_id
        );
        let addr = self.start_call(
            ctx,
            &msg.arbiter,
            CallStart {
                call_sid: msg.call_sid,
                tenant_id: msg.tenant_id,
                deps: msg.deps,
                twilio: media.clone().recipient(),
                socket: NO_SOCKET,
                identity: None,
            },
        );
        media.do_send(BindCall(addr.clone().recipient()));
        MessageResult(Ok(addr.recipient()))
    }
}
