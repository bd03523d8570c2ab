//! `carapace agent`, `carapace chat` and `carapace sessions` as a user runs them: the binary,
//! a config file naming a scripted model server (the model, its tool calls, streamed answers),
//! a state dir of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use serde_json::{Value, json};

const KEY: &str = "sk-cli-test-key-0123456789";

struct Env {
    _d: tempfile::TempDir,
    state: PathBuf,
    ws: PathBuf,
    config: PathBuf,
}

/// A config with model `p/m` at `srv`, speaking `api` (no model when `srv` is `None`).
fn env(srv: Option<&ModelServer>, api: Api) -> Env {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let models = match srv {
        Some(s) => format!(
            r#"models: {{ mode: "replace", providers: {{ p: {{ baseUrl: "{}", apiKey: "${{CLI_TEST_KEY}}", api: "{}",
                 models: [{{ id: "m", contextWindow: 64000, maxTokens: 1024 }}] }} }} }},"#,
            s.base_url(),
            match api {
                Api::OpenAi => "openai-completions",
                Api::Anthropic => "anthropic-messages",
            }
        ),
        None => String::new(),
    };
    let model = if srv.is_some() {
        r#"model: "p/m","#
    } else {
        ""
    };
    let config = d.path().join("c.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{ {models} agents: {{ defaults: {{ {model} workspace: "{}", sandbox: {{ mode: "off" }} }} }} }}"#,
            ws.display()
        ),
    )
    .unwrap();
    Env {
        _d: d,
        state,
        ws,
        config,
    }
}

fn cmd(e: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_carapace"));
    c.arg("--config")
        .arg(&e.config)
        .args(args)
        .env("CARAPACE_STATE_DIR", &e.state)
        .env("CLI_TEST_KEY", KEY)
        .env_remove("CARAPACE_CONFIG");
    c
}

