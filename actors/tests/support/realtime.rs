//! A minimal OpenAI Realtime server for actor tests: it answers
//! `session.update` with `session.updated` once its gate is open, records
//! the caller audio it is sent, and plays audio deltas on request. Or, in
//! *stalled* mode, it completes the handshake, says `session.updated`, and
//! then never reads again (a server whose TCP window stays shut).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use actix_codec::Encoder;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, Error, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// What the server does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Speaks the protocol.
    Answering,
    /// Handshake and `session.updated`, then never reads.
    Stalled,
}

#[derive(Default)]
pub struct Shared {
    /// `session.updated` is sent (to sessions that asked) while this is set.
    pub gate_open: AtomicBool,
    /// `session.updated` sent.
    pub ready_sent: AtomicUsize,
    /// The `audio` of every `input_audio_buffer.append`, in order.
    pub appends: Mutex<Vec<String>>,
    sessions: Mutex<Vec<Addr<Session>>>,
}

/// A running server.
pub struct RealtimeStandIn {
    /// `ws://127.0.0.1:<port>/v1/realtime`
    pub url: String,
    pub shared: Arc<Shared>,
    server: ServerHandle,
}

impl RealtimeStandIn {
    pub async fn start(mode: Mode) -> Self {
        let shared = Arc::new(Shared::default());
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            let app = App::new().app_data(data.clone());
            match mode {
                Mode::Answering => app.route("/v1/realtime", web::get().to(answering)),
                Mode::Stalled => app.route("/v1/realtime", web::get().to(stalled)),
            }
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            url: format!("ws://127.0.0.1:{port}/v1/realtime"),
            shared,
            server: handle,
        }
    }

    /// Lets `session.updated` go out.
    pub fn open_gate(&self) {
        self.shared.gate_open.store(true, Ordering::SeqCst);
    }

    /// Plays `payloads` as audio deltas of `item_id` on every session.
    pub fn send_audio(&self, item_id: &str, payloads: Vec<String>) {
        for session in self.shared.sessions.lock().unwrap().iter() {
            session.do_send(SendAudio {
                item_id: item_id.to_owned(),
                payloads: payloads.clone(),
            });
        }
    }

    pub fn appends(&self) -> Vec<String> {
        self.shared.appends.lock().unwrap().clone()
    }

    /// Drops every connection at once.
    pub async fn kill(&self) {
        self.server.stop(false).await;
    }
}

async fn answering(
    req: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, Error> {
    let session = Session {
        shared: shared.into_inner(),
        asked: false,
        answered: false,
    };
    let (addr, response) = ws::WsResponseBuilder::new(session, &req, stream).start_with_addr()?;
    addr.do_send(Register);
    Ok(response)
}

async fn stalled(req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, Error> {
    let mut response = ws::handshake(&req)?;
    let mut frame = BytesMut::new();
    awc::ws::Codec::new()
        .encode(
            awc::ws::Message::Text(r#"{"type":"session.updated"}"#.into()),
            &mut frame,
        )
        .unwrap();
    let first = frame.freeze();
    // The request's payload is kept, never polled: the server stops reading
    // once its buffer is full, and the client's writes back up.
    let body = futures_util::stream::once(async move { Ok::<Bytes, Error>(first) }).chain(
        futures_util::stream::unfold(payload, |payload| async move {
            std::future::pending::<()>().await;
            drop(payload);
            None
        }),
    );
    Ok(response.streaming(body))
}

pub struct Session {
    shared: Arc<Shared>,
    asked: bool,
    answered: bool,
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_millis(10), |act, ctx| {
            if act.asked && !act.answered && act.shared.gate_open.load(Ordering::SeqCst) {
                act.answered = true;
                ctx.text(r#"{"type":"session.updated","session":{}}"#);
                act.shared.ready_sent.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Register;

impl Handler<Register> for Session {
    type Result = ();
    fn handle(&mut self, _: Register, ctx: &mut Self::Context) {
        self.shared.sessions.lock().unwrap().push(ctx.address());
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SendAudio {
    item_id: String,
    payloads: Vec<String>,
}

impl Handler<SendAudio> for Session {
    type Result = ();
    fn handle(&mut self, msg: SendAudio, ctx: &mut Self::Context) {
        for delta in msg.payloads {
            ctx.text(
                serde_json::json!({
                    "type": "response.output_audio.delta",
                    "response_id": "resp_1",
                    "item_id": msg.item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": delta,
                })
                .to_string(),
            );
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                match event["type"].as_str() {
                    Some("session.update") => self.asked = true,
                    Some("input_audio_buffer.append") => self
                        .shared
                        .appends
                        .lock()
                        .unwrap()
                        .push(event["audio"].as_str().unwrap().to_owned()),
                    _ => {}
                }
            }
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Close(_)) | Err(_) => ctx.stop(),
            _ => {}
        }
    }
}
