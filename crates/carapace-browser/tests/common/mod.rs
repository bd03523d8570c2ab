//! Shared fixtures: a loopback web server with known pages, the Chromium gate, PNG decoding.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use carapace_browser::{BrowserService, BrowserSettings};

/// The gate: strict under CARAPACE_TEST_STRICT=1, skip elsewhere.
pub fn require_chromium() -> bool {
    carapace_testkit::require(
        "chromium",
        carapace_testkit::have_program("chromium"),
        "apt-get install -y chromium",
    )
}

/// A solid-colour 300×200 div at the top-left of a white page.
pub const BOX_PAGE: &str = r#"<!doctype html><html><head><style>
html,body{margin:0;padding:0;background:#ffffff}
#box{position:absolute;left:0;top:0;width:300px;height:200px;background:rgb(255,0,0)}
#green{position:absolute;left:400px;top:300px;width:120px;height:80px;background:rgb(0,128,0)}
</style></head><body><div id="box"></div><div id="green"></div></body></html>"#;

/// A page 3000px tall: blue band at the very bottom.
pub const TALL_PAGE: &str = r#"<!doctype html><html><head><style>
html,body{margin:0;padding:0;background:#ffffff}
#tall{height:3000px;position:relative}
#bottom{position:absolute;left:0;bottom:0;width:100%;height:100px;background:rgb(0,0,255)}
</style></head><body><div id="tall"><div id="bottom"></div></div></body></html>"#;

/// The loopback server; counts hits on `/hit.png`, the `/slow` requests in flight (and the
/// most at once), and `/hang` requests. `/slow` answers only while the test holds its gate
/// open, so concurrency tests depend on no timing.
pub struct Server {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub slow_now: Arc<AtomicUsize>,
    pub slow_max: Arc<AtomicUsize>,
    pub hangs: Arc<AtomicUsize>,
    gate: tokio::sync::watch::Sender<bool>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    pub fn slow_max(&self) -> usize {
        self.slow_max.load(Ordering::SeqCst)
    }
    pub fn reset_slow(&self) {
        self.slow_max.store(0, Ordering::SeqCst);
    }
    /// `/slow` requests wait (closed) or answer (open).
    pub fn set_gate(&self, open: bool) {
        self.gate.send_replace(open);
    }
    /// Waits (polling, at most two minutes) until `counter` reaches `n`.
    pub async fn wait_for(&self, counter: &AtomicUsize, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while counter.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never saw {n} requests"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn html(s: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], s).into_response()
}

/// A red 1×1 PNG.
pub fn red_png() -> Vec<u8> {
    carapace_testkit::png::png_rgba(1, 1, |_, _| [255, 0, 0, 255])
}

pub async fn serve() -> Server {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let slow_now = Arc::new(AtomicUsize::new(0));
    let slow_max = Arc::new(AtomicUsize::new(0));
    let hangs = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = tokio::sync::watch::channel(true);
    let (sn, sm) = (slow_now.clone(), slow_max.clone());
    let hg = hangs.clone();
    let app = Router::new()
        .route(
            // Answers once the gate is open; records how many are served at once.
            "/slow",
            get(move || {
                let (sn, sm, mut rx) = (sn.clone(), sm.clone(), gate_rx.clone());
                async move {
                    let now = sn.fetch_add(1, Ordering::SeqCst) + 1;
                    sm.fetch_max(now, Ordering::SeqCst);
                    let _ = rx.wait_for(|open| *open).await;
                    sn.fetch_sub(1, Ordering::SeqCst);
                    html(BOX_PAGE)
                }
            }),
        )
        .route("/box", get(|| async { html(BOX_PAGE) }))
        .route(
            // Any request here (a WebSocket handshake included) counts as a hit.
            "/ws",
            get({
                let h = hits.clone();
                move || {
                    let h = h.clone();
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        "no"
                    }
                }
            }),
        )
        .route("/tall", get(|| async { html(TALL_PAGE) }))
        .route(
            "/hit.png",
            get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    ([(header::CONTENT_TYPE, "image/png")], red_png()).into_response()
                }
            }),
        )
        .route(
            // Headers, then a body that never ends: the load event never fires.
            "/hang",
            get(move || {
                hg.fetch_add(1, Ordering::SeqCst);
                async {
                    let stream = futures::stream::unfold(0u32, |n| async move {
                        if n > 0 {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        Some((
                            Ok::<_, std::io::Error>(b"<html><body>loading".to_vec()),
                            n + 1,
                        ))
                    });
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/html")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
            }),
        )
        .route(
            "/download",
            get(|| async {
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"carapace-dl-test.bin\"",
                    )
                    .body(Body::from(vec![7u8; 1024]))
                    .unwrap()
            }),
        )
        .route(
            "/redirect-box",
            get(|| async {
                Response::builder()
                    .status(302)
                    .header(header::LOCATION, "/box")
                    .body(Body::empty())
                    .unwrap()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        addr,
        hits,
        slow_now,
        slow_max,
        hangs,
        gate,
    }
}

/// A service that may load loopback pages (the test server), with a short timeout.
pub fn service(timeout_secs: u64) -> BrowserService {
    BrowserService::new(BrowserSettings {
        allow_private_network: true,
        timeout: Duration::from_secs(timeout_secs),
        ..BrowserSettings::default()
    })
}

/// Decoded RGBA pixels.
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl Image {
    pub fn decode(bytes: &[u8]) -> Image {
        let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
        dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        let rgba = match info.color_type {
            png::ColorType::Rgba => buf,
            png::ColorType::Rgb => buf
                .chunks(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
            other => panic!("unexpected colour type {other:?}"),
        };
        Image {
            width: info.width,
            height: info.height,
            rgba,
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 4) as usize;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2]]
    }
}
