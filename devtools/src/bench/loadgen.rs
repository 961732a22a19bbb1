//! The load generator: many simulated Twilio calls from a few threads.
//!
//! Each call does what Twilio does: POST the signed voice webhook, read the TwiML's
//! `<Connect><Stream>` and its `<Parameter>`s, open the media WebSocket, send `connected`
//! and `start`, then one 160-byte μ-law frame every 20 ms on a fixed schedule (a late
//! timer sends the frames it missed at once and the lateness is recorded: a slow generator
//! never silently offers less load), acknowledge each `mark` once the audio queued before
//! it has played (a playback clock per call, as Twilio plays 8 kHz audio in real time), and
//! `stop` at the end. Every frame carries a tag ([`callvisor_standins::audio`]) so its echo is
//! matched: round trip, loss, reordering, duplicates and cross-talk are all seen.
//!
//! Cost: one task per call on a current-thread runtime per generator thread, one `write`
//! per frame, buffers reused for the whole call (frame, base64, JSON, WebSocket bytes, mark
//! names), and round trips kept in per-thread vectors reserved up front. The only per-frame
//! work beyond the socket calls is building the JSON and masking it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{Buf as _, BytesMut};
use callvisor_wire::protocol::twilio::{self, TwilioOutbound};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;

use super::echo::unix_micros;
use super::ws::{self, Frame, OpCode};
use callvisor_standins::audio::{
    base64_decoded_len, read_tag, tagged_frame, FrameTag, TagScanner, FRAME_MS,
};
use callvisor_standins::form::encode_form;
use callvisor_standins::twiml::parse_twiml;
use callvisor_wire::signing::twilio::expected_signature;

/// Sent frames remembered for matching their echoes (20 s of audio); an echo older than
/// that is counted as stale, i.e. lost.
const RING: usize = 1024;
/// One frame period.
const FRAME: Duration = Duration::from_millis(FRAME_MS);

/// What every call of a run shares.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where the webhook is POSTed (`host:port` of the bridge).
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// The webhook's path (`/twilio/voice`).
    pub webhook_path: String,
    /// The URL Twilio signs (the bridge's public URL + path).
    pub signing_url: String,
    /// The Twilio auth token the bridge checks signatures with.
    pub auth_token: String,
    /// `AccountSid` of the webhook and the stream.
    pub account_sid: String,
    /// Numbers called (`To`), used round-robin.
    pub to_numbers: Vec<String>,
    /// `From`.
    pub from: String,
    /// How long a call waits for its echoes after sending its last frame.
    pub drain: Duration,
    /// Longest wait for the webhook answer and the WebSocket upgrade.
    pub connect_timeout: Duration,
}

/// Shared between the orchestrator and the generator threads.
#[derive(Debug)]
pub struct Control {
    base: Instant,
    window_start_ns: AtomicU64,
    window_end_ns: AtomicU64,
    stop: AtomicBool,
    /// Calls whose webhook was sent.
    pub placed: AtomicUsize,
    /// Calls whose stream is open (`start` sent).
    pub connected: AtomicUsize,
    /// Calls that failed before or during set-up, or whose socket broke.
    pub failed: AtomicUsize,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    /// A run that has not started its window.
    #[must_use]
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            window_start_ns: AtomicU64::new(u64::MAX),
            window_end_ns: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            placed: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The measured window starts now.
    pub fn start_window(&self) {
        self.window_start_ns
            .store(self.ns(Instant::now()), Ordering::SeqCst);
    }

    /// The measured window ends now.
    pub fn end_window(&self) {
        self.window_end_ns
            .store(self.ns(Instant::now()), Ordering::SeqCst);
    }

    /// Every call stops sending (and then drains, sends `stop` and closes).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn in_window(&self, at: Instant) -> bool {
        let t = self.ns(at);
        t >= self.window_start_ns.load(Ordering::Relaxed)
            && t < self.window_end_ns.load(Ordering::Relaxed)
    }
}

