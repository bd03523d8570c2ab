//! Telegram conversations against a loopback Bot API (`common/telegram.rs`) with the scripted
//! model: DMs answered in their chat, groups only when mentioned, a photo fetched with
//! `getFile` into the workspace and sent back byte-identical, a stranger paired, a long answer
//! chunked under Telegram's limit, a flood from one sender bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "common/telegram.rs"]
mod telegram;

use std::time::Duration;

use carapace_inbound::read_status;
use carapace_testkit::model_server::{ModelServer, Reply, Step};
use common::*;
use serde_json::json;
use telegram::*;

fn script() -> Step {
    Step::with(|seen| {
        let user = seen.last_user_text();
        let body = user.lines().nth(1).unwrap_or_default().to_string();
        if let Some(path) = word_after(&user, "[attached: ") {
            return Reply::text(&format!("got it\nMEDIA:{path}"));
        }
        if body == "long please" {
            return Reply::text(
                &(0..900)
                    .map(|i| format!("word{i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .chain("\n\nthe end".chars())
                    .collect::<String>(),
            );
        }
        Reply::text(&format!("echo: {body}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn telegram_dm_group_photo_pairing_chunks_and_floods() {
    let (base, tg) = start().await;
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(script())
        .start()
        .await;
    let env = env_with(
        r#"mode: "off""#,
        &format!(
            r#"channels: {{ telegram: {{ botToken: "${{TG}}", apiBaseUrl: "{base}", allowFrom: [42, "tg:43"],
                                         groups: {{ "*": {{ requireMention: true }} }} }} }}"#
        ),
        &[("TG", TOKEN)],
    );
    let (svc, _rt, _ctx) = service(&env, models(&srv));
    let h = svc.start().unwrap();

    // A DM.
    tg.push(dm(42, json!({"text": "hello"})));
    until("the DM answer", || !tg.sent_to("42").is_empty()).await;
    assert_eq!(tg.sent_to("42")[0].text.as_deref(), Some("echo: hello"));
    assert!(
        tg.actions
            .lock()
            .unwrap()
            .iter()
            .any(|a| a["chat_id"] == "42" && a["action"] == "typing")
    );

    // Groups: only when mentioned.
    let calls = srv.request_count();
    tg.push(group(-100, 42, "just chatting"));
    tg.push(group(-100, 42, "@cara_bot are you there"));
    until("the group answer", || !tg.sent_to("-100").is_empty()).await;
    let g = tg.sent_to("-100");
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].text.as_deref(), Some("echo: @cara_bot are you there"));
    assert_eq!(
        srv.request_count(),
        calls + 1,
        "the unmentioned message reached no model"
    );

    // A photo: fetched (largest size), placed in the workspace, and sent back as it came.
    let jpeg: Vec<u8> = [
        &b"\xff\xd8\xff\xe0\0\x10JFIF\0"[..],
        &[7u8; 20_000][..],
        &b"\xff\xd9"[..],
    ]
    .concat();
    tg.files.lock().unwrap().extend([
        (
            "small".to_string(),
            "photos/file_1.jpg".to_string(),
            b"tiny".to_vec(),
        ),
        (
            "big".to_string(),
            "photos/file_2.jpg".to_string(),
            jpeg.clone(),
        ),
    ]);
    tg.push(dm(
        42,
        json!({"caption": "look", "photo": [
            {"file_id": "small", "file_unique_id": "s", "width": 10, "height": 10, "file_size": 4},
            {"file_id": "big", "file_unique_id": "b", "width": 800, "height": 600, "file_size": jpeg.len()}]}),
    ));
    until("the photo answer", || {
        tg.sent_to("42").iter().any(|s| s.file.is_some())
    })
    .await;
    let photo = tg
        .sent_to("42")
        .into_iter()
        .find(|s| s.file.is_some())
        .unwrap();
    assert_eq!(photo.method, "sendPhoto");
    assert_eq!(photo.text.as_deref(), Some("got it"));
    assert_eq!(
        photo.file.as_ref().unwrap().1,
        jpeg,
        "the bytes that arrived are the bytes sent"
    );
    let placed: Vec<_> = files(&env.ws.join("media/inbound"));
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(std::fs::read(&placed[0]).unwrap(), jpeg);
    assert_eq!(mode(&placed[0]), 0o644);

    // A stranger: a pairing code, no model call.
    let calls = srv.request_count();
    tg.push(dm(77, json!({"text": "hi, who are you?"})));
    until("the pairing code", || !tg.sent_to("77").is_empty()).await;
    let p = tg.sent_to("77")[0].text.clone().unwrap();
    let code = word_after(&p, "Pairing code: ").unwrap();
    assert!(
        p.contains(&format!("carapace pairing approve telegram {code}")),
        "{p}"
    );
    assert_eq!(srv.request_count(), calls);

    // A long answer: chunks within the limit, nothing lost.
    tg.push(dm(42, json!({"text": "long please"})));
    until("the long answer", || {
        tg.sent_to("42")
            .iter()
            .any(|s| s.text.as_deref().is_some_and(|t| t.ends_with("the end")))
    })
    .await;
    let texts: Vec<String> = tg
        .sent_to("42")
        .into_iter()
        .filter_map(|s| s.text)
        .filter(|t| t.starts_with("word") || t.contains("the end"))
        .collect();
    assert!(texts.len() >= 2, "{}", texts.len());
    assert!(texts.iter().all(|t| t.chars().count() <= 4000));
    let joined = texts.join(" ");
    assert!(joined.contains("word0 ") && joined.contains("word899") && joined.ends_with("the end"));

    // A flood from one sender: a burst answered, one notice, the rest dropped (and recorded).
    for i in 0..25 {
        tg.push(dm(43, json!({"text": format!("flood {i}")})));
    }
    until("the flood handled", || {
        read_status(&env.state, "telegram").is_some_and(|s| s.counters.received >= 31)
            && tg.sent_to("43").iter().any(|s| {
                s.text
                    .as_deref()
                    .is_some_and(|t| t.contains("faster than I can answer"))
            })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answered = tg
        .sent_to("43")
        .iter()
        .filter(|s| {
            s.text
                .as_deref()
                .is_some_and(|t| t.starts_with("echo: flood"))
        })
        .count();
    assert!(
        answered <= 7,
        "a flood is bounded per sender: {answered} answered"
    );
    assert!(answered >= 1);
    let notices = tg
        .sent_to("43")
        .iter()
        .filter(|s| {
            s.text
                .as_deref()
                .is_some_and(|t| t.contains("faster than I can answer"))
        })
        .count();
    assert_eq!(notices, 1, "one notice, not one per message");
    h.shutdown(Duration::from_secs(10)).await;
    let st = read_status(&env.state, "telegram").unwrap();
    assert!(st.counters.limited >= 15, "{:?}", st.counters);
    assert!(
        st.counters.paired >= 1 && st.counters.dropped >= 1,
        "{:?}",
        st.counters
    );
    assert!(
        tg.violations.lock().unwrap().is_empty(),
        "{:?}",
        tg.violations.lock().unwrap()
    );
}
