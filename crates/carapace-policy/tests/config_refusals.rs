//! Values a config file must not get away with: each is `CONFIG_INVALID` naming the JSON path,
//! the value and what is allowed — never a silent default, a half-expanded reference, or a
//! stack overflow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use carapace_policy::{CarapaceError, Config, ConfigError, ErrorCode, LoadEnv};

fn env_var(name: &str) -> Option<String> {
    match name {
        "A" => Some("alpha".into()),
        "B" => Some("beta".into()),
        "HOOK" => Some("https://discord.com/api/webhooks/1/hook-secret-token".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        text,
        "test.json5",
        &LoadEnv {
            var: &env_var,
            home: "/home/u",
            state_dir: "/home/u/.carapace".into(),
        },
    )
}

/// Asserts `text` is refused at `path` with a message containing every one of `says`.
fn refused(text: &str, path: &str, says: &[&str]) {
    let e = match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    };
    assert_eq!(e.code(), ErrorCode::ConfigInvalid, "{text}");
    match &e {
        ConfigError::Invalid {
            path: p, message, ..
        } => {
            assert_eq!(p, path, "{text}: {message}");
            for s in says {
                assert!(message.contains(s), "{text}: {message:?} lacks {s:?}");
            }
        }
        other => panic!("{text}: not a path error: {other}"),
    }
}

#[test]
fn deep_nesting_is_refused_before_any_recursive_parser_runs() {
    // Deep enough to overflow any recursive descent on a small thread stack.
    let n = 200_000;
    let text = format!("{{x: {}{}}}", "[".repeat(n), "]".repeat(n));
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || parse(&text).map(drop))
        .unwrap();
    let e = worker
        .join()
        .expect("parsing overflowed the stack")
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConfigInvalid);
    let m = e.to_string();
    assert!(m.contains("deeper than 64 levels"), "{m}");
    let objects = format!("{}{}", "{a:".repeat(n), "}".repeat(n));
    assert!(
        parse(&objects)
            .unwrap_err()
            .to_string()
            .contains("64 levels")
    );
}

#[test]
fn non_finite_negative_and_absurd_numbers_are_refused() {
    for v in ["NaN", "Infinity", "-Infinity"] {
        refused(
            &format!("{{media: {{ttlHours: {v}}}}}"),
            "media.ttlHours",
            &[v, "finite"],
        );
        refused(
            &format!("{{channels: {{inbox: {{mediaMaxMb: {v}}}}}}}"),
            "channels.inbox.mediaMaxMb",
            &[v],
        );
        refused(
            &format!("{{gateway: {{maxBodyBytes: {v}}}}}"),
            "gateway.maxBodyBytes",
            &[v],
        );
    }
    refused(
        "{media: {ttlHours: -1}}",
        "media.ttlHours",
        &["-1", "allowed: 0 to"],
    );
    refused("{media: {ttlHours: 1e300}}", "media.ttlHours", &["allowed"]);
    refused(
        "{gateway: {maxBodyBytes: -5}}",
        "gateway.maxBodyBytes",
        &["-5"],
    );
    refused(
        "{gateway: {maxBodyBytes: 1e30}}",
        "gateway.maxBodyBytes",
        &[],
    );
    refused(
        "{gateway: {requestTimeoutSeconds: 18446744073709551615}}",
        "gateway.requestTimeoutSeconds",
        &["18446744073709551615", "allowed: 1 to 86400"],
    );
    refused(
        "{channels: {inbox: {mediaMaxMb: 1e12}}}",
        "channels.inbox.mediaMaxMb",
        &["allowed"],
    );
    refused(
        "{agents: {defaults: {sandbox: {prune: {idleHours: 1e200}}}}}",
        "agents.defaults.sandbox.prune.idleHours",
        &["allowed"],
    );
}

#[test]
fn zero_limits_are_refused() {
    refused(
        "{gateway: {maxBodyBytes: 0}}",
        "gateway.maxBodyBytes",
        &["0", "allowed: 1 byte"],
    );
    refused(
        "{browser: {maxPages: 0}}",
        "browser.maxPages",
        &["0", "allowed: 1 to 64"],
    );
    refused(
        "{browser: {maxPages: 100000}}",
        "browser.maxPages",
        &["100000"],
    );
    refused(
        "{gateway: {maxConnections: 0}}",
        "gateway.maxConnections",
        &["0"],
    );
    refused(
        "{gateway: {headerTimeoutSeconds: 0}}",
        "gateway.headerTimeoutSeconds",
        &["0"],
    );
    refused(
        "{gateway: {bodyTimeoutSeconds: 0}}",
        "gateway.bodyTimeoutSeconds",
        &["0"],
    );
    refused(
        "{tools: {exec: {maxOutputBytes: 0}}}",
        "tools.exec.maxOutputBytes",
        &["0"],
    );
}

#[test]
fn extra_roots_must_be_specific_absolute_directories() {
    let p = "tools.message.outboundMediaPolicy.extraRoots[0]";
    let t = |r: &str| {
        format!("{{tools: {{message: {{outboundMediaPolicy: {{extraRoots: [{r:?}]}}}}}}}}")
    };
    refused(&t("/"), p, &["filesystem root", "allowed"]);
    refused(&t("//"), p, &["filesystem root"]);
    refused(&t("/./"), p, &["filesystem root"]);
    refused(&t("/srv/../"), p, &[".."]);
    refused(&t("shared"), p, &["\"shared\"", "not an absolute path"]);
    refused(&t("./shared"), p, &["not an absolute path"]);
    assert!(parse(&t("/srv/shared")).is_ok());
    assert!(parse(&t("~/shared")).is_ok());
    refused(
        "{agents: {defaults: {workspace: 'work'}}}",
        "agents.defaults.workspace",
        &["\"work\"", "absolute"],
    );
    refused("{media: {dir: 'media'}}", "media.dir", &["absolute"]);
    refused(
        "{channels: {inbox: {dir: 'rel/inbox'}}}",
        "channels.inbox.dir",
        &["absolute"],
    );
}

