//! The attack on `read` windows: a 3 GiB file without a line break, made by one `truncate`
//! in the real sandbox, read with `offset`/`limit`. It used to buffer the whole line and abort
//! the gateway on allocation; now every read answers from at most `maxReadBytes` of memory
//! (checked on this process's peak RSS) and at most 64 × `maxReadBytes` of reading. Also
//! millions of lines, and a window whose lines exceed the cap.
//!
//! One test in its own binary, so the peak-RSS check sees only this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:7";
const MIB: u64 = 1 << 20;

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn hostile_files_are_read_within_the_caps() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env(
        r#"mode: "all", workspaceAccess: "rw""#,
        "tools: { fs: { maxReadBytes: 1048576 } }",
    );
    // The attack, as the agent does it: one command in its sandbox.
    let (code, _, err) = sh(&e, S, "truncate -s 3G huge && ls -ls huge").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::metadata(e.ws.join("huge")).unwrap().len(), 3 << 30);
    let rss_before = peak_rss();

    // Whole: refused from fstat.
    let er = call(&e, S, "read", json!({"path": "huge"}))
        .await
        .unwrap_err();
    assert_eq!(er.code(), ErrorCode::TooLarge);
    // A window of the first line: the line alone is 3 GiB.
    let er = call(
        &e,
        S,
        "read",
        json!({"path": "huge", "offset": 1, "limit": 10}),
    )
    .await
    .unwrap_err();
    assert_eq!(er.code(), ErrorCode::TooLarge);
    assert_eq!(er.0.details["path"], "/workspace/huge");
    assert_eq!(er.0.details["line"], 1);
    assert_eq!(er.0.details["limit"], MIB);
    assert!(er.0.hint.as_deref().unwrap().contains("head -c"), "{er:?}");
    // Line 2 does not exist: answered from the file's map (a hole), not by reading 3 GiB.
    let v = ok(&e, S, "read", json!({"path": "huge", "offset": 2})).await;
    assert_eq!(
        (v["lines"].as_u64(), v["totalLines"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(v["content"], "");
    assert_eq!(v["truncated"], false);
    let grown = peak_rss().saturating_sub(rss_before);
    assert!(
        grown < 64 * MIB,
        "reading a 3 GiB line grew the peak RSS by {grown} bytes"
    );

    // Millions of lines (8 M lines, 16 MiB; the window cap is 1 MiB): a deep window, and the cap on a long one.
    let (code, _, err) = sh(
        &e,
        S,
        "seq 1 8000000 | sed 's/.*/x/' > many && echo last >> many",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v = ok(
        &e,
        S,
        "read",
        json!({"path": "many", "offset": 8000001, "limit": 5}),
    )
    .await;
    assert_eq!(v["content"], "last\n");
    assert_eq!(v["totalLines"], 8_000_001);
    let v = ok(
        &e,
        S,
        "read",
        json!({"path": "/workspace/many", "offset": 3}),
    )
    .await;
    let content = v["content"].as_str().unwrap();
    assert_eq!(content.len() as u64, MIB, "whole lines up to the cap");
    assert_eq!(v["lines"], MIB / 2);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["nextOffset"], 3 + MIB / 2);
    let v = ok(
        &e,
        S,
        "read",
        json!({"path": "many", "offset": v["nextOffset"], "limit": 1}),
    )
    .await;
    assert_eq!(
        (v["content"].as_str(), v["truncated"].as_bool()),
        (Some("x\n"), Some(true))
    );

    // A window past the scan budget (64 x 1 MiB) of real bytes: refused, with a hint.
    let (code, _, err) = sh(
        &e,
        S,
        "head -c 70000000 /dev/zero | tr '\\0' 'y' > wide && echo >> wide && echo tail >> wide",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let er = call(&e, S, "read", json!({"path": "wide", "offset": 2}))
        .await
        .unwrap_err();
    assert_eq!(er.code(), ErrorCode::TooLarge);
    assert!(er.0.hint.as_deref().unwrap().contains("sed -n"), "{er:?}");
    assert_eq!(er.0.details["path"], "/workspace/wide");
    let grown = peak_rss().saturating_sub(rss_before);
    assert!(grown < 64 * MIB, "peak RSS grew by {grown} bytes");
}
