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
    /// Account id sent in `start`.
    pub account_sid: String,
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
        Self::try_connect(app_address)
            .await
            .expect("media socket opens")
    }

    /// Connects, or answers the HTTP status the upgrade was refused with
    /// (`None`: no answer at all).
    pub async fn try_connect(app_address: &str) -> Result<Self, Option<u16>> {
        let url = format!(
            "{}/twilio/media",
            app_address.replacen("http://", "ws://", 1)
        );
        match awc::Client::new()
            .ws(url)
            .max_frame_size(8 * 1024 * 1024)
            .connect()
            .await
        {
            Ok((_response, framed)) => Ok(Self {
                framed,
                stream_sid: "MZ00000000000000000000000000000001".to_owned(),
                account_sid: "AC00000000000000000000000000000000".to_owned(),
            }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                Err(Some(status.as_u16()))
            }
            Err(_) => Err(None),
        }
    }

    /// Sends one binary frame (Twilio never does).
    pub async fn send_binary(&mut self, bytes: &'static [u8]) {
        let _ = self
            .framed
            .send(Message::Binary(bytes::Bytes::from_static(bytes)))
            .await;
    }

    /// Closes the socket from this side (a close frame, as a dropped
    /// network path would look to Twilio's new socket).
    pub async fn close(mut self) {
        let _ = self.framed.send(Message::Close(None)).await;
        let _ = self.framed.close().await;
    }

    /// Sends one media frame whose payload is `payload`.
    pub async fn media_payload(&mut self, payload: &str) {
        let mut buf = String::new();
        let sid = self.stream_sid.clone();
        twilio::write_inbound_media(&mut buf, &sid, 3, 1, 0, payload);
        self.send(buf).await;
    }

    /// Reads until a `media` frame (agent audio) arrives; `false` if the
    /// socket ended or `wait` passed first.
    pub async fn hears_media(&mut self, wait: Duration) -> bool {
        let deadline = actix_web::rt::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return false,
                frame = self.framed.next() => match frame {
                    Some(Ok(Frame::Text(text)))
                        if std::str::from_utf8(&text).is_ok_and(|t| t.contains(r#""event":"media""#)) =>
                    {
                        return true
                    }
                    Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => return false,
                    Some(Ok(_)) => continue,
                },
            }
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
        let account_sid = self.account_sid.clone();
        twilio::write_start(&mut buf, &sid, call_sid, &account_sid, &params);
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
