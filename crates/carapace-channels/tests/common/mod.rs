//! Loopback fake-platform harness shared by the adapter tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carapace_channels::{Attachment, RetryPolicy, Timeouts};
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// One multipart part as the server saw it.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl Part {
    pub fn text(&self) -> String {
        String::from_utf8(self.bytes.clone()).unwrap()
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub content_type: String,
    /// Raw body for non-multipart requests.
    pub body: Vec<u8>,
    pub parts: Vec<Part>,
    pub json: Option<Value>,
    /// The call number (0-based) across the whole server.
    pub index: usize,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }
    pub fn is_multipart(&self) -> bool {
        self.content_type
            .starts_with("multipart/form-data; boundary=")
    }
    pub fn form(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k), decode(v))
            })
            .collect()
    }
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub type Handler = Arc<dyn Fn(&Received) -> Response + Send + Sync>;

/// A fake platform on 127.0.0.1: records every request, answers with `handler`.
pub struct Fake {
    pub base: String,
    pub log: Arc<Mutex<Vec<Received>>>,
}

impl Fake {
    pub async fn start(handler: impl Fn(&Received) -> Response + Send + Sync + 'static) -> Fake {
        Fake::start_holding(|_| false, handler).await
    }

    /// Like [`Fake::start`], but a request for which `hold` is true is recorded and then never
    /// answered: the fake keeps the connection open until the client gives up and closes it.
    pub async fn start_holding(
        hold: impl Fn(&Received) -> bool + Send + Sync + 'static,
        handler: impl Fn(&Received) -> Response + Send + Sync + 'static,
    ) -> Fake {
        let handler: Handler = Arc::new(handler);
        let hold = Arc::new(hold);
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let counter = Arc::new(AtomicUsize::new(0));
        let (h, l) = (handler.clone(), log.clone());
        let app = Router::new().fallback(move |req: Request| {
            let (h, l, counter, hold) = (h.clone(), l.clone(), counter.clone(), hold.clone());
            async move {
                let index = counter.fetch_add(1, Ordering::SeqCst);
                let rec = record(req, index).await;
                if hold(&rec) {
                    l.lock().unwrap().push(rec);
                    return std::future::pending::<Response>().await;
                }
                let resp = h(&rec);
                l.lock().unwrap().push(rec);
                resp
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake {
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

async fn record(req: Request, index: usize) -> Received {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut parts = Vec::new();
    let mut body = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &()).await.unwrap();
        while let Some(f) = mp.next_field().await.unwrap() {
            let name = f.name().unwrap_or("").to_string();
            let filename = f.file_name().map(str::to_string);
            let ct = f.content_type().map(str::to_string);
            let bytes = f.bytes().await.unwrap().to_vec();
            parts.push(Part {
                name,
                filename,
                content_type: ct,
                bytes,
            });
        }
    } else {
        body = to_bytes(req.into_body(), 1 << 30).await.unwrap().to_vec();
    }
    let json = if content_type.starts_with("application/json") {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    Received {
        method,
        path,
        query,
        headers,
        content_type,
        body,
        parts,
        json,
        index,
    }
}

/// A JSON response.
pub fn json(status: u16, v: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A JSON response with a `Retry-After` header.
pub fn json_retry_after(status: u16, retry_after: &str, v: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::RETRY_AFTER, retry_after.to_string()),
        ],
        v.to_string(),
    )
        .into_response()
}

/// A plain response.
pub fn plain(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A file with `bytes`, opened, with the fd's offset moved away from 0 on purpose (the adapters
/// must pread from offset 0, not read from wherever the offset is).
pub fn attachment(bytes: &[u8], filename: &str, mime: &str) -> Attachment {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f.seek(SeekFrom::Start(bytes.len() as u64 / 2)).unwrap();
    Attachment {
        file: f,
        size: bytes.len() as u64,
        filename: filename.to_string(),
        mime: mime.to_string(),
        width: None,
        height: None,
    }
}

/// Deterministic test content of `n` bytes.
pub fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Small waits for tests; production defaults are untouched.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        budget: Duration::from_secs(5),
        max_attempts: 4,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    }
}

/// Generous per-request time so a loaded CI machine never times out a healthy request.
pub fn fast_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        request: Duration::from_secs(10),
        min_upload_bytes_per_sec: 1024 * 1024 * 1024,
    }
}

/// For the "no answer" tests: the fake holds the request (see [`Fake::start_holding`]).
pub fn short_timeouts() -> Timeouts {
    Timeouts {
        request: Duration::from_millis(1000),
        ..fast_timeouts()
    }
}

/// A raw TCP server on 127.0.0.1 that reads each request (until the client goes quiet) and
/// closes the connection without answering. Counts connections.
pub async fn dropping_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                        Ok(Ok(_)) => {}
                    }
                }
                drop(sock);
            });
        }
    });
    (format!("http://{addr}"), count)
}

/// A loopback address where nothing listens.
pub async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
