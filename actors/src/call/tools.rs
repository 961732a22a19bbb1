//! The agent's tool calls. Call-control tools (`end_call`,
//! `transfer_to_human`) change this call's state and are handled here; data
//! tools (`create_reservation`, ...) go to the service's [`ToolRunner`]. Every
//! tool call gets its output back (`function_call_output`), so the model is
//! never left waiting.
//!
//! [`ToolRunner`]: crate::ports::ToolRunner

use std::time::Duration;

use actix::prelude::*;

use super::messages::ToRealtime;
use super::phase::CallPhase;
use super::CallActor;
use crate::error_chain::Chain;
use crate::events;
use crate::ports::{EndReason, ToolCall};
use crate::redact::Masked;

/// How long the agent's last words may take to play after `end_call`.
const END_CALL_PLAYOUT_LIMIT: Duration = Duration::from_secs(10);

impl CallActor {
    pub(super) fn on_tool_call(
        &mut self,
        call_id: String,
        name: String,
        arguments: String,
        ctx: &mut Context<Self>,
    ) {
        log::info!(
            "{} call_sid={} tenant={} tool={name}",
            events::TOOL_CALLED,
            self.call_sid,
            self.tenant_id
        );
        match name.as_str() {
            "end_call" => {
                self.reply_tool(call_id, r#"{"ok":true}"#.to_owned(), false);
                self.end_after_playback = true;
                // The function call's own response may still be speaking.
                self.finish_if_said_goodbye(ctx);
                ctx.run_later(END_CALL_PLAYOUT_LIMIT, |act, ctx| {
                    act.end(EndReason::AgentEnded, ctx)
                });
            }
            "transfer_to_human" => self.transfer(Some(call_id), ctx),
            _ => {
                let call = ToolCall {
                    call_sid: self.call_sid.clone(),
                    tenant_id: self.tenant_id.clone(),
                    caller: self.plan.as_ref().and_then(|p| p.caller.clone()),
                    name: name.clone(),
                    arguments,
                };
                let run = self.deps.tools.run(call);
                let asked_on = self.generation;
                ctx.spawn(run.into_actor(self).map(move |output, act, _ctx| {
                    if act.generation == asked_on {
                        act.reply_tool(call_id, output, true);
                    } else if let Some(rt) = &act.realtime {
                        // The connection that asked is gone and its call_id with it:
                        // tell the new one what happened instead of losing the result.
                        rt.do_send(ToRealtime::Note {
                            text: format!("(Result of the {name} request made before the line dropped: {output})"),
                            respond: true,
                        });
                    }
                }));
            }
        }
    }

    fn reply_tool(&self, call_id: String, output: String, respond: bool) {
        if let Some(rt) = &self.realtime {
            rt.do_send(ToRealtime::ToolOutput {
                call_id,
                output,
                respond,
            });
        }
    }

    /// Hands the caller to the tenant's human (`call_id` is set when the agent asked).
    pub(super) fn transfer(&mut self, call_id: Option<String>, ctx: &mut Context<Self>) {
        if self.phase.is_ending() || self.phase == CallPhase::Transferring {
            return;
        }
        let plan = self.plan.clone();
        let Some(number) = plan.as_ref().and_then(|p| p.handoff_number.clone()) else {
            log::warn!(
                "{} call_sid={} tenant={} reason=no_handoff_number",
                events::TRANSFER_UNAVAILABLE,
                self.call_sid,
                self.tenant_id
            );
            if let Some(call_id) = call_id {
                let output = r#"{"ok":false,"error":"no_handoff_number","message":"No one is available to take this call. Tell the caller so and offer to help or take a message."}"#;
                self.reply_tool(call_id, output.to_owned(), true);
            }
            return;
        };
        let caller_id = plan.as_ref().and_then(|p| p.caller_id.clone());
        let control = self.deps.control.clone();
        let call_sid = self.call_sid.clone();
        let to = number.clone();
        let work = async move { control.transfer(&call_sid, &to, caller_id.as_deref()).await };
        ctx.spawn(work.into_actor(self).map(move |result, act, _ctx| match result {
            Ok(()) => {
                log::info!(
                    "{} call_sid={} tenant={} to={}",
                    events::CALL_TRANSFERRED,
                    act.call_sid,
                    act.tenant_id,
                    Masked(&number)
                );
                act.transferred_to = Some(number);
                if !act.phase.is_ending() {
                    act.phase = CallPhase::Transferring;
                }
                if let Some(call_id) = call_id {
                    act.reply_tool(call_id, r#"{"ok":true,"status":"transferring"}"#.to_owned(), false);
                }
            }
            Err(e) => {
                log::error!(
                    "{} call_sid={} tenant={} error={:?}",
                    events::CALL_TRANSFER_FAILED,
                    act.call_sid,
                    act.tenant_id,
                    Chain(&e)
                );
                if let Some(call_id) = call_id {
                    let output = r#"{"ok":false,"error":"transfer_failed","message":"The transfer did not go through. Apologise and offer to take a message."}"#;
                    act.reply_tool(call_id, output.to_owned(), true);
                }
            }
        }));
    }
}
