//! `carapace pairing list|approve|reject` and `carapace channels status` as a user runs them,
//! on a state dir a gateway wrote (pairing requests, a cursor, a status file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use carapace_inbound::{PairingStore, RequestOutcome};
use serde_json::Value;

fn carapace(state: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carapace"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("CARAPACE_STATE_DIR", state)
        .env("TG_TOKEN", "123:secret-tg-token")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn list_approve_reject_and_status() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = d.path().join("c.json5");
    std::fs::write(
        &config,
        r#"{ channels: { telegram: { botToken: "${TG_TOKEN}" }, webhook: { url: "https://example.invalid/h" } } }"#,
    )
    .unwrap();
    let store = PairingStore::new(&state);
    let RequestOutcome::Created(code) =
        store.request("telegram", "77", Default::default()).unwrap()
    else {
        panic!()
    };
    store.request("telegram", "78", Default::default()).unwrap();

    let o = carapace(&state, &config, &["--json", "pairing", "list"]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["channel"], "telegram");
    assert_eq!(reqs[0]["id"], "77");
    assert_eq!(reqs[0]["code"], code.as_str());

    let o = carapace(
        &state,
        &config,
        &[
            "--json",
            "pairing",
            "approve",
            "telegram",
            &code.to_lowercase(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json(&o)["id"], "77");
    assert!(store.is_allowed("telegram", "77").unwrap());
    let allow = store.allow_path("telegram").unwrap();
    assert_eq!(
        std::fs::metadata(&allow).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A code that is not pending: NOT_FOUND, exit 3, with the hint.
    let o = carapace(
        &state,
        &config,
        &["--json", "pairing", "reject", "telegram", "ZZZZZZZZ"],
    );
    assert_eq!(o.status.code(), Some(3));
    let v = json(&o);
    assert_eq!(v["error"]["code"], "NOT_FOUND");
    assert!(
        v["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("carapace pairing list telegram")
    );
    let o = carapace(&state, &config, &["pairing", "list", "telegram"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("78"));

    // channels status: a receiving channel never started, a send-only one.
    let o = carapace(&state, &config, &["--json", "channels", "status"]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    let ch = v["channels"].as_array().unwrap();
    let tg = ch.iter().find(|c| c["channel"] == "telegram").unwrap();
    assert_eq!(tg["receives"], true);
    assert_eq!(tg["running"], false);
    assert_eq!(tg["pendingPairing"], 1);
    let wh = ch.iter().find(|c| c["channel"] == "webhook").unwrap();
    assert_eq!(wh["receives"], false);
    // A status and a cursor the gateway wrote (its pid is this test's: "running").
    let dir = state.join("channels/telegram");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("status.json"),
        serde_json::json!({"channel": "telegram", "connection": {"state": "reconnecting", "attempt": 3, "error": "could not connect"},
                     "pid": std::process::id(), "startedAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:01:00.000Z",
                     "lastError": "could not connect", "lastErrorAt": "2026-01-01T00:01:00.000Z",
                     "counters": {"received": 5, "duplicates": 0, "answered": 4, "paired": 1, "dropped": 0, "limited": 0, "failed": 0, "skipped": 0}})
            .to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("cursor.json"), r#"{"version":1,"cursor":"1042"}"#).unwrap();
    let o = carapace(&state, &config, &["channels", "status"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("reconnecting (attempt 3)"), "{text}");
    assert!(text.contains("cursor 1042"), "{text}");
    assert!(text.contains("last error"), "{text}");
    assert!(text.contains("could not connect"), "{text}");
    assert!(!text.contains("secret-tg-token"));
}
