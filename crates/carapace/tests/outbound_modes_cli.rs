//! Outbound file modes through the CLI, with the `carapace` binary running under `umask 077`
//! (as an agent's tools often do), against the inbox and a real Synapse (scripts/synapse.sh):
//! `media save` of a private file → 0644 → `message upload-file` arrives byte-identical; the
//! same kind of file at 0600 → exit 3 with `OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE` and nothing
//! sent; `doctor` finds it (exit 3, `FILES_NOT_SENDABLE`) and `--fix` fixes it (never a
//! secret-looking file), after which doctor exits 0; `/etc/hostname` is outside the roots.
//! The inbox part needs no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use carapace_testkit::png::png;
use carapace_testkit::synapse::synapse;
use serde_json::{Value, json};

struct Run {
    code: i32,
    json: Value,
    stderr: String,
}

fn carapace(state: &Path, config: &Path, args: &[&str]) -> Run {
    let bin = env!("CARGO_BIN_EXE_carapace");
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$@\"")
        .arg("sh")
        .arg(bin)
        .arg("--json")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("CARAPACE_STATE_DIR", state)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn inbox_send_media_save_doctor_without_a_server() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let cfg = t.path().join("c.json5");
    std::fs::write(&cfg, "{}").unwrap();
    // A private file, as a umask-077 process would leave it.
    let ws = state.join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("shot.png"), png(2, 2, 3)).unwrap();
    std::fs::set_permissions(
        ws.join("shot.png"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(ws.join("id_ed25519"), "KEY").unwrap();
    std::fs::set_permissions(
        ws.join("id_ed25519"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    let r = carapace(
        &state,
        &cfg,
        &[
            "message",
            "upload-file",
            "--target",
            "user:me",
            "--file-path",
            "/workspace/shot.png",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.json["ok"], false);
    assert_eq!(
        r.json["error"]["code"],
        "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE"
    );
    assert_eq!(
        r.json["error"]["message"],
        "File /workspace/shot.png has mode 0600 and cannot be sent over an outbound channel."
    );
    assert_eq!(r.json["error"]["details"]["mode"], "0600");
    assert!(
        !state.join("inbox").join("user-me").exists()
            || std::fs::read_dir(state.join("inbox/user-me"))
                .unwrap()
                .count()
                == 0
    );

    let r = carapace(
        &state,
        &cfg,
        &["media", "save", ws.join("shot.png").to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let saved = r.json["path"].as_str().unwrap().to_string();
    assert_eq!(mode(Path::new(&saved)), 0o644);
    assert_eq!(mode(&state.join("media")), 0o755);
    let r = carapace(
        &state,
        &cfg,
        &[
            "message",
            "send",
            "--target",
            "user:me",
            "--message",
            "hi",
            "--media",
            &saved,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let remote = r.json["attachments"][0]["remoteId"].as_str().unwrap();
    assert_eq!(
        std::fs::read(state.join("inbox").join(remote)).unwrap(),
        png(2, 2, 3)
    );

    let r = carapace(
        &state,
        &cfg,
        &[
            "message",
            "send",
            "--target",
            "user:me",
            "--media",
            "/etc/hostname",
        ],
    );
    assert_eq!(
        (r.code, r.json["error"]["code"].as_str()),
        (3, Some("OUTBOUND_MEDIA_OUTSIDE_ROOTS"))
    );

    let r = carapace(&state, &cfg, &["doctor"]);
    assert_eq!(r.code, 3, "findings are a non-zero exit: {}", r.stderr);
    assert_eq!(r.json["error"]["code"], "FILES_NOT_SENDABLE", "{}", r.json);
    let findings = r.json["error"]["details"]["findings"].as_array().unwrap();
    let paths: Vec<&str> = findings
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("workspace/shot.png")),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f["code"] == "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE")
    );
    let r = carapace(&state, &cfg, &["doctor", "--fix"]);
    assert_eq!(r.code, 3, "the secret is left: {}", r.json);
    assert_eq!(r.json["error"]["details"]["fixed"], 1, "{}", r.json);
    assert_eq!(mode(&ws.join("shot.png")), 0o644);
    assert_eq!(
        mode(&ws.join("id_ed25519")),
        0o600,
        "a secret is never widened"
    );
    std::fs::remove_file(ws.join("id_ed25519")).unwrap();
    let r = carapace(&state, &cfg, &["doctor"]);
    assert_eq!(r.code, 0, "nothing left: {}", r.json);
    assert_eq!(r.json["findings"], json!([]));
    let r = carapace(
        &state,
        &cfg,
        &[
            "message",
            "upload-file",
            "--target",
            "user:me",
            "--file-path",
            "/workspace/shot.png",
            "--caption",
            "c",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = carapace(
        &state,
        &cfg,
        &[
            "message",
            "send",
            "--channel",
            "matrix",
            "--target",
            "room:!x:y",
            "--message",
            "x",
        ],
    );
    assert_eq!(
        (r.code, r.json["error"]["code"].as_str()),
        (2, Some("CHANNEL_NOT_CONFIGURED"))
    );
    assert!(r.json["error"]["hint"].as_str().is_some());
}

#[test]
fn a_private_file_to_matrix_through_the_cli() {
    let Some(hs) = synapse() else {
        return;
    };
    let (url, token) = (hs.url.clone(), hs.bot.token.clone());
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = t.path().join("c.json5");
    std::fs::write(&cfg, format!(r#"{{ channels: {{ matrix: {{ homeserver: "{url}", accessToken: "${{MX_TOKEN_TEST}}" }} }} }}"#)).unwrap();
    // Secrets come from the environment.
    // SAFETY-free: the env var is given to the child only.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let room = rt.block_on(hs.create_room(&hs.bot, json!({})));
    let run = |args: &[&str]| {
        let bin = env!("CARGO_BIN_EXE_carapace");
        let out = Command::new("sh")
            .arg("-c")
            .arg("umask 077; exec \"$@\"")
            .arg("sh")
            .arg(bin)
            .arg("--json")
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("CARAPACE_STATE_DIR", &state)
            .env("MX_TOKEN_TEST", &token)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_str::<Value>(String::from_utf8_lossy(&out.stdout).trim())
                .unwrap_or(Value::Null),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let target = format!("room:{room}");
    let src = t.path().join("shot.png");
    std::fs::write(&src, png(2, 2, 7)).unwrap();
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, saved, err) = run(&["media", "save", src.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let media = saved["path"].as_str().unwrap().to_string();
    let (code, sent, err) = run(&[
        "message",
        "upload-file",
        "--channel",
        "matrix",
        "--target",
        &target,
        "--file-path",
        &media,
        "--caption",
        "a private file",
    ]);
    assert_eq!(code, 0, "{err}");
    let mxc = sent["attachments"][0]["remoteId"]
        .as_str()
        .unwrap()
        .to_string();
    let got = rt.block_on(hs.download(&hs.bot, &mxc));
    assert_eq!(got, png(2, 2, 7));
    let count = || rt.block_on(hs.messages(&hs.bot, &room, 100)).len();
    let before = count();
    // The failure users hit: the same file at 0600 in the media dir.
    std::fs::set_permissions(&media, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, e, _) = run(&[
        "message",
        "upload-file",
        "--channel",
        "matrix",
        "--target",
        &target,
        "--file-path",
        &media,
    ]);
    assert_eq!(code, 3);
    assert_eq!(e["error"]["code"], "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
    assert_eq!(
        e["error"]["message"],
        format!("File {media} has mode 0600 and cannot be sent over an outbound channel.")
    );
    let hint = e["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("chmod 644")
            && hint.contains("media save")
            && hint.contains("allowOwnerOnly")
    );
    assert_eq!(count(), before, "nothing was sent");
}

/// EACCES from the OS (a file owned by another user, e.g. written by a sandbox that ran as
/// another uid) is PERMISSION_DENIED with the path, the owner, the mode and carapace's uid —
/// never a raw errno or a 500. Needs root (to run carapace as `nobody` with setpriv).
#[test]
fn eacces_is_permission_denied_with_owner_mode_and_uid() {
    if !carapace_testkit::require_root()
        || !carapace_testkit::require(
            "setpriv",
            carapace_testkit::have_program("setpriv"),
            "apt-get install -y util-linux",
        )
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let perm = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    perm(t.path(), 0o755);
    let state = t.path().join("state");
    let ws = state.join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    perm(&state, 0o755);
    perm(&ws, 0o755);
    let cfg = t.path().join("c.json5");
    std::fs::write(&cfg, "{}").unwrap();
    perm(&cfg, 0o644);
    std::fs::write(ws.join("root.png"), png(2, 2, 1)).unwrap();
    perm(&ws.join("root.png"), 0o600);
    let bin = env!("CARGO_BIN_EXE_carapace");
    // The binary must be reachable by nobody: copy it next to the config.
    let exe = t.path().join("carapace");
    std::fs::copy(bin, &exe).unwrap();
    perm(&exe, 0o755);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--json", "--config"])
        .arg(&cfg)
        .args([
            "message",
            "upload-file",
            "--target",
            "user:me",
            "--file-path",
            "/workspace/root.png",
        ])
        .env("CARAPACE_STATE_DIR", &state)
        .env("HOME", t.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["error"]["code"], "PERMISSION_DENIED", "{v}");
    let d = &v["error"]["details"];
    assert_eq!(d["ownerUid"], 0);
    assert_eq!(d["mode"], "0600");
    assert_eq!(d["processUid"], 65534);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("/workspace/root.png")
            && msg.contains("uid 0")
            && msg.contains("0600")
            && msg.contains("65534"),
        "{msg}"
    );
}

/// The same refusal over the gateway's `POST /tools/invoke`, a 0600 file is an HTTP 403
/// with the typed JSON error — never a bare `500: Internal Server Error`.
#[tokio::test]
async fn over_http_a_0600_file_is_a_typed_403_not_a_bare_500() {
    use std::io::BufRead as _;
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let stderr = std::fs::File::create(t.path().join("gw.stderr")).unwrap();
    // POST /tools/invoke serves the file tools only when gateway.tools.allow lists them.
    let cfg = t.path().join("carapace.json5");
    std::fs::write(&cfg, r#"{ gateway: { tools: { allow: ["write"] } } }"#).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_carapace"))
        .args(["gateway", "run", "--bind", "127.0.0.1:0", "--json"])
        .arg("--config")
        .arg(&cfg)
        .env("CARAPACE_STATE_DIR", &state)
        .env_remove("CARAPACE_TOKEN")
        .env_remove("CARAPACE_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    let base = ready["address"].as_str().unwrap_or_default().to_string();
    let token = std::fs::read_to_string(state.join("secrets/gateway-token"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let invoke = |body: Value| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/tools/invoke"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // The write tool (under the gateway's umask 077) makes a sendable 0644 PNG.
    let (st, v) = invoke(
        json!({"tool": "write", "args": {"path": "shot.png", "content": "not really a png"}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = invoke(json!({"tool": "message", "action": "upload-file", "args": {"target": "user:me", "filePath": "shot.png"}})).await;
    assert_eq!(st, 200, "{v}");
    // The same file at 0600.
    let ws = state.join("workspace");
    std::fs::set_permissions(
        ws.join("shot.png"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let (st, v) = invoke(json!({"tool": "message", "action": "upload-file", "args": {"target": "user:me", "filePath": "shot.png"}})).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
    assert_eq!(
        v["error"]["message"],
        "File shot.png has mode 0600 and cannot be sent over an outbound channel."
    );
    assert_eq!(v["error"]["details"]["mode"], "0600");
}