/// Runs the binary off the async runtime's workers (the model server runs on them).
async fn carapace(e: &Env, args: &[&str]) -> Output {
    let mut c = cmd(e, args);
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_a_turn_with_a_tool_and_sessions_show_it() {
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Step::with(|seen| {
            assert_eq!(seen.last_user_text(), "save a note");
            Reply::tools(vec![call(
                "write",
                json!({"path": "note.txt", "content": "remember the milk\n"}),
            )])
        }))
        .step(Reply::text("Saved the note."))
        .step(Step::with(|seen| {
            // Second run, same (default) session: the first turn is in the history.
            assert_eq!(seen.user_texts().len(), 2, "{:?}", seen.user_texts());
            Reply::tools(vec![call("read", json!({"path": "missing.txt"}))])
        }))
        .step(Reply::text("There is no such file."))
        .start()
        .await;
    let e = env(Some(&srv), Api::OpenAi);
    let o = carapace(&e, &["--json", "agent", "--message", "save a note"]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["reply"], "Saved the note.");
    assert_eq!(v["sessionKey"], "agent:main:main");
    assert_eq!(v["model"], "p/m");
    assert_eq!(v["tools"], json!([{"name": "write", "ok": true}]));
    assert_eq!(
        std::fs::read_to_string(e.ws.join("note.txt")).unwrap(),
        "remember the milk\n"
    );

    // Human output: the reply on stdout, the tools on stderr (a failed one says so).
    let o = carapace(&e, &["agent", "-m", "read missing.txt"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o).trim(), "There is no such file.");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[tool] read: error"), "{err}");

    // sessions list / show / reset.
    let v = json(&carapace(&e, &["--json", "sessions", "list"]).await);
    let list = v["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["sessionKey"], "agent:main:main");
    assert_eq!(list[0]["turns"], 2);
    let first_id = list[0]["sessionId"].as_str().unwrap().to_string();
    let v = json(&carapace(&e, &["--json", "sessions", "show", "agent:main:main"]).await);
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"tool_result"), "{kinds:?}");
    assert!(v.to_string().contains("save a note"));
    let o = carapace(&e, &["sessions", "show", "agent:main:main"]).await;
    assert!(stdout(&o).contains("save a note"), "{}", stdout(&o));
    let v = json(&carapace(&e, &["--json", "sessions", "reset", "agent:main:main"]).await);
    let new_id = v["sessionId"].as_str().unwrap();
    assert_ne!(new_id, first_id);
    let v = json(&carapace(&e, &["--json", "sessions", "list"]).await);
    assert_eq!(v["sessions"][0]["sessionId"], new_id);
    // The old transcript is kept.
    assert!(
        e.state
            .join(format!("agents/main/sessions/{first_id}.jsonl"))
            .exists()
    );
    // An unknown key is NOT_FOUND with its exit code.
    let o = carapace(&e, &["--json", "sessions", "show", "agent:main:nobody"]).await;
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(json(&o)["error"]["code"], "NOT_FOUND");
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_answers_and_handles_new_and_exit() {
    let srv = ModelServer::builder(Api::Anthropic, KEY)
        .step(Step::with(|seen| {
            assert!(seen.streamed());
            assert_eq!(seen.last_user_text(), "hello");
            Reply::text("Hi there, human.")
        }))
        .step(Step::with(|seen| {
            // After /new the history is empty again.
            assert_eq!(seen.user_texts(), vec!["second".to_string()]);
            Reply::text("A fresh start.")
        }))
        .start()
        .await;
    let e = env(Some(&srv), Api::Anthropic);
    let mut c = cmd(&e, &["chat", "--session", "agent:main:cli-test"]);
    let o = tokio::task::spawn_blocking(move || {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"hello\n/new\nsecond\n/exit\nnever sent\n")
            .unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    assert!(
        out.contains("Hi there, human."),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("(new session "), "{out}");
    assert!(out.contains("A fresh start."), "{out}");
    assert_eq!(
        srv.request_count(),
        2,
        "nothing after /exit reached the model"
    );
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_without_a_model_names_the_key_to_set() {
    let e = env(None, Api::OpenAi);
    let o = carapace(&e, &["--json", "agent", "--message", "hi"]).await;
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    assert_eq!(v["error"]["code"], "MODEL_NOT_CONFIGURED");
    assert!(
        v["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("agents.defaults.model.primary"),
        "{v}"
    );
}

/// `config show --effective` shows the model settings with the key as its reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_show_effective_shows_models_redacted() {
    let srv = ModelServer::builder(Api::OpenAi, KEY).start().await;
    let e = env(Some(&srv), Api::OpenAi);
    let o = carapace(&e, &["--json", "config", "show", "--effective"]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["models"]["defaults"]["model"]["primary"], "p/m", "{v}");
    assert_eq!(v["models"]["providers"]["p"]["apiKey"], "${CLI_TEST_KEY}");
    assert!(!stdout(&o).contains(KEY));
    let o = carapace(&e, &["--json", "config", "validate"]).await;
    let v = json(&o);
    let warnings = v["warnings"].to_string();
    assert!(!warnings.contains("models"), "{warnings}");
}

/// `carapace gateway run` starts the agent with the gateway: the webhook answers through the
/// model at once; enabling `/v1/chat/completions` in the file is picked up by the hot reload
/// (the agent is rebuilt on the new config); SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_run_serves_the_agent_and_rebuilds_it_on_reload() {
    use std::io::{BufRead as _, BufReader};
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .then_repeat(Step::with(|seen| {
            Reply::text(&format!(
                "echo: {}",
                seen.last_user_text().lines().last().unwrap_or("")
            ))
        }))
        .start()
        .await;
    let e = env(Some(&srv), Api::OpenAi);
    let base = std::fs::read_to_string(&e.config).unwrap();
    let with = |extra: &str| {
        let t = base.trim_end().trim_end_matches('}');
        format!("{t}, hooks: {{ enabled: true, token: \"hook-tok\" }}, {extra} }}")
    };
    std::fs::write(&e.config, with("")).unwrap();
    let mut c = cmd(&e, &["--json", "gateway", "run", "--bind", "127.0.0.1:0"]);
    c.env_remove("CARAPACE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?}"));
    let addr = ready["address"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let token = std::fs::read_to_string(e.state.join("secrets/gateway-token"))
        .unwrap()
        .trim()
        .to_string();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let r = http
        .post(format!("http://{addr}/hooks/agent"))
        .header("x-openclaw-token", "hook-tok")
        .json(&json!({"message": "ping", "name": "CI"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["reply"], "echo: ping", "{v}");

    let chat = || async {
        http.post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth(&token)
            .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(chat().await.status().as_u16(), 404, "off by default");
    std::fs::write(
        &e.config,
        with("gateway: { http: { endpoints: { chatCompletions: { enabled: true } } } }"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let v: Value = loop {
        let r = chat().await;
        if r.status().as_u16() == 200 {
            break r.json().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reload never enabled the endpoint"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hi");

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
