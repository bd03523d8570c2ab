//! The web page in a real browser: headless Chromium driven over CDP logs in, chats with the
//! agent (a real AgentRuntime over a scripted model), sees the streamed reply, the tool call
//! with its typed error and the image the agent sent (its pixels read back from a canvas),
//! sees HTML from the model as text, resets a session, looks at sandboxes, approves a pairing
//! request, fixes a doctor finding and filters the audit log. With `CARAPACE_UI_SCREENSHOTS`
//! set to a directory, a screenshot of each view is written there (docs/img/ in the repo).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};

use carapace_agent::SessionStore;
use carapace_gateway::audit::{AuditLog, AuditRecord, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use carapace_inbound::{PairingStore, RequestOutcome};
use carapace_testkit::model_server::{Reply, Step, call};
use chromiumoxide::Page;
use serde_json::{Value, json};
use ui_support::{Chrome, TOKEN, WEB_SESSION, chromium, eval, screenshot, start, wait_js};

const HOSTILE: &str = r#"<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2"> <b>not bold</b>"#;

async fn log_in(page: &Page, token: &str) {
    let input = page.find_element("#token").await.unwrap();
    input.click().await.unwrap().type_str(token).await.unwrap();
    page.find_element("#login-submit")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn send(page: &Page, text: &str, nth_reply: usize) {
    eval(
        page,
        &format!(
            "(() => {{ document.getElementById('chat-input').value = {}; document.getElementById('chat-form').requestSubmit(); return 'ok'; }})()",
            serde_json::to_string(text).unwrap()
        ),
    )
    .await;
    wait_js(
        page,
        "the agent's reply",
        &format!("document.querySelectorAll('.msg.agent[data-done]').length >= {nth_reply}"),
    )
    .await;
}

fn audit(state: &std::path::Path) {
    let log = AuditLog::open(state, DEFAULT_MAX_BYTES, DEFAULT_KEEP).unwrap();
    let rec = |tool: &str, session: &str, command: Option<&str>, ok: bool| AuditRecord {
        time: carapace_gateway::audit::rfc3339_now(),
        request_id: uuid::Uuid::new_v4().to_string(),
        transport: "http",
        session: Some(session.to_string()),
        agent: Some("main".into()),
        tool: tool.to_string(),
        action: None,
        paths: if command.is_none() {
            vec!["/workspace/notes.md".into()]
        } else {
            Vec::new()
        },
        bytes: None,
        command: command.map(str::to_string),
        destination: None,
        outcome: if ok { "ok" } else { "error" },
        error_code: (!ok).then_some(carapace_policy::ErrorCode::PermissionDenied),
        duration_ms: 12,
    };
    log.append(&rec("write", WEB_SESSION, None, true));
    log.append(&rec("exec", WEB_SESSION, Some("ls -la /workspace"), true));
    log.append(&rec(
        "exec",
        "agent:main:telegram:direct:4242",
        Some("cat /etc/shadow"),
        false,
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_chats_and_manages_the_gateway_in_a_real_browser() {
    let Some(bin) = chromium() else { return };
    let png_path: Arc<Mutex<String>> = Arc::default();
    let p = Arc::clone(&png_path);
    let gw = start(Some(vec![
        Step::reply(Reply::tools(vec![call(
            "read",
            json!({"path": "no-such-file.txt"}),
        )])),
        Step::with(move |_| {
            Reply::text(&format!(
                "Here is the screenshot you asked for.\nMEDIA:{}",
                p.lock().unwrap()
            ))
        }),
        Step::reply(Reply::text(HOSTILE)),
        Step::with(|seen| {
            let text = seen.last_user_text();
            match text
                .split_whitespace()
                .find(|w| w.starts_with("/workspace/media/inbound/"))
            {
                Some(p) if seen.last_user_has_image() => Reply::text(&format!(
                    "I can see your picture; it is at {}",
                    p.trim_end_matches(']')
                )),
                _ => Reply::text(&format!("no picture arrived: {text}")),
            }
        }),
    ]))
    .await;
    // What the agent will send: a PNG in the media store.
    let store =
        carapace_media::MediaStore::open(carapace_media::MediaSettings::from_config(&gw.config))
            .unwrap();
    let saved = store
        .save_bytes(&ui_support::test_png(), Some("screenshot.png"), None)
        .unwrap();
    *png_path.lock().unwrap() = saved.path.display().to_string();
    // A stranger waiting for pairing, a file doctor will flag, audit lines.
    let pairing = PairingStore::new(&gw.state);
    let meta = [("name".to_string(), "Ada".to_string())]
        .into_iter()
        .collect();
    let RequestOutcome::Created(code) = pairing.request("telegram", "4242", meta).unwrap() else {
        panic!("no pairing code")
    };
    let private = gw.media.join("notes.txt");
    std::fs::write(&private, "meant to be shared\n").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    audit(&gw.state);

    let chrome = Chrome::launch(&bin).await;
    let page = chrome
        .browser
        .new_page(format!("{}/", gw.base))
        .await
        .unwrap();
    wait_js(
        &page,
        "the login form",
        "!!document.getElementById('token')",
    )
    .await;
    screenshot(&page, "login").await;
    log_in(&page, TOKEN).await;
    wait_js(
        &page,
        "the page after login",
        "location.pathname === '/ui/' && document.body.dataset.ready === '1'",
    )
    .await;
    let url = page.url().await.unwrap().unwrap();
    assert!(!url.contains(TOKEN), "the token is in the URL {url}");
    assert_eq!(
        eval(&page, "document.cookie").await,
        "",
        "the login cookie is HttpOnly"
    );
    assert!(
        eval(&page, "document.getElementById('chat-model').textContent")
            .await
            .contains("p/m")
    );

    // Chat: streamed reply, the tool call with its typed error, the image with its pixels.
    send(&page, "Please take a screenshot and show it to me.", 1).await;
    let reply = "document.querySelector('.msg.agent[data-done]')";
    assert_eq!(eval(&page, &format!("{reply}.dataset.done")).await, "ok");
    assert_eq!(
        eval(
            &page,
            &format!("{reply}.querySelector('.text').textContent")
        )
        .await,
        "Here is the screenshot you asked for."
    );
    let deltas: u32 = eval(&page, &format!("{reply}.dataset.deltas"))
        .await
        .parse()
        .unwrap();
    assert!(
        deltas > 1,
        "the reply arrived in {deltas} piece(s), not streamed"
    );
    assert_eq!(
        eval(
            &page,
            &format!("{reply}.querySelector('.tool .tool-name').textContent")
        )
        .await,
        "read"
    );
    let status = eval(
        &page,
        &format!("{reply}.querySelector('.tool .tool-status').textContent"),
    )
    .await;
    assert!(status.starts_with("error "), "{status}");
    assert!(
        eval(
            &page,
            &format!("{reply}.querySelector('.tool .tool-args').textContent")
        )
        .await
        .contains("no-such-file.txt")
    );
    let pixels = eval(
        &page,
        &format!(
            "(async () => {{ const img = {reply}.querySelector('.attachment-image'); await img.decode();
               const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
               const g = c.getContext('2d'); g.drawImage(img, 0, 0);
               return JSON.stringify({{w: c.width, h: c.height, px: Array.from(g.getImageData(0, 0, c.width, c.height).data)}}); }})()"
        ),
    )
    .await;
    let v: Value = serde_json::from_str(&pixels).unwrap();
    let (w, h) = (ui_support::PNG_W, ui_support::PNG_H);
    assert_eq!(
        (v["w"].as_u64(), v["h"].as_u64()),
        (Some(w.into()), Some(h.into()))
    );
    let px: Vec<u8> = v["px"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect();
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 4) as usize;
            assert_eq!(
                &px[i..i + 4],
                &ui_support::test_png_pixel(x, y),
                "pixel ({x},{y})"
            );
        }
    }

    // HTML from the model is text.
    send(&page, "Say something dangerous.", 2).await;
    let second = "document.querySelectorAll('.msg.agent[data-done]')[1].querySelector('.text')";
    assert_eq!(eval(&page, &format!("{second}.textContent")).await, HOSTILE);
    assert_eq!(eval(&page, "typeof window.__pwned").await, "undefined");
    assert_eq!(eval(&page, "document.querySelectorAll('#messages img[src=\"x\"], #messages script, #messages b').length").await, "0");

    // A file the person attaches goes through the inbound media path into the workspace.
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        ui_support::test_png(),
    );
    eval(
        &page,
        &format!(
            "(() => {{ const b = Uint8Array.from(atob('{b64}'), c => c.charCodeAt(0)); const dt = new DataTransfer();
               dt.items.add(new File([b], 'photo.png', {{type: 'image/png'}}));
               const i = document.getElementById('chat-file'); i.files = dt.files; i.dispatchEvent(new Event('change')); return 1; }})()"
        ),
    )
    .await;
    send(&page, "What is in this picture?", 3).await;
    let third = eval(
        &page,
        "document.querySelectorAll('.msg.agent[data-done]')[2].querySelector('.text').textContent",
    )
    .await;
    let placed = third
        .strip_prefix("I can see your picture; it is at /workspace/")
        .unwrap_or_else(|| panic!("the model did not get the picture: {third}"));
    assert_eq!(
        std::fs::read(gw.ws.join(placed)).unwrap(),
        ui_support::test_png()
    );
    screenshot(&page, "chat").await;

    // Sessions: the web session with its transcript, then reset.
    let sessions = SessionStore::new(&gw.state);
    let before = sessions.show(WEB_SESSION, None).unwrap().summary.session_id;
    eval(
        &page,
        "(() => { document.querySelector('[data-view=sessions]').click(); return 1; })()",
    )
    .await;
    let row = format!("document.querySelector('tr[data-key=\"{WEB_SESSION}\"]')");
    wait_js(&page, "the sessions list", &format!("!!{row}")).await;
    assert_eq!(
        eval(&page, &format!("{row}.children[1].textContent")).await,
        "web"
    );
    assert_eq!(
        eval(&page, &format!("{row}.children[2].textContent")).await,
        "owner"
    );
    assert_eq!(
        eval(&page, &format!("{row}.children[5].textContent")).await,
        "p/m"
    );
    eval(
        &page,
        &format!("(() => {{ {row}.querySelector('button').click(); return 1; }})()"),
    )
    .await;
    wait_js(
        &page,
        "the transcript",
        "document.querySelectorAll('#transcript-body .t-user').length === 3",
    )
    .await;
    screenshot(&page, "sessions").await;
    eval(&page, &format!("(() => {{ window.confirm = () => true; {row}.querySelector('[data-reset]').click(); return 1; }})()")).await;
    wait_js(
        &page,
        "the reset",
        "document.getElementById('flash').textContent.startsWith('Reset')",
    )
    .await;
    let after = sessions
        .list(None)
        .unwrap()
        .into_iter()
        .find(|s| s.session_key == WEB_SESSION)
        .unwrap();
    assert_ne!(after.session_id, before, "the session was not reset");
    assert_eq!(after.turns, 0);

    // Sandboxes: backend, mount table with ro/rw.
    eval(
        &page,
        "(() => { document.querySelector('[data-view=sandboxes]').click(); return 1; })()",
    )
    .await;
    wait_js(
        &page,
        "the mount table",
        "document.querySelectorAll('#sbx-explain .mounts tbody tr').length > 0",
    )
    .await;
    let access = eval(&page, "Array.from(document.querySelectorAll('#sbx-explain .mounts tbody tr td:nth-child(3)')).map(t => t.textContent).join(',')").await;
    assert!(access.contains("rw"), "{access}");
    screenshot(&page, "sandboxes").await;

    // Channels: approve the pairing request.
    eval(
        &page,
        "(() => { document.querySelector('[data-view=channels]').click(); return 1; })()",
    )
    .await;
    let approve = format!("document.querySelector('button[data-approve=\"{code}\"]')");
    wait_js(&page, "the pairing request", &format!("!!{approve}")).await;
    screenshot(&page, "channels").await;
    eval(
        &page,
        &format!("(() => {{ {approve}.click(); return 1; }})()"),
    )
    .await;
    wait_js(
        &page,
        "the approval",
        &format!(
            "!{approve} && document.getElementById('flash').textContent.startsWith('Approved')"
        ),
    )
    .await;
    assert!(
        pairing.is_allowed("telegram", "4242").unwrap(),
        "the sender was not approved"
    );

    // Doctor: the 0600 file, fixed with its button.
    eval(
        &page,
        "(() => { document.querySelector('[data-view=doctor]').click(); return 1; })()",
    )
    .await;
    let fix = "Array.from(document.querySelectorAll('#doctor-body tr')).find(r => r.textContent.includes('notes.txt'))";
    wait_js(
        &page,
        "the doctor finding",
        &format!("!!{fix} && !!{fix}.querySelector('button')"),
    )
    .await;
    screenshot(&page, "doctor").await;
    eval(
        &page,
        &format!("(() => {{ {fix}.querySelector('button').click(); return 1; }})()"),
    )
    .await;
    wait_js(
        &page,
        "the fix",
        &format!("!!{fix} && {fix}.textContent.includes('fixed: now')"),
    )
    .await;
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "doctor's fix did not add the read bits");

    // Audit: filter by tool.
    eval(
        &page,
        "(() => { document.querySelector('[data-view=audit]').click(); return 1; })()",
    )
    .await;
    wait_js(
        &page,
        "the audit log",
        "document.querySelectorAll('#audit-body tr').length === 3",
    )
    .await;
    eval(&page, "(() => { const s = document.getElementById('audit-tool'); s.value = 'exec'; document.getElementById('audit-form').requestSubmit(); return 1; })()").await;
    wait_js(
        &page,
        "the filtered audit log",
        "document.querySelectorAll('#audit-body tr').length === 2",
    )
    .await;
    let tools = eval(&page, "Array.from(document.querySelectorAll('#audit-body tr td:nth-child(2)')).map(t => t.textContent).join(',')").await;
    assert_eq!(tools, "exec,exec");
    screenshot(&page, "audit").await;
    eval(&page, &format!("(() => {{ document.getElementById('audit-session').value = {}; document.getElementById('audit-form').requestSubmit(); return 1; }})()", serde_json::to_string(WEB_SESSION).unwrap())).await;
    wait_js(
        &page,
        "the audit log of one session",
        "document.querySelectorAll('#audit-body tr').length === 1",
    )
    .await;
    screenshot(&page, "audit").await;

    chrome.close().await;
    gw.model.as_ref().unwrap().assert_clean();
}

