//! A bare media-stream client: speaks Twilio's frames by hand, so tests can
//! send what Twilio never would (forged tokens, junk) and see how the socket ends.

use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use bytestring::ByteString;
use callvisor_wire::protocol::twilio;
use futures_util::{SinkExt, StreamExt};

/// An open media socket.
pub struct RawStream {
    framed: Framed<BoxedSocket, Codec>,
    /// Stream id used in every frame.
    pub stream_sid: String,
}

/// How the server ended (or did not end) the socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A close frame, with its code.
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Dropped,
    /// Still open when we stopped waiting.
    StillOpen,
}

impl RawStream {
    /// Connects to `app_address` (`http://127.0.0.1:P`) `/twilio/media`.
    pub async fn connect(app_address: &str) -> Self {
        let url = format!(
            "{}/twilio/media",
            app_address.replacen("http://", "ws://", 1)
        );
        let (_response, framed) = awc::Client::new()
            .ws(url)
            .max_frame_size(8 * 1024 * 1024)
            .connect()
            .await
            .expect("media socket opens");
        Self {
            framed,
            stream_sid: "MZ00000000000000000000000000000001".to_owned(),
        }
    }

    /// Sends one text frame.
    pub async fn send(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        let _ = self
            .framed
            .send(Message::Text(ByteString::from(text)))
            .await;
    }

    /// Sends `connected` and `start` with custom parameters.
    pub async fn start<K: AsRef<str>, V: AsRef<str>>(&mut self, call_sid: &str, params: &[(K, V)]) {
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        let mut buf = String::new();
        twilio::write_connected(&mut buf);
        self.send(buf.clone()).await;
        buf.clear();
        let sid = self.stream_sid.clone();
        twilio::write_start(
            &mut buf,
            &sid,
            call_sid,
            "AC00000000000000000000000000000000",
            &params,
        );
        self.send(buf).await;
    }

    /// Sends `n` media frames of silence.
    pub async fn media(&mut self, n: u32) {
        let silence = "/".repeat(212) + "/w==";
        for i in 0..n {
            let mut buf = String::new();
            let sid = self.stream_sid.clone();
            twilio::write_inbound_media(
                &mut buf,
                &sid,
                u64::from(i) + 3,
                u64::from(i) + 1,
                u64::from(i) * 20,
                &silence,
            );
            self.send(buf).await;
        }
    }

    /// Reads until the server closes or `wait` passes.
    pub async fn ending(&mut self, wait: Duration) -> Ending {
        let deadline = actix_web::rt::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return Ending::StillOpen,
                frame = self.framed.next() => match frame {
                    Some(Ok(Frame::Close(reason))) => return Ending::Closed(reason.map(|r| u16::from(r.code))),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Ending::Dropped,
                },
            }
        }
    }
}
