//! The benchmark's Realtime stand-in: a lean echo server speaking the OpenAI Realtime GA
//! wire format, run as its own process (`callvisor-dev bench echo-server`) so that its CPU is
//! measured apart from the bridge's.
//!
//! Why not the test stand-in ([`callvisor_standins::RealtimeServer`] in echo mode): that one
//! validates every event with a full parse, keeps each appended payload for order checks
//! and takes a mutex per frame. Right for tests, but at 300 calls it would compete with the
//! bridge for the same two cores. This one answers `session.update` with
//! `session.updated`, `response.create` with an empty response, and echoes each
//! `input_audio_buffer.append` as one `response.output_audio.delta` carrying the same
//! base64 untouched (what the bench's frame tags need), writing everything a read produced
//! in one `write`. Any other event is ignored.
//!
//! It also records, per session, when the first caller audio arrived (wall clock, µs) and
//! the frame tag it carried: that is the upstream end of the call set-up time. `GET /stats`
//! on the same port returns those as JSON.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use callvisor_wire::protocol::realtime::{self as rt, ClientEvent};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use bytes::{Buf as _, BytesMut};

use super::ws::{self, Frame, OpCode};
use callvisor_standins::audio::read_tag_base64;

/// The exact prefix callvisor's (and most bridges') append starts with: the fast path.
const APPEND_PREFIX: &str = "{\"type\":\"input_audio_buffer.append\",\"audio\":\"";

/// What `GET /stats` answers.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct EchoStats {
    /// WebSocket sessions accepted.
    pub sessions: u64,
    /// Appends echoed.
    pub appends: u64,
    /// Per session with audio: (frame tag's call tag, unix µs of the first append).
    pub first_audio: Vec<(u32, u64)>,
}

#[derive(Default)]
struct Shared {
    sessions: AtomicU64,
    appends: AtomicU64,
    first_audio: Mutex<Vec<(u32, u64)>>,
}

/// Microseconds since the Unix epoch (comparable across processes on one machine).
#[must_use]
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Serves on `addr` with `threads` worker threads until the process is killed.
///
/// # Errors
/// The port could not be bound, or a runtime could not be built.
pub fn serve(addr: SocketAddr, threads: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let shared = Arc::new(Shared::default());
    let mut workers = Vec::new();
    for _ in 0..threads.max(1) {
        let (tx, mut rx) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let shared = Arc::clone(&shared);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                while let Some(stream) = rx.recv().await {
                    let shared = Arc::clone(&shared);
                    tokio::task::spawn_local(async move {
                        if stream.set_nonblocking(true).is_err() {
                            return;
                        }
                        if let Ok(stream) = TcpStream::from_std(stream) {
                            let _ = connection(stream, &shared).await;
                        }
                    });
                }
            });
        });
        workers.push(tx);
    }
    println!("ECHO_LISTENING addr={}", listener.local_addr()?);
    let mut next = 0usize;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        if let Some(worker) = workers.get(next % workers.len()) {
            let _ = worker.send(stream);
        }
        next = next.wrapping_add(1);
    }
    Ok(())
}

async fn connection(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let head_len = loop {
        if stream.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
        if let Some(end) = ws::head_end(&rbuf) {
            break end;
        }
        if rbuf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(rbuf.get(..head_len).unwrap_or_default()).into_owned();
    rbuf.advance(head_len);
    let path = head.split(' ').nth(1).unwrap_or("");
    if path.starts_with("/stats") {
        let stats = EchoStats {
            sessions: shared.sessions.load(Ordering::Relaxed),
            appends: shared.appends.load(Ordering::Relaxed),
            first_audio: shared
                .first_audio
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        };
        let body = serde_json::to_string(&stats).unwrap_or_default();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return stream.write_all(response.as_bytes()).await;
    }
    let bearer = ws::header(&head, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| !k.trim().is_empty());
    let key = ws::header(&head, "sec-websocket-key");
    let (true, Some(key), true) = (bearer, key, path.starts_with("/v1/realtime")) else {
        return stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
    };
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    wbuf.extend_from_slice(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            ws::accept_key(key)
        )
        .as_bytes(),
    );
    let session = shared.sessions.fetch_add(1, Ordering::Relaxed);
    let session_id = format!("sess_bench{session}");
    let mut json = String::with_capacity(1024);
    rt::write_session_created(&mut json, &session_id, "gpt-realtime");
    ws::encode_frame(&mut wbuf, OpCode::Text, json.as_bytes(), false);
    stream.write_all(&wbuf).await?;
    wbuf.clear();
    let mut codec = ws::Codec::new();
    let mut seen_audio = false;
    let mut responses = 0u64;
    loop {
        // Room to read into, reclaimed from consumed frames (no copy while there is room).
        rbuf.reserve(4096);
        if stream.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
        loop {
            let frame = match ws::decode_frame(&mut codec, &mut rbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                // A broken stream cannot be resynchronised: hang up.
                Err(_) => return Ok(()),
            };
            match frame {
                Frame::Text(payload) => {
                    let text = std::str::from_utf8(&payload).unwrap_or("");
                    json.clear();
                    let audio = text
                        .strip_prefix(APPEND_PREFIX)
                        .and_then(|rest| rest.strip_suffix("\"}"))
                        .filter(|audio| !audio.contains('"'));
                    let audio = match audio {
                        Some(audio) => Some(audio),
                        None => match rt::parse_client_event(text) {
                            Ok(ClientEvent::InputAudioAppend { audio, .. }) => Some(audio),
                            Ok(ClientEvent::SessionUpdate(_)) => {
                                rt::write_session_updated(&mut json, &session_id, "gpt-realtime");
                                None
                            }
                            Ok(ClientEvent::ResponseCreate { .. }) => {
                                responses += 1;
                                let id = format!("resp_bench{responses}");
                                rt::write_response_created(&mut json, &id);
                                ws::encode_frame(&mut wbuf, OpCode::Text, json.as_bytes(), false);
                                json.clear();
                                rt::write_response_done(&mut json, &id, "completed");
                                None
                            }
                            _ => None,
                        },
                    };
                    if let Some(audio) = audio {
                        shared.appends.fetch_add(1, Ordering::Relaxed);
                        if !seen_audio {
                            seen_audio = true;
                            let at = unix_micros();
                            if let Some(tag) = read_tag_base64(audio) {
                                if let Ok(mut first) = shared.first_audio.lock() {
                                    first.push((tag.call_tag, at));
                                }
                            }
                        }
                        rt::write_audio_delta(&mut json, "resp_echo", "item_echo", audio);
                    }
                    if !json.is_empty() {
                        ws::encode_frame(&mut wbuf, OpCode::Text, json.as_bytes(), false);
                    }
                }
                Frame::Ping(payload) => ws::encode_frame(&mut wbuf, OpCode::Pong, &payload, false),
                Frame::Close(_) => {
                    ws::encode_frame(&mut wbuf, OpCode::Close, &[0x03, 0xe8], false);
                    stream.write_all(&wbuf).await?;
                    return Ok(());
                }
                _ => {}
            }
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
    }
}

/// Reads the echo server's stats over plain HTTP.
///
/// # Errors
/// The server did not answer or answered something else.
pub async fn fetch_stats(addr: SocketAddr) -> Result<EchoStats, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let end = ws::head_end(&response).ok_or("no HTTP head")?;
    serde_json::from_slice(response.get(end..).unwrap_or_default()).map_err(|e| e.to_string())
}