/// An HTML page on another loopback port (same site, another origin) that tries to approve a
/// pairing request and to log in with the right token.
async fn hostile_site(base: &str, code: &str) -> String {
    let html = format!(
        r#"<!doctype html><html><body><form id="f" method="post" action="{base}/ui/login"><input name="token" value="{TOKEN}"></form>
<script>
(async () => {{
  try {{
    await fetch("{base}/ui/api/pairing/approve", {{ method: "POST", mode: "no-cors", credentials: "include",
      headers: {{ "content-type": "text/plain" }}, body: JSON.stringify({{ channel: "telegram", code: "{code}" }}) }});
  }} catch (e) {{}}
  document.title = "tried";
  document.getElementById("f").submit();
}})();
</script></body></html>"#
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let h = html.clone();
            async move { axum::response::Html(h) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_refuses_a_wrong_token_and_another_origin() {
    let Some(bin) = chromium() else { return };
    let gw = start(None).await;
    let pairing = PairingStore::new(&gw.state);
    let RequestOutcome::Created(code) = pairing
        .request("telegram", "777", Default::default())
        .unwrap()
    else {
        panic!("no pairing code")
    };
    let chrome = Chrome::launch(&bin).await;
    let page = chrome
        .browser
        .new_page(format!("{}/ui/login", gw.base))
        .await
        .unwrap();
    wait_js(
        &page,
        "the login form",
        "!!document.getElementById('token')",
    )
    .await;
    log_in(&page, "wrong-token").await;
    wait_js(
        &page,
        "the refusal",
        "!document.getElementById('login-error').hidden",
    )
    .await;
    assert_eq!(
        eval(&page, "location.pathname + location.search").await,
        "/ui/login"
    );
    assert_eq!(
        eval(&page, "fetch('/ui/api/me').then(r => r.status)").await,
        "401"
    );

    // Logged in for real, the person then visits a hostile page on another port.
    eval(
        &page,
        "(() => { document.getElementById('token').value = ''; return 1; })()",
    )
    .await;
    log_in(&page, TOKEN).await;
    wait_js(
        &page,
        "the page after login",
        "document.body.dataset.ready === '1'",
    )
    .await;
    assert_eq!(
        eval(&page, "fetch('/ui/api/me').then(r => r.status)").await,
        "200"
    );
    let evil = hostile_site(&gw.base, &code).await;
    let other = chrome.browser.new_page(evil).await.unwrap();
    // Its form post lands on the gateway, which refuses it: another origin may not log in.
    wait_js(
        &other,
        "the refused login from another origin",
        &format!(
            "location.href.startsWith('{}/ui/login') && document.body.textContent.includes('PERMISSION_DENIED')",
            gw.base
        ),
    )
    .await;
    assert!(
        !pairing.is_allowed("telegram", "777").unwrap(),
        "another origin approved a pairing request"
    );
    assert_eq!(pairing.list("telegram").unwrap().len(), 1);
    chrome.close().await;
}
