//! The web page over plain HTTP: login, cookie, CSRF, same-origin, security headers, the chat
//! stream and the outbound checks on what the agent sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::sync::{Arc, Mutex};

use carapace_inbound::{PairingStore, RequestOutcome};
use carapace_testkit::model_server::{Reply, Step, call};
use serde_json::{Value, json};
use ui_support::{TOKEN, start};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in; returns (cookie header value, CSRF token).
async fn login(base: &str) -> (String, String) {
    let r = client()
        .post(format!("{base}/ui/login"))
        .header("origin", base)
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let me: Value = client()
        .get(format!("{base}/ui/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (cookie, me["csrf"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_keeps_the_token_out_of_urls() {
    let gw = start(None).await;
    let r = client()
        .post(format!("{}/ui/login", gw.base))
        .header("origin", &gw.base)
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap();
    assert_eq!(location, "/ui/");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "cookie lacks {attr}: {set}");
    }
    assert!(!set.contains(TOKEN), "the cookie must not be the token");
    let cookie = set.split(';').next().unwrap().to_string();

    let page = client()
        .get(format!("{}/ui/", gw.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(!html.contains(TOKEN));
    // Every script is a file of the page's own (the CSP would refuse an inline one anyway).
    for tag in html.split("<script").skip(1) {
        assert!(
            tag.trim_start().starts_with("src=\"/ui/assets/"),
            "inline script: {tag}"
        );
    }
    assert!(!html.contains(" onclick=") && !html.contains(" onload="));

    let me: Value = client()
        .get(format!("{}/ui/api/me", gw.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["ok"], true);
    let csrf = me["csrf"].as_str().unwrap().to_string();
    assert!(csrf.len() >= 32);

    // A body the API cannot read is the envelope too, not plain text.
    let bad = client()
        .post(format!("{}/ui/api/sessions/reset", gw.base))
        .header("cookie", &cookie)
        .header("origin", &gw.base)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.unwrap();
    assert_eq!(e["error"]["code"], "BAD_REQUEST");

    // Logging out ends the login.
    let out = client()
        .post(format!("{}/ui/logout", gw.base))
        .header("cookie", &cookie)
        .header("origin", &gw.base)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let after = client()
        .get(format!("{}/ui/api/me", gw.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let gw = start(None).await;
    let r = client()
        .post(format!("{}/ui/login", gw.base))
        .header("origin", &gw.base)
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login?failed=1");
    assert!(r.headers().get("set-cookie").is_none());

    let page = client()
        .get(format!("{}/ui/", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/ui/login");
    let api = client()
        .get(format!("{}/ui/api/sessions", gw.base))
        .header("cookie", "carapace_ui=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    // The bearer token alone is not a login to the page.
    let bearer = client()
        .get(format!("{}/ui/api/sessions", gw.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
}

#[tokio::test]
async fn state_changes_need_the_same_origin_and_the_csrf_token() {
    let gw = start(None).await;
    let store = PairingStore::new(&gw.state);
    let RequestOutcome::Created(code) = store
        .request("telegram", "4242", Default::default())
        .unwrap()
    else {
        panic!("no pairing code");
    };
    let (cookie, csrf) = login(&gw.base).await;
    let url = format!("{}/ui/api/pairing/approve", gw.base);
    let body = json!({"channel": "telegram", "code": code});
    let post = |origin: Option<&str>, site: Option<&str>, token: Option<&str>| {
        let mut r = client().post(&url).header("cookie", &cookie).json(&body);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    let refused = [
        (Some("http://127.0.0.1:1"), None, Some(csrf.as_str())),
        (
            Some("http://evil.example"),
            Some("cross-site"),
            Some(csrf.as_str()),
        ),
        (
            Some(gw.base.as_str()),
            Some("same-site"),
            Some(csrf.as_str()),
        ),
        (None, None, Some(csrf.as_str())),
        (Some(gw.base.as_str()), Some("same-origin"), None),
        (Some(gw.base.as_str()), Some("same-origin"), Some("0000")),
    ];
    for (o, s, t) in refused {
        let r = post(o, s, t).await.unwrap();
        assert_eq!(r.status(), 403, "origin {o:?} site {s:?} csrf {t:?}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "PERMISSION_DENIED");
        assert!(!store.is_allowed("telegram", "4242").unwrap());
    }
    let ok = post(Some(&gw.base), Some("same-origin"), Some(&csrf))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(store.is_allowed("telegram", "4242").unwrap());

    // A login posted from another origin is refused too (no login CSRF).
    let r = client()
        .post(format!("{}/ui/login", gw.base))
        .header("origin", "http://evil.example")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn without_a_model_the_chat_names_the_setting() {
    let gw = start(None).await;
    let (cookie, csrf) = login(&gw.base).await;
    let me: Value = client()
        .get(format!("{}/ui/api/me", gw.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["chat"]["available"], false);
    assert_eq!(me["chat"]["setting"], "agents.defaults.model.primary");
    let r = client()
        .post(format!("{}/ui/api/chat", gw.base))
        .header("cookie", &cookie)
        .header("origin", &gw.base)
        .header("x-csrf-token", &csrf)
        .json(&json!({"text": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "MODEL_NOT_CONFIGURED");
    assert_eq!(
        e["error"]["details"]["setting"],
        "agents.defaults.model.primary"
    );
    assert!(
        e["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("agents.defaults.model.primary")
    );
}

#[tokio::test]
async fn the_chat_streams_events_and_offers_only_files_the_outbound_rules_let_out() {
    let png_path: Arc<Mutex<String>> = Arc::default();
    let p = Arc::clone(&png_path);
    let gw = start(Some(vec![
        Step::reply(Reply::tools(vec![call(
            "read",
            json!({"path": "no-such-file.txt"}),
        )])),
        Step::with(move |_| {
            Reply::text(&format!(
                "Here it is.\nMEDIA:{}\nMEDIA:/etc/passwd",
                p.lock().unwrap().replace('|', "\nMEDIA:")
            ))
        }),
    ]))
    .await;
    let store =
        carapace_media::MediaStore::open(carapace_media::MediaSettings::from_config(&gw.config))
            .unwrap();
    let saved = store
        .save_bytes(&ui_support::test_png(), Some("shot.png"), None)
        .unwrap();
    let notes = store
        .save_bytes(
            b"<html><script>alert(1)</script></html>",
            Some("notes.html"),
            None,
        )
        .unwrap();
    *png_path.lock().unwrap() = format!("{}|{}", saved.path.display(), notes.path.display());

    let (cookie, csrf) = login(&gw.base).await;
    let r = client()
        .post(format!("{}/ui/api/chat", gw.base))
        .header("cookie", &cookie)
        .header("origin", &gw.base)
        .header("x-csrf-token", &csrf)
        .json(&json!({"text": "show me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"tool_started"), "{kinds:?}");
    let started = events.iter().find(|e| e["type"] == "tool_started").unwrap();
    assert_eq!(started["name"], "read");
    assert_eq!(started["args"]["path"], "no-such-file.txt");
    let finished = events
        .iter()
        .find(|e| e["type"] == "tool_finished")
        .unwrap();
    assert_eq!(finished["outcome"]["status"], "error");
    assert!(!finished["outcome"]["code"].as_str().unwrap().is_empty());
    assert!(
        kinds.iter().filter(|k| **k == "text").count() > 1,
        "streamed in pieces: {kinds:?}"
    );
    let atts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "attachment")
        .collect();
    assert_eq!(atts.len(), 2, "{events:?}");
    let att = atts[0];
    assert_eq!(att["mime"], "image/png");
    assert_eq!(att["inline"], true);
    // Anything but a plain image is a download, never rendered by the page's origin.
    assert_eq!(atts[1]["inline"], false);
    let html = client()
        .get(format!("{}{}", gw.base, atts[1]["url"].as_str().unwrap()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-type"], "application/octet-stream");
    assert!(
        html.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"notes.html\"")
    );
    assert_eq!(html.headers()["x-content-type-options"], "nosniff");
    let refused = events
        .iter()
        .find(|e| e["type"] == "attachment_refused")
        .unwrap();
    assert_eq!(refused["path"], "/etc/passwd");
    assert_eq!(events.last().unwrap()["type"], "done");
    assert_eq!(events.last().unwrap()["text"], "Here it is.");

    // The file is served from the checked fd, with its bytes; no login, no file.
    let url = format!("{}{}", gw.base, att["url"].as_str().unwrap());
    let got = client()
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), ui_support::test_png());
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
    // Made unreadable for others after it was offered: the download is refused.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&saved.path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let again = client()
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 403);
    let e: Value = again.json().await.unwrap();
    assert_eq!(e["error"]["code"], "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
}
