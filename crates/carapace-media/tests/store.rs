//! The media store under `umask 077`: modes, naming, sniffing, caps, import checks, prune,
//! and downloads (redirects, private-address refusal) against a loopback server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_fs::Root;
use carapace_media::{MediaSettings, MediaStore};
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

fn settings(dir: PathBuf) -> MediaSettings {
    MediaSettings {
        dir,
        file_mode: 0o644,
        max_bytes: 1024 * 1024,
        ttl: Duration::from_secs(3600),
        allow_private_network: false,
    }
}

fn is_uuid_name(name: &str, stem: Option<&str>, ext: &str) -> bool {
    let rest = match stem {
        Some(s) => match name.strip_prefix(&format!("{s}---")) {
            Some(r) => r,
            None => return false,
        },
        None => name,
    };
    let Some(id) = rest.strip_suffix(&format!(".{ext}")) else {
        return false;
    };
    uuid::Uuid::parse_str(id).is_ok()
}

#[test]
fn saved_files_are_0644_and_dirs_0755_under_umask_077() {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("state/media");
    let store = MediaStore::open(settings(dir.clone())).unwrap();
    assert_eq!(mode_of(&dir), 0o755);
    assert_eq!(mode_of(&t.path().join("state")), 0o755);
    let png = png(4, 3, 1);
    let s = store.save_bytes(&png, Some("My Shot.png"), None).unwrap();
    assert_eq!(s.mime, "image/png");
    assert_eq!(s.bytes, png.len() as u64);
    assert_eq!(s.mode, "0644");
    assert!(is_uuid_name(&s.name, Some("My_Shot"), "png"), "{}", s.name);
    assert_eq!(mode_of(&s.path), 0o644);
    assert_eq!(std::fs::read(&s.path).unwrap(), png);

    let s = store.save_bytes(b"hello", None, None).unwrap();
    assert!(is_uuid_name(&s.name, None, "bin"), "{}", s.name);
    assert_eq!(mode_of(&s.path), 0o644);
}

#[test]
fn file_mode_is_configurable() {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let mut st = settings(t.path().join("m"));
    st.file_mode = 0o640;
    let store = MediaStore::open(st).unwrap();
    let s = store.save_bytes(b"x", Some("a.txt"), None).unwrap();
    assert_eq!(mode_of(&s.path), 0o640);
}

#[test]
fn bytes_win_over_declared_type_and_extension() {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let store = MediaStore::open(settings(t.path().join("m"))).unwrap();
    let s = store
        .save_bytes(&png(2, 2, 3), Some("report.txt"), Some("text/plain"))
        .unwrap();
    assert_eq!(s.mime, "image/png");
    assert!(s.name.starts_with("report---") && s.name.ends_with(".png"));
    let s = store
        .save_bytes(b"a,b", Some("x"), Some("text/csv"))
        .unwrap();
    assert_eq!(
        (s.mime.as_str(), s.name.ends_with(".csv")),
        ("text/csv", true)
    );
    let s = store.save_bytes(b"# t", Some("notes.md"), None).unwrap();
    assert_eq!(s.mime, "text/markdown");
}

#[test]
fn over_the_cap_is_too_large_and_leaves_nothing() {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let mut st = settings(t.path().join("m"));
    st.max_bytes = 100;
    let store = MediaStore::open(st).unwrap();
    let e = store
        .save_bytes(&[7u8; 101], Some("big.bin"), None)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    assert_eq!(e.details()["limit"], 100);
    let e = store
        .save_stream(&mut std::io::repeat(1).take_bytes(10_000), None, None)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    assert!(store.list().unwrap().is_empty());
    let left: Vec<_> = std::fs::read_dir(t.path().join("m")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    store.save_bytes(&[7u8; 100], None, None).unwrap();
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}

#[test]
fn import_gives_the_store_mode_and_refuses_links_and_fifos() {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let store = MediaStore::open(settings(t.path().join("m"))).unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("shot.png"), png(5, 5, 2)).unwrap();
    chmod(&src.join("shot.png"), 0o600);
    let s = store.import_host_path(&src.join("shot.png")).unwrap();
    assert_eq!(mode_of(&s.path), 0o644);
    assert_eq!(std::fs::read(&s.path).unwrap(), png(5, 5, 2));
    assert!(s.name.starts_with("shot---"));

    std::os::unix::fs::symlink("/etc/hostname", src.join("link.png")).unwrap();
    let e = store.import_host_path(&src.join("link.png")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SymlinkRefused);

    mkfifo(&src.join("fifo.png"));
    let start = std::time::Instant::now();
    let e = store.import_host_path(&src.join("fifo.png")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotRegularFile);
    assert!(start.elapsed() < Duration::from_secs(2));

    let root = Root::open(&src).unwrap();
    let e = store.import_file(&root, Path::new("../m")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::PathOutsideRoot);
}