#[test]
fn broken_env_references_are_refused_not_left_literal() {
    refused(
        "{agents: {defaults: {workspace: '/w/${A${B}}'}}}",
        "agents.defaults.workspace",
        &["${A${B}}", "not a ${NAME} reference", "$${"],
    );
    refused(
        "{media: {dir: '/m/${'}}",
        "media.dir",
        &["not a ${NAME} reference"],
    );
    refused(
        "{media: {dir: '/m/${not a var}'}}",
        "media.dir",
        &["${not a var}"],
    );
    // In a secret the text is not echoed.
    let e = parse("{channels: {telegram: {botToken: 'x${A${B}}'}}}").unwrap_err();
    assert!(
        matches!(&e, ConfigError::Invalid { path, .. } if path == "channels.telegram.botToken"),
        "{e}"
    );
    assert!(!e.to_string().contains("x${A"), "{e}");
    // The escape still works, and plain references expand.
    let c = parse("{media: {dir: '/m/$${A}/${B}'}}").unwrap();
    assert_eq!(c.file.media.dir.as_deref(), Some("/m/${A}/beta"));
}

#[test]
fn docker_env_names_must_be_names() {
    for (key, shown) in [("A=B", "\"A=B\""), ("", "\"\""), ("A\\u0000B", "\"A\\0B\"")] {
        refused(
            &format!(
                "{{agents: {{defaults: {{sandbox: {{docker: {{env: {{\"{key}\": '1'}}}}}}}}}}}}"
            ),
            "agents.defaults.sandbox.docker.env",
            &[shown, "allowed: a non-empty name"],
        );
    }
    refused(
        "{agents: {list: [{id: 'a', sandbox: {docker: {env: {'X=1': 'y'}}}}]}}",
        "agents.list[0].sandbox.docker.env",
        &["\"X=1\""],
    );
    refused(
        "{agents: {defaults: {sandbox: {docker: {env: {OK: 'a\\u0000b'}}}}}}",
        "agents.defaults.sandbox.docker.env.OK",
        &["NUL"],
    );
    assert!(parse("{agents: {defaults: {sandbox: {docker: {env: {LANG: 'C.UTF-8'}}}}}}").is_ok());
}

#[test]
fn dangerous_modes_and_umasks_are_refused_at_every_layer() {
    for (key, path) in [
        (
            "{tools: {fs: {newFileMode: 'MODE'}}}",
            "tools.fs.newFileMode",
        ),
        ("{tools: {fs: {newDirMode: 'MODE'}}}", "tools.fs.newDirMode"),
        ("{media: {fileMode: 'MODE'}}", "media.fileMode"),
    ] {
        for (mode, bit) in [
            ("4755", "setuid"),
            ("2755", "setgid"),
            ("1755", "sticky"),
            ("0666", "world-write"),
            ("0777", "world-write"),
        ] {
            refused(&key.replace("MODE", mode), path, &[mode, bit, "allowed"]);
        }
        assert!(parse(&key.replace("MODE", "0640")).is_ok());
    }
    for (text, path) in [
        (
            "{agents: {defaults: {sandbox: {umask: 'U'}}}}",
            "agents.defaults.sandbox.umask",
        ),
        (
            "{agents: {entries: {ops: {sandbox: {umask: 'U'}}}}}",
            "agents.entries.ops.sandbox.umask",
        ),
        (
            "{agents: {list: [{id: 'x', sandbox: {umask: 'U'}}]}}",
            "agents.list[0].sandbox.umask",
        ),
    ] {
        for u in ["0000", "0020", "0070"] {
            refused(&text.replace('U', u), path, &[u, "world-writable", "002"]);
        }
        refused(&text.replace('U', "7022"), path, &["7022"]);
        assert!(parse(&text.replace('U', "0022")).is_ok());
        assert!(parse(&text.replace('U', "0077")).is_ok());
    }
}

#[test]
fn a_webhook_url_is_a_secret() {
    let c = parse("{channels: {webhook: {url: '${HOOK}'}}}").unwrap();
    let url = c.file.channels["webhook"].url.as_ref().unwrap();
    assert_eq!(
        url.expose(),
        Some("https://discord.com/api/webhooks/1/hook-secret-token")
    );
    let shown = serde_json::to_string(&c.file).unwrap();
    assert!(shown.contains("${HOOK}"), "{shown}");
    assert!(!shown.contains("hook-secret-token"), "{shown}");

    let c = parse(
        "{channels: {webhook: {url: 'https://hooks.slack.com/services/T0/B0/literal-secret'}, matrix: {homeserver: 'https://bot:pw@m.example.org/?access_token=tok'}}}",
    )
    .unwrap();
    let shown = serde_json::to_string(&c.file).unwrap();
    assert!(shown.contains("https://hooks.slack.com/***"), "{shown}");
    for secret in ["literal-secret", "T0/B0", "pw", "tok"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(!format!("{:?}", c.file).contains("literal-secret"));

    // A bad URL is refused without echoing it.
    let e = parse("{channels: {webhook: {url: 'ftp://x/secret-path'}}}").unwrap_err();
    assert!(matches!(&e, ConfigError::Invalid { path, .. } if path == "channels.webhook.url"));
    assert!(!e.to_string().contains("secret-path"), "{e}");
}
