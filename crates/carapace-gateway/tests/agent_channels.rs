//! The gateway starts the inbound channels with its agent: a Telegram DM (a loopback Bot API
//! that enforces the documented formats) reaches the scripted model through the gateway's
//! agent and the answer comes back in the chat; with no model configured the same DM is
//! answered with `MODEL_NOT_CONFIGURED` and the key to set — never silence.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod agent_support;
#[path = "../../carapace-inbound/tests/common/telegram.rs"]
mod telegram;

use agent_support::*;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step};
use serde_json::json;

fn tg_channel(base: &str) -> String {
    format!(
        r#"telegram: {{ botToken: "{}", apiBaseUrl: "{base}", allowFrom: [42] }},"#,
        telegram::TOKEN
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_telegram_dm_is_answered_through_the_gateways_agent() {
    let (base, tg) = telegram::start().await;
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .then_repeat(Step::with(|seen| {
            let u = seen.last_user_text();
            Reply::text(&format!("echo: {}", u.lines().last().unwrap_or("")))
        }))
        .start()
        .await;
    let gw = start_full(
        r#"mode: "off""#,
        &provider(&srv, Api::OpenAi),
        "",
        false,
        &tg_channel(&base),
    )
    .await;
    tg.push(telegram::dm(42, json!({"text": "hello bot"})));
    until("the answer in the chat", || !tg.sent_to("42").is_empty()).await;
    assert_eq!(tg.sent_to("42")[0].text.as_deref(), Some("echo: hello bot"));
    // The audit log has the inbound events and the model call, not the text.
    let audit = audit_text(&gw);
    assert!(audit.contains(r#""type":"model_call""#), "{audit}");
    assert!(audit.contains(r#""event":"answered""#), "{audit}");
    assert!(!audit.contains("hello bot"), "{audit}");
    // /metrics carries the channel's own counters, labelled by channel.
    let want = r#"carapace_inbound_messages_answered_total{channel="telegram"} 1"#;
    let mut metrics = String::new();
    for _ in 0..300 {
        metrics = reqwest::Client::new()
            .get(format!("http://{}/metrics", gw.addr))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metrics.contains(want), "{metrics}");
    assert!(
        metrics.contains(r#"carapace_inbound_connected{channel="telegram"}"#),
        "{metrics}"
    );
    // Stopping the gateway's agent stops the channel (within its grace).
    let agent = gw.gw.set_agent(None).unwrap();
    agent.shutdown().await;
    assert!(tg.violations.lock().unwrap().is_empty());
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_model_the_dm_gets_the_key_to_set() {
    let (base, tg) = telegram::start().await;
    let _gw = start_full(r#"mode: "off""#, "", "", false, &tg_channel(&base)).await;
    tg.push(telegram::dm(42, json!({"text": "hello?"})));
    until("the answer in the chat", || !tg.sent_to("42").is_empty()).await;
    let text = tg.sent_to("42")[0].text.clone().unwrap_or_default();
    assert!(text.contains("MODEL_NOT_CONFIGURED"), "{text}");
    assert!(text.contains("agents.defaults.model.primary"), "{text}");
}