#[test]
fn list_and_prune() {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let store = MediaStore::open(settings(t.path().join("m"))).unwrap();
    let a = store.save_bytes(b"a", Some("a.txt"), None).unwrap();
    let b = store.save_bytes(b"b", Some("b.txt"), None).unwrap();
    let names: Vec<_> = store.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names.len(), 2);
    assert!(
        store.prune(None).unwrap().is_empty(),
        "nothing is older than the TTL"
    );
    let old = std::fs::File::options().write(true).open(&a.path).unwrap();
    old.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let removed = store.prune(None).unwrap();
    assert_eq!(removed, vec![a.name.clone()]);
    assert!(!a.path.exists() && b.path.exists());
    assert_eq!(store.prune(Some(Duration::ZERO)).unwrap(), vec![b.name]);
}

// ---- downloads against a loopback server ----

use axum::Router;
use axum::extract::Path as AxPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

async fn server() -> String {
    let app = Router::new()
        .route(
            "/img.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], png(3, 2, 9)) }),
        )
        .route(
            "/hop/{n}",
            get(|AxPath(n): AxPath<u32>| async move {
                if n == 0 {
                    Redirect::temporary("/img.png").into_response()
                } else {
                    Redirect::temporary(&format!("/hop/{}", n - 1)).into_response()
                }
            }),
        )
        .route("/big", get(|| async { vec![1u8; 3 * 1024 * 1024] }))
        .route(
            "/chunked",
            get(|| async {
                let s = futures_stream();
                axum::body::Body::from_stream(s)
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/to-file",
            get(|| async { Redirect::temporary("file:///etc/passwd") }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

/// 4 MiB in 64 KiB chunks, without a Content-Length.
fn futures_stream()
-> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::iter((0..64).map(|_| Ok(vec![2u8; 64 * 1024])))
}

fn open(t: &tempfile::TempDir, allow: bool) -> MediaStore {
    let mut st = settings(t.path().join("m"));
    st.allow_private_network = allow;
    MediaStore::open(st).unwrap()
}

#[tokio::test]
async fn loopback_downloads_are_refused_by_default() {
    umask_077();
    let base = server().await;
    let t = tempfile::tempdir().unwrap();
    let store = open(&t, false);
    let e = store
        .download(&format!("{base}/img.png"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NetworkPolicyRefused);
    assert_eq!(e.details()["address"], "127.0.0.1");
    assert_eq!(e.details()["host"], "127.0.0.1");
    assert_eq!(e.details()["setting"], "media.allowPrivateNetwork");
    assert!(e.hint().unwrap().contains("allowPrivateNetwork"));
    let port = base.rsplit(':').next().unwrap();
    let e = store
        .download(&format!("http://localhost:{port}/img.png"))
        .await
        .unwrap_err();
    assert!(e.details().contains_key("address"), "{e}");
    assert_eq!(e.details()["host"], "localhost", "{e}");
    for bad in [
        "file:///etc/passwd",
        "ftp://example.org/x",
        "http://user:pw@1.1.1.1/",
    ] {
        let e = store.download(bad).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest, "{bad}");
    }
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test]
async fn allowed_downloads_follow_five_redirects_stream_and_cap() {
    umask_077();
    let base = server().await;
    let t = tempfile::tempdir().unwrap();
    let store = open(&t, true);
    let s = store.download(&format!("{base}/img.png")).await.unwrap();
    assert_eq!(s.mime, "image/png");
    assert_eq!(std::fs::read(&s.path).unwrap(), png(3, 2, 9));
    assert_eq!(mode_of(&s.path), 0o644);
    assert!(s.name.starts_with("img---"));

    let s = store.download(&format!("{base}/hop/4")).await.unwrap();
    assert_eq!(std::fs::read(&s.path).unwrap(), png(3, 2, 9));
    let e = store.download(&format!("{base}/hop/5")).await.unwrap_err();
    assert!(e.to_string().contains("redirects"), "{e}");

    let e = store
        .download(&format!("{base}/to-file"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("scheme"), "{e}");

    let e = store.download(&format!("{base}/big")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    let e = store
        .download(&format!("{base}/chunked"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    let e = store
        .download(&format!("{base}/missing"))
        .await
        .unwrap_err();
    assert_eq!(e.details()["status"], 404);
    let n = store.list().unwrap().len();
    assert_eq!(n, 2, "only the two good downloads are stored");
}