/// What one call saw.
#[derive(Debug, Clone, Default)]
pub struct CallResult {
    /// The tag its frames carry.
    pub call_tag: u32,
    /// The stream was opened.
    pub connected: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When its webhook was sent (unix µs), to pair with the stand-in's first-audio time.
    pub webhook_sent_unix_us: u64,
    /// Webhook sent → first echo back on the caller's socket.
    pub first_echo_after: Option<Duration>,
    /// Frames sent.
    pub sent: u64,
    /// Distinct frames echoed back.
    pub echoed: u64,
    /// Echoes that came after a later frame's echo.
    pub out_of_order: u64,
    /// Frames echoed twice.
    pub duplicates: u64,
    /// Frames of another call.
    pub foreign: u64,
    /// Echoes of frames too old to match (counted lost).
    pub stale: u64,
    /// Frames sent inside the window.
    pub window_sent: u64,
    /// Of those, echoed.
    pub window_echoed: u64,
    /// Marks received from the bridge.
    pub marks: u64,
    /// Marks acknowledged.
    pub marks_acked: u64,
    /// Frames that were not JSON Twilio would accept, or WebSocket errors.
    pub protocol_errors: u64,
}

impl CallResult {
    /// Frames sent and never echoed.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.echoed)
    }
}

/// What one generator thread collected.
#[derive(Debug, Default)]
pub struct ThreadResult {
    /// Per call.
    pub calls: Vec<CallResult>,
    /// Round trips (µs) of frames sent inside the window.
    pub rtt_us: Vec<u32>,
    /// Timer lateness (µs) of every frame sent inside the window.
    pub lateness_us: Vec<u32>,
}

/// One call to place: its tag, when, and the number it dials.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// Frame tag (unique per run).
    pub call_tag: u32,
    /// When to send the webhook.
    pub at: Instant,
    /// `To`.
    pub to: String,
}

/// Runs `plans` on a new thread; the result comes back through the handle.
///
/// # Errors
/// The thread or its runtime could not be created.
pub fn spawn_thread(
    config: Arc<LoadConfig>,
    control: Arc<Control>,
    plans: Vec<CallPlan>,
    expected_window_frames: usize,
) -> std::io::Result<std::thread::JoinHandle<ThreadResult>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("bench-loadgen".to_owned())
        .spawn(move || {
            let samples = Rc::new(RefCell::new(ThreadResult {
                calls: Vec::new(),
                rtt_us: Vec::with_capacity(expected_window_frames),
                lateness_us: Vec::with_capacity(expected_window_frames),
            }));
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async {
                let mut handles = Vec::with_capacity(plans.len());
                for plan in plans {
                    let config = Arc::clone(&config);
                    let control = Arc::clone(&control);
                    let samples = Rc::clone(&samples);
                    handles.push(tokio::task::spawn_local(async move {
                        run_call(&config, &control, plan, &samples).await
                    }));
                }
                for handle in handles {
                    if let Ok(result) = handle.await {
                        samples.borrow_mut().calls.push(result);
                    }
                }
            });
            Rc::try_unwrap(samples)
                .map(RefCell::into_inner)
                .unwrap_or_default()
        })
}

fn random_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

async fn run_call(
    config: &LoadConfig,
    control: &Control,
    plan: CallPlan,
    samples: &RefCell<ThreadResult>,
) -> CallResult {
    tokio::time::sleep_until(plan.at.into()).await;
    let mut result = CallResult {
        call_tag: plan.call_tag,
        ..CallResult::default()
    };
    control.placed.fetch_add(1, Ordering::SeqCst);
    match call(config, control, &plan, samples, &mut result).await {
        Ok(()) => {}
        Err(e) => {
            control.failed.fetch_add(1, Ordering::SeqCst);
            result.error = Some(e);
        }
    }
    result
}

