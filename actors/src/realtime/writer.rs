//! The Realtime socket's writer, with its backlog counted.
//!
//! actix's `SinkWrite` queues every item it is given in an unbounded
//! `VecDeque` and hands them to the socket as fast as the socket takes them;
//! it says nothing of how much waits. A server that stops reading (a stalled
//! TCP connection, an overloaded peer) would let that queue grow by a frame
//! every 20 ms for as long as the call lasts. [`CountingSink`] sits between
//! `SinkWrite` and the socket: the actor adds a frame's length to the
//! [`Backlog`] when it queues it, the sink subtracts it when the frame leaves
//! the queue for the socket, so the actor knows at any time how many bytes
//! wait and can refuse audio past its bound. One shared counter per
//! connection; nothing is allocated per frame.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use awc::ws::Message;
use futures_util::Sink;

/// Bytes queued and not yet taken by the socket (shared by actor and sink).
#[derive(Debug, Clone, Default)]
pub struct Backlog(Rc<Cell<usize>>);

impl Backlog {
    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.0.get()
    }

    /// `message` was queued.
    pub fn queued(&self, message: &Message) {
        self.0
            .set(self.0.get().saturating_add(message_len(message)));
    }

    /// `message` left the queue (taken by the socket, or refused).
    pub fn left(&self, message: &Message) {
        self.0
            .set(self.0.get().saturating_sub(message_len(message)));
    }
}

/// The bytes a message carries (its payload; headers are a few bytes).
pub fn message_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        _ => 0,
    }
}

/// A sink that tells its [`Backlog`] when a message leaves the queue.
pub struct CountingSink<S> {
    inner: S,
    backlog: Backlog,
}

impl<S> CountingSink<S> {
    /// Wraps `inner`, counting into `backlog`.
    pub fn new(inner: S, backlog: Backlog) -> Self {
        Self { inner, backlog }
    }
}

impl<S: Sink<Message> + Unpin> Sink<Message> for CountingSink<S> {
    type Error = S::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let this = self.get_mut();
        this.backlog.left(&item);
        Pin::new(&mut this.inner).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;

    #[actix_rt::test]
    async fn the_backlog_is_what_was_queued_and_not_yet_sent() {
        // Arrange: a sink that takes everything.
        let backlog = Backlog::default();
        let mut sink = CountingSink::new(futures_util::sink::drain(), backlog.clone());
        let message = Message::Text("0123456789".into());
        backlog.queued(&message);
        backlog.queued(&message);
        assert_eq!(backlog.bytes(), 20);
        // Act: one leaves for the socket.
        sink.send(message).await.unwrap();
        // Assert
        assert_eq!(backlog.bytes(), 10);
    }
}
