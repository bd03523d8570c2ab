//! The attack on `ls`: a directory of 150 000 entries, made by one command like an agent
//! would (the reported attack used 300 000, which came back whole: 62 MB of JSON, 775 MB
//! RSS). Now `ls` returns the first 1000 entries by name, `truncated: true` and the exact
//! `total`, from a streamed directory.
//!
//! One test in its own binary, so the peak-RSS check sees only this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const S: &str = "agent:main:main";

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
async fn a_huge_directory_is_listed_within_the_cap() {
    let e = env(r#"mode: "off""#, "");
    let (code, _, err) = sh(
        &e,
        S,
        "mkdir big && cd big && seq -f 'f%06g' 1 150000 | xargs touch && touch .carapace-tmp-x-0123456789ab",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let before = peak_rss();
    let v = ok(&e, S, "ls", json!({"path": "big"})).await;
    let body = serde_json::to_vec(&v).unwrap();
    assert!(body.len() < 200_000, "the listing is {} bytes", body.len());
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1000);
    assert_eq!(entries[0]["name"], "f000001");
    assert_eq!(entries[999]["name"], "f001000");
    assert_eq!(v["truncated"], true);
    assert_eq!(v["total"], 150_000, "staging files are not counted");
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "listing grew the peak RSS by {grown} bytes"
    );

    // `limit` asks for fewer, or more up to 10 000.
    let v = ok(&e, S, "ls", json!({"path": "/workspace/big", "limit": 3})).await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);
    let v = ok(&e, S, "ls", json!({"path": "big", "limit": 1_000_000})).await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 10_000);
    // A small directory: whole, not truncated.
    let v = ok(&e, S, "ls", json!({})).await;
    assert_eq!(v["truncated"], false);
    assert_eq!(v["total"], v["entries"].as_array().unwrap().len());
}