/// POSTs the signed webhook; returns the TwiML's stream path and parameters.
async fn webhook(
    config: &LoadConfig,
    call_sid: &str,
    to: &str,
) -> Result<(String, Vec<(String, String)>), String> {
    let params: Vec<(String, String)> = [
        ("AccountSid", config.account_sid.as_str()),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", config.from.as_str()),
        ("Direction", "inbound"),
        ("From", config.from.as_str()),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature = expected_signature(&config.auth_token, &config.signing_url, &params);
    let body = encode_form(&params);
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: TwilioProxy/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        config.webhook_path,
        config.host,
        body.len()
    );
    let mut stream = TcpStream::connect(config.addr)
        .await
        .map_err(|e| format!("webhook connect: {e}"))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("webhook write: {e}"))?;
    let mut response = Vec::with_capacity(2048);
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("webhook read: {e}"))?;
    let end = ws::head_end(&response).ok_or("webhook: no HTTP answer")?;
    let head = String::from_utf8_lossy(response.get(..end).unwrap_or_default()).into_owned();
    let raw_body = response.get(end..).unwrap_or_default();
    let body = if ws::header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        ws::dechunk(raw_body).ok_or("webhook: bad chunked body")?
    } else {
        raw_body.to_vec()
    };
    let status = ws::status_code(&head).unwrap_or(0);
    if status != 200 {
        return Err(format!("webhook answered {status}"));
    }
    let text = String::from_utf8_lossy(&body);
    let twiml = parse_twiml(&text).map_err(|e| format!("TwiML: {e}"))?;
    let stream = twiml
        .connect_stream()
        .ok_or_else(|| format!("TwiML without <Connect><Stream>: {:?}", twiml.verb_names()))?;
    // Only the path is kept: the socket goes to the same loopback address as the webhook
    // (the URL names the public host, `wss://` behind a TLS terminator).
    let after_scheme = stream.url.find("://").map_or(0, |i| i + 3);
    let path = stream
        .url
        .get(after_scheme..)
        .and_then(|rest| rest.find('/').and_then(|i| rest.get(i..)))
        .unwrap_or("/")
        .to_owned();
    Ok((path, stream.parameters.clone()))
}

/// Opens the media WebSocket; leftover bytes after the 101 stay in `rbuf`.
async fn open_stream(
    config: &LoadConfig,
    path: &str,
    rbuf: &mut BytesMut,
) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(config.addr)
        .await
        .map_err(|e| format!("stream connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let key = STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: Twilio.TmeWs/1.0\r\n\r\n",
        config.host
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("stream write: {e}"))?;
    let end = loop {
        if stream
            .read_buf(rbuf)
            .await
            .map_err(|e| format!("stream read: {e}"))?
            == 0
        {
            return Err("stream closed during the upgrade".to_owned());
        }
        if let Some(end) = ws::head_end(rbuf) {
            break end;
        }
    };
    let head = String::from_utf8_lossy(rbuf.get(..end).unwrap_or_default()).into_owned();
    rbuf.advance(end);
    let accept_ok = ws::header(&head, "sec-websocket-accept") == Some(&ws::accept_key(&key));
    match ws::status_code(&head) {
        Some(101) if accept_ok => Ok(stream),
        Some(101) => Err("stream upgrade: wrong Sec-WebSocket-Accept".to_owned()),
        other => Err(format!("stream upgrade answered {other:?}")),
    }
}

/// A sent frame waiting for its echo.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u32,
    sent: Instant,
    in_window: bool,
    echoed: bool,
}

/// Per-call scratch buffers, reused for every frame.
struct Buffers {
    b64: String,
    json: String,
    out: BytesMut,
    decoded: Vec<u8>,
    tags: Vec<FrameTag>,
    free_names: Vec<String>,
}

/// The caller's side of playback: Twilio plays queued agent audio in real time and
/// returns a mark once everything queued before it has played.
struct Playback {
    plays_until: Instant,
    marks: VecDeque<(Instant, String)>,
}

