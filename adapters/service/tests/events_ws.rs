//! WebSocket gateway delivery against a real tokio-tungstenite server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
// The handshake callback signature is fixed by tungstenite.
#![allow(clippy::result_large_err)]

mod events_support;

use events_support::event;
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use warden_service::events::{
    DeadLetterQueue, DeliveryStats, Dispatcher, DispatcherConfig, EventSink, EventsConfig, RetryPolicy, SendError,
    WebSocketSink,
};

const KEY: &str = "gai-key-0123456789";

/// What the gateway saw: one entry per connection (its request URI), and every text frame.
#[derive(Default)]
struct Seen {
    uris: Mutex<Vec<String>>,
}

/// A gateway that accepts connections, forwards text frames to the returned channel, and,
/// when `close_after_first` is set, closes each connection after its first frame.
async fn gateway(close_after_first: bool) -> (String, Arc<Seen>, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let (frames, received) = mpsc::unbounded_channel();
    let state = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = Arc::clone(&state);
            let frames = frames.clone();
            tokio::spawn(async move {
                let record_uri = |request: &Request, response: Response| {
                    state.uris.lock().unwrap().push(request.uri().to_string());
                    Ok(response)
                };
                let mut socket = tokio_tungstenite::accept_hdr_async(stream, record_uri).await.unwrap();
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        frames.send(text.to_string()).unwrap();
                        if close_after_first {
                            socket.close(None).await.unwrap();
                        }
                    }
                }
            });
        }
    });
    let url = format!("ws://{address}/ws?key={KEY}&org=acme&channels=org:acme:decisions,org:acme:alerts");
    (url, seen, received)
}

async fn next_frame(received: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), received.recv()).await.expect("no frame within 5 s").unwrap()
}

#[tokio::test]
async fn url_parts_are_parsed_and_the_key_is_never_shown() {
    let (url, _, _) = gateway(false).await;
    let sink = WebSocketSink::new(&url, Duration::from_secs(2));
    let gateway = sink.gateway();
    assert_eq!(gateway.key(), Some(KEY));
    assert_eq!(gateway.org(), Some("acme"));
    assert_eq!(gateway.channels(), ["org:acme:decisions", "org:acme:alerts"]);
    assert_eq!(gateway.decisions_channel(), Some("org:acme:decisions"));

    for shown in [format!("{sink:?}"), format!("{sink}"), format!("{gateway:?}")] {
        assert!(!shown.contains(KEY), "key leaked: {shown}");
        assert!(shown.contains("org=acme"), "{shown}");
    }
}

#[tokio::test]
async fn gateway_receives_events_as_text_frames_on_one_connection() {
    let (url, seen, mut received) = gateway(false).await;
    let sink = WebSocketSink::new(&url, Duration::from_secs(2));

    let first = event("req-ws-1");
    let second = event("req-ws-2");
    sink.send(&first).await.unwrap();
    sink.send(&second).await.unwrap();

    assert_eq!(next_frame(&mut received).await, first);
    assert_eq!(next_frame(&mut received).await, second);
    let uris = seen.uris.lock().unwrap().clone();
    assert_eq!(uris.len(), 1, "the connection is reused");
    // The key authenticates the connection through the URL, as the gateway expects.
    assert!(uris[0].contains(&format!("key={KEY}")), "{uris:?}");
    assert!(uris[0].contains("channels=org:acme:decisions"), "{uris:?}");
}

#[tokio::test]
async fn sink_reconnects_after_the_gateway_closes() {
    let (url, seen, mut received) = gateway(true).await;
    let sink = WebSocketSink::new(&url, Duration::from_secs(2));

    let first = event("req-close-1");
    sink.send(&first).await.unwrap();
    assert_eq!(next_frame(&mut received).await, first);
    // Let the close frame reach the client before the next send.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let second = event("req-close-2");
    sink.send(&second).await.unwrap();
    assert_eq!(next_frame(&mut received).await, second);
    assert_eq!(seen.uris.lock().unwrap().len(), 2, "a new connection was opened");
}

#[tokio::test]
async fn dispatcher_delivers_through_the_gateway_configured_by_url() {
    let (url, _, mut received) = gateway(false).await;
    let dir = tempfile::tempdir().unwrap();
    let config =
        EventsConfig { webhook_url: Some(url), dlq_path: dir.path().join("dlq.jsonl"), ..EventsConfig::default() };
    // The gateway URL's org and decisions channel feed the event options.
    let options = config.event_options();
    assert_eq!(options.org_id.as_deref(), Some("acme"));
    assert_eq!(options.channel.as_deref(), Some("org:acme:decisions"));

    let dispatcher = config.start(DeliveryStats::default()).unwrap().unwrap();
    let body = event("req-dispatch-ws");
    dispatcher.try_enqueue(body.clone()).await.unwrap();
    assert_eq!(next_frame(&mut received).await, body);
    dispatcher.shutdown(Duration::from_secs(5)).await;
    assert_eq!(dispatcher.snapshot().delivered, 1);
    assert!(!config.dlq_path.exists());
}

#[tokio::test]
async fn unreachable_gateway_fails_without_leaking_the_key_and_dead_letters() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/ws?key={KEY}&org=acme");
    let sink = Arc::new(WebSocketSink::new(&url, Duration::from_secs(2)));
    let error = sink.send(&event("req-down")).await.unwrap_err();
    assert!(matches!(error, SendError::Connect(_)), "{error:?}");
    assert!(!error.to_string().contains(KEY), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let dlq_path = dir.path().join("dlq.jsonl");
    let dlq = Arc::new(DeadLetterQueue::new(&dlq_path, DeliveryStats::default()).unwrap());
    let config = DispatcherConfig {
        retry: RetryPolicy { max_retries: 1, backoff_base: Duration::from_millis(5), ..RetryPolicy::default() },
        ..DispatcherConfig::default()
    };
    let dispatcher = Dispatcher::start(sink, dlq, config).unwrap();
    dispatcher.try_enqueue(event("req-down")).await.unwrap();
    dispatcher.shutdown(Duration::from_secs(10)).await;
    let dlq_text = std::fs::read_to_string(&dlq_path).unwrap();
    assert_eq!(dlq_text.lines().count(), 1);
    assert!(!dlq_text.contains(KEY), "{dlq_text}");
    assert!(dlq_text.contains("\"attempts\":2"), "{dlq_text}");
}

#[tokio::test]
async fn server_side_frames_do_not_break_the_connection() {
    // A gateway that greets every connection with a text frame before reading.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (frames, mut received) = mpsc::unbounded_channel();
    let connections = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            *counter.lock().unwrap() += 1;
            let frames = frames.clone();
            tokio::spawn(async move {
                let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
                socket.send(Message::text("{\"type\":\"HELLO\"}")).await.unwrap();
                while let Some(Ok(Message::Text(text))) = socket.next().await {
                    frames.send(text.to_string()).unwrap();
                }
            });
        }
    });
    let sink = WebSocketSink::new(&format!("ws://{address}/ws?key={KEY}"), Duration::from_secs(2));
    sink.send(&event("a")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    sink.send(&event("b")).await.unwrap();
    assert_eq!(next_frame(&mut received).await, event("a"));
    assert_eq!(next_frame(&mut received).await, event("b"));
    assert_eq!(*connections.lock().unwrap(), 1);
}
