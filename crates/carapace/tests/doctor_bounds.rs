//! `carapace doctor` on a tree deeper than its bound: it reports what it found, names where it
//! stopped, and exits non-zero (`SCAN_INCOMPLETE`) instead of reading as a clean scan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use serde_json::Value;

#[test]
fn a_scan_that_hits_its_depth_bound_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let mut deep = ws.clone();
    for _ in 0..70 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    for p in [ws.join("top.png"), deep.join("hidden.png")] {
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = dir.path().join("c.json5");
    std::fs::write(
        &cfg,
        format!(
            "{{agents: {{defaults: {{workspace: {:?}}}}}}}",
            ws.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_carapace"))
        .args(["--json", "--config"])
        .arg(&cfg)
        .arg("doctor")
        .env("CARAPACE_STATE_DIR", dir.path().join("state"))
        .env_remove("CARAPACE_CONFIG")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["error"]["code"], "SCAN_INCOMPLETE", "{v}");
    let d = &v["error"]["details"];
    let stopped = d["stopped"].as_array().unwrap();
    assert!(
        stopped
            .iter()
            .any(|s| s["reason"].as_str().unwrap().contains("deeper than 64")),
        "{v}"
    );
    let found: Vec<&str> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(found.iter().any(|p| p.ends_with("/ws/top.png")), "{v}");

    // The human form says it too.
    let out = Command::new(env!("CARGO_BIN_EXE_carapace"))
        .arg("--config")
        .arg(&cfg)
        .arg("doctor")
        .env("CARAPACE_STATE_DIR", dir.path().join("state"))
        .env_remove("CARAPACE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INCOMPLETE") && text.contains("top.png"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SCAN_INCOMPLETE"));
}