struct CallState<'a> {
    control: &'a Control,
    samples: &'a RefCell<ThreadResult>,
    result: &'a mut CallResult,
    stream_sid: String,
    seq: u64,
    codec: ws::Codec,
    ring: Vec<Slot>,
    highest_echo: Option<u32>,
    webhook_sent: Instant,
    bufs: Buffers,
    playback: Playback,
    scanner: TagScanner,
}

impl CallState<'_> {
    /// Encodes `self.bufs.json` as one masked text frame into `self.bufs.out`.
    fn push_json(&mut self) {
        ws::encode_frame(
            &mut self.bufs.out,
            OpCode::Text,
            self.bufs.json.as_bytes(),
            true,
        );
        self.bufs.json.clear();
    }

    fn push_media(&mut self, index: u32, now: Instant) {
        let frame = tagged_frame(self.result.call_tag, index);
        self.bufs.b64.clear();
        STANDARD.encode_string(frame, &mut self.bufs.b64);
        self.seq += 1;
        twilio::write_inbound_media(
            &mut self.bufs.json,
            &self.stream_sid,
            self.seq,
            u64::from(index) + 1,
            u64::from(index) * FRAME_MS,
            &self.bufs.b64,
        );
        self.push_json();
        let in_window = self.control.in_window(now);
        if let Some(slot) = self.ring.get_mut(index as usize % RING) {
            *slot = Slot {
                index,
                sent: now,
                in_window,
                echoed: false,
            };
        }
        self.result.sent += 1;
        if in_window {
            self.result.window_sent += 1;
        }
    }

    fn echo(&mut self, tag: FrameTag, now: Instant) {
        if tag.call_tag != self.result.call_tag {
            self.result.foreign += 1;
            return;
        }
        let Some(slot) = self.ring.get_mut(tag.index as usize % RING) else {
            return;
        };
        if slot.index != tag.index || u64::from(tag.index) >= self.result.sent {
            self.result.stale += 1;
            return;
        }
        if slot.echoed {
            self.result.duplicates += 1;
            return;
        }
        slot.echoed = true;
        self.result.echoed += 1;
        if self.result.first_echo_after.is_none() {
            self.result.first_echo_after = Some(now.saturating_duration_since(self.webhook_sent));
        }
        if slot.in_window {
            self.result.window_echoed += 1;
            let rtt = now.saturating_duration_since(slot.sent).as_micros();
            self.samples
                .borrow_mut()
                .rtt_us
                .push(u32::try_from(rtt).unwrap_or(u32::MAX));
        }
        match self.highest_echo {
            Some(high) if tag.index < high => self.result.out_of_order += 1,
            _ => self.highest_echo = Some(tag.index),
        }
    }

    /// Handles the agent audio in a `media` payload: playback time and frame tags.
    fn media(&mut self, payload: &str, now: Instant) {
        let bytes = base64_decoded_len(payload) as u64;
        let start = self.playback.plays_until.max(now);
        self.playback.plays_until = start + Duration::from_micros(bytes * 125);
        // Fast path: one whole frame, tag at its start (16 base64 chars = 12 bytes).
        if payload.len() == 216 {
            let mut head = [0u8; 12];
            let tag = payload
                .get(..16)
                .and_then(|h| STANDARD.decode_slice(h, &mut head).ok())
                .and_then(|_| read_tag(&head));
            if let Some(tag) = tag {
                self.echo(tag, now);
                return;
            }
        }
        // A bridge that re-chunks audio: decode it all and scan across payloads.
        self.bufs.decoded.clear();
        if STANDARD
            .decode_vec(payload, &mut self.bufs.decoded)
            .is_err()
        {
            self.result.protocol_errors += 1;
            return;
        }
        let mut tags = std::mem::take(&mut self.bufs.tags);
        tags.clear();
        self.scanner.scan(&self.bufs.decoded, &mut tags);
        for tag in &tags {
            self.echo(*tag, now);
        }
        self.bufs.tags = tags;
    }

    fn text(&mut self, text: &str, now: Instant) {
        match twilio::parse_outbound(text) {
            Ok(TwilioOutbound::Media { payload }) => self.media(payload, now),
            Ok(TwilioOutbound::Mark { name }) => {
                self.result.marks += 1;
                let mut owned = self.bufs.free_names.pop().unwrap_or_default();
                owned.clear();
                owned.push_str(&name);
                let due = self.playback.plays_until.max(now);
                self.playback.marks.push_back((due, owned));
            }
            Ok(TwilioOutbound::Clear) => {
                // Queued audio is dropped; its marks come back at once.
                self.playback.plays_until = now;
                for (due, _) in &mut self.playback.marks {
                    *due = now;
                }
            }
            Ok(TwilioOutbound::Unknown { .. }) => {}
            Err(_) => self.result.protocol_errors += 1,
        }
    }

    /// Acknowledges every mark whose audio has played by `now`.
    fn ack_due_marks(&mut self, now: Instant) {
        while let Some((due, _)) = self.playback.marks.front() {
            if *due > now {
                break;
            }
            let Some((_, name)) = self.playback.marks.pop_front() else {
                break;
            };
            self.seq += 1;
            twilio::write_inbound_mark(&mut self.bufs.json, &self.stream_sid, self.seq, &name);
            self.push_json();
            self.result.marks_acked += 1;
            self.bufs.free_names.push(name);
        }
    }

    /// Decodes whatever complete frames `rbuf` holds, removing them. `Err` when the bridge
    /// closed or broke the protocol.
    fn frames(&mut self, rbuf: &mut BytesMut, now: Instant) -> Result<(), String> {
        let mut closed = None;
        loop {
            let frame = match ws::decode_frame(&mut self.codec, rbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(format!("stream frame: {e}")),
            };
            match frame {
                Frame::Text(payload) => match std::str::from_utf8(&payload) {
                    Ok(text) => self.text(text, now),
                    Err(_) => self.result.protocol_errors += 1,
                },
                Frame::Ping(payload) => {
                    ws::encode_frame(&mut self.bufs.out, OpCode::Pong, &payload, true);
                }
                Frame::Pong(_) => {}
                Frame::Close(_) => closed = Some("the bridge closed the stream".to_owned()),
                // Twilio's media stream is text only, and unfragmented.
                Frame::Binary(_) | Frame::Continuation(_) => self.result.protocol_errors += 1,
            }
        }
        closed.map_or(Ok(()), Err)
    }
}

