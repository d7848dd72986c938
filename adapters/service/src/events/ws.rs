//! WebSocket gateway delivery: one lazily opened connection, events as text frames.

use super::gateway::GatewayUrl;
use super::sink::{error_chain, EventSink, SendError};
use async_trait::async_trait;
use core::fmt;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Connection = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most frames read from the gateway while checking that the connection is still open; the
/// gateway has nothing to say to a publisher, so this only bounds a misbehaving peer.
const MAX_DRAINED_FRAMES: usize = 1024;

/// Sends events to a GovernsAI-style gateway,
/// `ws://host:port/ws?key=<apiKey>&org=<orgId>&channels=org:<org>:decisions`. The
/// connection is opened on the first send, reused, and reopened after any failure; the
/// key travels only in the connection URL and is masked in `Debug`/`Display`.
///
/// The gateway does not acknowledge frames, so delivery is "written to an open
/// connection": a frame written in the instant the gateway closes can be lost. The sink
/// reads pending frames before each send so an announced close is noticed first.
pub struct WebSocketSink {
    gateway: GatewayUrl,
    timeout: Duration,
    connection: Mutex<Option<Connection>>,
}

impl WebSocketSink {
    /// A sink for `url` (`ws://`; `wss://` needs TLS support compiled into
    /// tokio-tungstenite); `timeout` bounds connecting and each send.
    pub fn new(url: &str, timeout: Duration) -> WebSocketSink {
        WebSocketSink { gateway: GatewayUrl::parse(url), timeout, connection: Mutex::new(None) }
    }

    /// The parsed URL: key, org and channels.
    pub fn gateway(&self) -> &GatewayUrl {
        &self.gateway
    }

    /// A tungstenite error as a [`SendError`], with the key scrubbed in case a message ever
    /// echoes the URL.
    fn map_error(&self, error: &tokio_tungstenite::tungstenite::Error) -> SendError {
        let mut message = error_chain(error);
        if let Some(key) = self.gateway.key() {
            message = message.replace(key, "***");
        }
        SendError::Connect(message)
    }
}

impl fmt::Debug for WebSocketSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketSink")
            .field("gateway", &self.gateway)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for WebSocketSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.gateway, f)
    }
}

/// Reads whatever the peer already sent without waiting; false when it closed or failed.
fn still_open(connection: &mut Connection) -> bool {
    for _ in 0..MAX_DRAINED_FRAMES {
        match connection.next().now_or_never() {
            None => return true,
            Some(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return false,
            // Pings are answered by tungstenite itself; other frames carry nothing for us.
            Some(Some(Ok(_))) => {}
        }
    }
    true
}

#[async_trait]
impl EventSink for WebSocketSink {
    async fn send(&self, event_json: &str) -> Result<(), SendError> {
        // One connection, one writer at a time: frames from concurrent deliveries must not
        // interleave, and a failure must reset the connection for everyone.
        let mut slot = self.connection.lock().await;
        if let Some(open) = slot.as_mut() {
            if !still_open(open) {
                *slot = None;
            }
        }
        let connection = match slot.as_mut() {
            Some(open) => open,
            None => {
                let connect = tokio_tungstenite::connect_async(self.gateway.connect_url().to_owned());
                let (opened, _response) = tokio::time::timeout(self.timeout, connect)
                    .await
                    .map_err(|_| SendError::Timeout)?
                    .map_err(|e| self.map_error(&e))?;
                slot.insert(opened)
            }
        };
        let sent = tokio::time::timeout(self.timeout, connection.send(Message::text(event_json.to_owned()))).await;
        let result = match sent {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => Err(self.map_error(&e)),
            Err(_) => Err(SendError::Timeout),
        };
        // The connection is in an unknown state after a failed or timed-out write.
        *slot = None;
        result
    }
}
