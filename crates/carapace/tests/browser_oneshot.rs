//! A one-shot `carapace tool invoke browser` stops its Chromium before it exits and leaves
//! nothing in the temp dir: neither the profile (`carapace-chromium-*`) nor Chromium's own
//! temp files (`org.chromium.Chromium.*`), which live inside the profile. The binary runs with
//! a private `TMPDIR`, so anything left behind is seen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

#[test]
fn one_shot_browser_call_leaves_no_temp_dirs() {
    if !carapace_testkit::require(
        "chromium",
        carapace_testkit::have_program("chromium"),
        "apt-get install -y chromium",
    ) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tmp = t.path().join("tmp");
    let state = t.path().join("state");
    let ws = state.join("workspace");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("page.html"),
        "<!doctype html><body style='background:#0f0'>hello</body>",
    )
    .unwrap();
    let cfg = t.path().join("c.json5");
    std::fs::write(
        &cfg,
        r#"{ agents: { defaults: { sandbox: { mode: "off" } } }, browser: { timeoutSeconds: 60 } }"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_carapace"))
        .args(["--json", "--config"])
        .arg(&cfg)
        .args([
            "tool",
            "invoke",
            "browser",
            "--session",
            "agent:main:main",
            "--args",
            r#"{"url": "file:///workspace/page.html", "width": 200, "height": 100}"#,
        ])
        .env("CARAPACE_STATE_DIR", &state)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["result"]["mime"], "image/png", "{v}");
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}