async fn call(
    config: &LoadConfig,
    control: &Control,
    plan: &CallPlan,
    samples: &RefCell<ThreadResult>,
    result: &mut CallResult,
) -> Result<(), String> {
    let call_sid = random_sid("CA");
    let webhook_sent = Instant::now();
    result.webhook_sent_unix_us = unix_micros();
    let (path, parameters) =
        tokio::time::timeout(config.connect_timeout, webhook(config, &call_sid, &plan.to))
            .await
            .map_err(|_| "webhook: no answer in time".to_owned())??;
    let mut rbuf = BytesMut::with_capacity(8 * 1024);
    let mut stream = tokio::time::timeout(
        config.connect_timeout,
        open_stream(config, &path, &mut rbuf),
    )
    .await
    .map_err(|_| "stream: no upgrade in time".to_owned())??;
    let mut state = CallState {
        control,
        samples,
        result,
        stream_sid: random_sid("MZ"),
        seq: 1,
        codec: ws::Codec::new().client_mode(),
        ring: vec![
            Slot {
                index: u32::MAX,
                sent: webhook_sent,
                in_window: false,
                echoed: false,
            };
            RING
        ],
        highest_echo: None,
        webhook_sent,
        bufs: Buffers {
            b64: String::with_capacity(256),
            json: String::with_capacity(512),
            out: BytesMut::with_capacity(2048),
            decoded: Vec::new(),
            tags: Vec::new(),
            free_names: Vec::new(),
        },
        playback: Playback {
            plays_until: Instant::now(),
            marks: VecDeque::with_capacity(16),
        },
        scanner: TagScanner::new(),
    };
    twilio::write_connected(&mut state.bufs.json);
    state.push_json();
    let params: Vec<(&str, &str)> = parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    twilio::write_start(
        &mut state.bufs.json,
        &state.stream_sid,
        &call_sid,
        &config.account_sid,
        &params,
    );
    state.push_json();
    stream
        .write_all(&state.bufs.out)
        .await
        .map_err(|e| format!("stream write: {e}"))?;
    state.bufs.out.clear();
    state.result.connected = true;
    control.connected.fetch_add(1, Ordering::SeqCst);

    let (mut rd, mut wr) = stream.split();
    let mut ticker = tokio::time::interval(FRAME);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
    let mark_timer = tokio::time::sleep_until(far);
    tokio::pin!(mark_timer);
    let mut index: u32 = 0;
    let mut drain_until: Option<Instant> = None;
    let mut outcome = Ok(());
    loop {
        if let Some(until) = drain_until {
            let all_back = state.result.echoed + state.result.stale >= state.result.sent;
            if (all_back && state.playback.marks.is_empty()) || Instant::now() >= until {
                break;
            }
        }
        // Room to read into, reclaimed from consumed frames (no copy while there is room).
        rbuf.reserve(2048);
        let next_mark = state.playback.marks.front().map(|(due, _)| *due);
        if let Some(due) = next_mark {
            if mark_timer.deadline() != due.into() {
                mark_timer.as_mut().reset(due.into());
            }
        }
        tokio::select! {
            biased;
            read = rd.read_buf(&mut rbuf) => {
                let now = Instant::now();
                match read {
                    Ok(0) => { outcome = Err("the bridge closed the connection".to_owned()); break; }
                    Ok(_) => {
                        if let Err(e) = state.frames(&mut rbuf, now) { outcome = Err(e); break; }
                    }
                    Err(e) => { outcome = Err(format!("stream read: {e}")); break; }
                }
            }
            () = &mut mark_timer, if next_mark.is_some() => {
                state.ack_due_marks(Instant::now());
                mark_timer.as_mut().reset(far);
            }
            at = ticker.tick(), if drain_until.is_none() => {
                let now = Instant::now();
                if control.stop.load(Ordering::Relaxed) {
                    drain_until = Some(now + config.drain);
                } else {
                    if control.in_window(now) {
                        let late = now.saturating_duration_since(at.into_std()).as_micros();
                        samples.borrow_mut().lateness_us.push(u32::try_from(late).unwrap_or(u32::MAX));
                    }
                    state.push_media(index, now);
                    index = index.wrapping_add(1);
                }
            }
            () = tokio::time::sleep(Duration::from_millis(50)), if drain_until.is_some() => {}
        }
        if !state.bufs.out.is_empty() {
            if let Err(e) = wr.write_all(&state.bufs.out).await {
                outcome = Err(format!("stream write: {e}"));
                break;
            }
            state.bufs.out.clear();
        }
    }
    if outcome.is_ok() {
        // Twilio's goodbye: `stop`, then a close frame; wait briefly for the bridge's close.
        state.seq += 1;
        twilio::write_stop(
            &mut state.bufs.json,
            &state.stream_sid,
            state.seq,
            &config.account_sid,
            &call_sid,
        );
        state.push_json();
        ws::encode_frame(&mut state.bufs.out, OpCode::Close, &[0x03, 0xe8], true);
        let _ = wr.write_all(&state.bufs.out).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut sink = [0u8; 4096];
            while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    } else if let Err(e) = &outcome {
        state.result.error = Some(e.clone());
    }
    outcome
}
