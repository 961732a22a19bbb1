//! "Media elsewhere": the CallActor's media port for a call whose audio does
//! not pass through us (SIP and WhatsApp calls answered by OpenAI: RTP goes
//! between the carrier and OpenAI; we follow the call on its sideband socket).
//!
//! It stands where a Twilio socket would, so the CallActor runs unchanged:
//! there is nothing to play (agent audio, if a server sent any, is counted as
//! played at once so the call never waits on it), nothing to clear, and
//! closing the "socket" means hanging the call up through the carrier's
//! [`CallControl`] (OpenAI's `…/hangup`). Hanging up is asked once.

use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;

use super::messages::{FromTwilio, ToTwilio};
use crate::events;
use crate::ids::CallSid;
use crate::ports::CallControl;

/// Tells the media port which call it serves (sent once the call's actor exists).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BindCall(pub Recipient<FromTwilio>);

/// The media port of a call carried elsewhere.
pub struct MediaElsewhere {
    call_sid: CallSid,
    control: Arc<dyn CallControl>,
    call: Option<Recipient<FromTwilio>>,
    hanging_up: bool,
}

impl MediaElsewhere {
    /// The port of `call_sid`, hanging up through `control`.
    pub fn new(call_sid: CallSid, control: Arc<dyn CallControl>) -> Self {
        Self {
            call_sid,
            control,
            call: None,
            hanging_up: false,
        }
    }
}

impl Actor for MediaElsewhere {
    type Context = Context<Self>;
}

impl Handler<BindCall> for MediaElsewhere {
    type Result = ();

    fn handle(&mut self, msg: BindCall, _ctx: &mut Self::Context) {
        self.call = Some(msg.0);
    }
}

impl Handler<ToTwilio> for MediaElsewhere {
    type Result = ();

    fn handle(&mut self, msg: ToTwilio, ctx: &mut Self::Context) {
        match msg {
            // Played elsewhere (or nowhere): acknowledged now.
            ToTwilio::Audio { mark, .. } => {
                if let Some(call) = &self.call {
                    call.do_send(FromTwilio::MarkPlayed {
                        name: ByteString::from(format!("m{mark}")),
                    });
                }
            }
            ToTwilio::Clear => {}
            ToTwilio::Close if self.hanging_up => {}
            ToTwilio::Close => {
                self.hanging_up = true;
                let (control, call_sid) = (self.control.clone(), self.call_sid.clone());
                let work = async move { control.hang_up(&call_sid).await };
                ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
                    if let Err(e) = result {
                        log::warn!(
                            "{} call_sid={} tenant=- action=hangup error={:?}",
                            events::SIP_CONTROL_FAILED,
                            act.call_sid,
                            e.to_string()
                        );
                    }
                    ctx.stop();
                }));
            }
        }
    }
}
