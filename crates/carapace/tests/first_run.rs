//! A new user's first run, as README.md and docs/getting-started.md tell it: every command of
//! the README's "Use" block runs verbatim on a fresh state dir, `scripts/up.sh` leaves
//! `carapace` on PATH (or prints the line to add), every command creates the state dir
//! private, usage errors honour `--json`, a port in use says so, and messages say where on the
//! host `/workspace` is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_carapace");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or(Value::Null)
    }
}

/// A fresh user: an empty HOME, no carapace variables, `carapace` first on PATH.
struct User {
    dir: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(BIN, dir.path().join("bin/carapace")).unwrap();
        User { dir }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn state(&self) -> PathBuf {
        self.home().join(".carapace")
    }
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("HOME", self.home())
            .env("PATH", path)
            .env_remove("CARAPACE_STATE_DIR")
            .env_remove("CARAPACE_CONFIG")
            .env_remove("CARAPACE_TOKEN")
            .current_dir(self.home())
            .stdin(Stdio::null());
        c
    }
    /// One shell line, as a user would type it.
    fn sh(&self, line: &str) -> Out {
        let o = self.command("sh").arg("-c").arg(line).output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    fn run(&self, args: &[&str]) -> Out {
        let o = self.command(BIN).args(args).output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Kills the child on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The command lines of the README's "Use" block.
fn readme_use_block() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let use_section = &readme[readme.find("\n## Use").expect("README has a Use section")..];
    let start = use_section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + use_section[start..].find("```").unwrap();
    use_section[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_use_block_runs_verbatim_on_a_fresh_state_dir() {
    let lines = readme_use_block();
    assert!(lines.len() >= 8, "{lines:?}");
    let u = User::new();
    let mut gateway = None;
    for line in &lines {
        assert!(line.starts_with("carapace "), "{line}");
        if line.starts_with("carapace up") {
            // The README's gateway binds 127.0.0.1:18789; on a machine where that port is taken
            // the answer must be ADDRESS_IN_USE naming it.
            let free = std::net::TcpListener::bind("127.0.0.1:18789").is_ok();
            let mut child = u
                .command("sh")
                .arg("-c")
                .arg(format!("exec {line}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut first = String::new();
            if free {
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut first)
                    .unwrap();
                assert!(
                    first.contains("listening on http://127.0.0.1:18789"),
                    "{line}: {first:?}"
                );
                gateway = Some(Running(child));
            } else {
                let out = child.wait_with_output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(4), "{line}: {err}");
                assert!(
                    err.contains("ADDRESS_IN_USE") && err.contains("18789"),
                    "{err}"
                );
            }
            continue;
        }
        let out = u.sh(line);
        assert_eq!(
            out.code, 0,
            "{line}\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        if line.contains("--json") {
            assert_eq!(out.json()["ok"], true, "{line}: {}", out.stdout);
        }
    }
    drop(gateway);
    assert_eq!(mode(&u.state()), 0o700);
    assert!(u.state().join("workspace/hello.txt").is_file());
}

/// The README's `config show --effective --channel telegram` on the default config (no
/// channels.telegram): the policy its sessions get, and a note that it is not configured. A
/// name carapace does not know is still refused.
#[test]
fn effective_policy_of_an_unconfigured_channel_is_shown_with_a_note() {
    let u = User::new();
    let out = u.run(&["config", "show", "--effective", "--channel", "telegram"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("channel \"telegram\" is not configured"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("mode: \"off\""), "{}", out.stdout);
    let out = u.run(&[
        "--json",
        "config",
        "show",
        "--effective",
        "--channel",
        "telegram",
    ]);
    assert_eq!(out.json()["channelConfigured"], false, "{}", out.stdout);
    let out = u.run(&[
        "--json",
        "config",
        "show",
        "--effective",
        "--channel",
        "telegrm",
    ]);
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["error"]["code"], "CHANNEL_NOT_CONFIGURED");
}

#[test]
fn every_first_command_creates_the_state_dir_private() {
    for args in [
        &["config", "validate"][..],
        &[
            "tool",
            "invoke",
            "write",
            "--args",
            r#"{"path": "a.txt", "content": "x"}"#,
        ][..],
        &["doctor"][..],
        &["sandbox", "explain"][..],
    ] {
        let u = User::new();
        let out = u.sh(&format!(
            "umask 022; carapace {}",
            args.iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_eq!(mode(&u.state()), 0o700, "{args:?}");
    }
}

/// `CARAPACE_STATE_DIR=./state` is the directory below the one the command runs in, for the
/// state dir itself and for what is created inside it (the inbox, the workspace).
#[test]
fn a_relative_state_dir_is_taken_from_the_current_directory() {
    let u = User::new();
    let o = u
        .command(BIN)
        .env("CARAPACE_STATE_DIR", "./state")
        .args([
            "--json",
            "message",
            "send",
            "--target",
            "user:me",
            "--message",
            "hi",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let state = u.home().join("state");
    assert_eq!(mode(&state), 0o700);
    let sent: Vec<_> = std::fs::read_dir(state.join("inbox/user-me"))
        .unwrap()
        .collect();
    assert_eq!(sent.len(), 1, "{stdout}");
}

#[test]
fn usage_errors_with_json_print_the_envelope_on_stdout() {
    let u = User::new();
    for args in [
        &["--json", "config", "valdate"][..],
        &["--json", "message", "upload-file", "--target", "user:me"][..],
        &["sandbox", "lsit", "--json"][..],
    ] {
        let out = u.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        let v = out.json();
        assert_eq!(v["ok"], false, "{args:?}: stdout {:?}", out.stdout);
        assert_eq!(v["error"]["code"], "BAD_REQUEST", "{v}");
        assert!(v["error"]["hint"].as_str().unwrap().contains("--help"));
    }
    let out = u.run(&["--json", "config", "valdate"]);
    assert!(
        out.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("validate"),
        "the suggestion is kept"
    );
    let out = u.run(&["config", "valdate"]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("valdate"), "{}", out.stderr);
    let out = u.run(&["--json", "--help"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Usage"));
}

#[test]
fn a_port_in_use_is_address_in_use_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let u = User::new();
    let out = u.run(&["--json", "gateway", "run", "--no-reload", "--bind", &addr]);
    let v = out.json();
    assert_eq!(out.code, 4, "{v} {}", out.stderr);
    assert_eq!(v["error"]["code"], "ADDRESS_IN_USE", "{v}");
    assert_eq!(v["error"]["details"]["bind"], addr.as_str());
    assert!(v["error"]["message"].as_str().unwrap().contains(&addr));
    assert!(v["error"]["hint"].as_str().unwrap().contains("--bind"));
}

#[test]
fn up_says_where_workspace_is_on_the_host() {
    let u = User::new();
    let mut child = u
        .command(BIN)
        .args(["up", "--no-reload", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let ws = u.state().join("workspace").display().to_string();
    let line = BufReader::new(stdout)
        .lines()
        .take(40)
        .map(Result::unwrap)
        .find(|l| l.contains("/workspace:"))
        .expect("a /workspace line in the banner");
    assert!(line.contains(&ws), "{line}");
}

#[test]
fn not_found_for_a_container_path_names_the_host_directory() {
    let u = User::new();
    let ws = u.state().join("workspace").display().to_string();
    for args in [
        &[
            "--json",
            "message",
            "upload-file",
            "--target",
            "user:me",
            "--file-path",
            "/workspace/nope.txt",
        ][..],
        &[
            "--json",
            "tool",
            "invoke",
            "read",
            "--args",
            r#"{"path": "/workspace/nope.txt"}"#,
        ][..],
    ] {
        let out = u.run(args);
        let v = out.json();
        assert_eq!(out.code, 3, "{v}");
        assert_eq!(v["error"]["code"], "NOT_FOUND", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(&ws), "{v}");
        assert_eq!(v["error"]["details"]["hostDir"], ws.as_str(), "{v}");
    }
}

#[test]
fn a_media_url_on_the_command_line_stays_a_url() {
    let u = User::new();
    let url = "https://127.0.0.1:9/x.png";
    let out = u.run(&[
        "--json", "message", "send", "--target", "user:me", "--media", url,
    ]);
    let v = out.json();
    assert_ne!(v["error"]["code"], "OUTBOUND_MEDIA_OUTSIDE_ROOTS", "{v}");
    assert_eq!(v["error"]["details"]["url"], url, "{v}");
    assert!(
        !v.to_string().contains(&u.home().display().to_string()),
        "not joined to the current directory: {v}"
    );
}

#[test]
fn sandbox_explain_with_mode_off_says_exec_has_the_host_network() {
    let u = User::new();
    let out = u.run(&["sandbox", "explain"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("network: none"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("exec runs on the host with the host network"),
        "{}",
        out.stdout
    );
    let out = u.run(&["--json", "sandbox", "explain"]);
    assert_eq!(out.json()["network"], "host");
}

#[test]
fn sandbox_recreate_needs_exactly_one_selector() {
    let u = User::new();
    for args in [
        &["--json", "sandbox", "recreate"][..],
        &["--json", "sandbox", "recreate", "--all", "--agent", "main"][..],
        &[
            "--json",
            "sandbox",
            "recreate",
            "--session",
            "agent:main:main",
            "--agent",
            "main",
        ][..],
    ] {
        let out = u.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stdout);
        assert_eq!(out.json()["error"]["code"], "BAD_REQUEST", "{args:?}");
    }
}

#[test]
fn doctor_exits_nonzero_on_findings_and_zero_once_fixed() {
    let u = User::new();
    let ws = u.state().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    let shot = ws.join("shot.png");
    std::fs::write(&shot, b"\x89PNG\r\n\x1a\nxxxx").unwrap();
    std::fs::set_permissions(&shot, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = u.run(&["doctor"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("FILES_NOT_SENDABLE"), "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("shot.png"))
        .unwrap()
        .to_string();
    assert_eq!(
        line.matches("shot.png").count(),
        1,
        "the reason is said once: {line}"
    );
    assert_eq!(line.matches("0600").count(), 1, "{line}");
    assert!(
        line.starts_with("OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE"),
        "{line}"
    );
    let out = u.run(&["doctor", "--fix"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(mode(&shot), 0o644);
    let out = u.run(&["--json", "doctor"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["findings"], serde_json::json!([]));
}

/// `scripts/up.sh` installs the binary into `$CARGO_HOME/bin` and, when that is not on PATH,
/// prints the line that puts it there; the line works.
#[test]
fn up_sh_leaves_carapace_on_path() {
    let bwrap_installed = Command::new("dpkg")
        .args(["-s", "bubblewrap"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !carapace_testkit::require(
        "the bubblewrap package",
        bwrap_installed,
        "apt-get install -y bubblewrap (scripts/up.sh would install it)",
    ) {
        return;
    }
    let u = User::new();
    let cargo_home = u.dir.path().join("cargo");
    let err = u.dir.path().join("up.stderr");
    let mut child = Command::new("bash")
        .arg(repo().join("scripts/up.sh"))
        .args(["--json", "--no-reload", "--bind", "127.0.0.1:0"])
        .env("CARAPACE_BIN", BIN)
        .env("HOME", u.home())
        .env("CARGO_HOME", &cargo_home)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CARAPACE_STATE_DIR", u.state())
        .env_remove("CARAPACE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready).unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    let v: Value = serde_json::from_str(&ready).unwrap_or(Value::Null);
    assert_eq!(v["ok"], true, "{ready:?} {stderr}");
    let installed = cargo_home.join("bin/carapace");
    assert_eq!(mode(&installed) & 0o111, 0o111);
    let export = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("export PATH="))
        .unwrap_or_else(|| panic!("no PATH line: {stderr}"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{export}; command -v carapace"))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        installed.display().to_string()
    );
}

/// On Docker: `sandbox list` prints the engine's containers with age, idle and a total, and
/// their real scope keys in `--json`; `sandbox recreate` asks first (without a terminal and
/// without `--force` it removes nothing and says so), removes with `--force`, and when
/// nothing matches it fails rather than reporting success.
#[test]
fn docker_sandboxes_are_listed_and_recreated_like_openclaw() {
    if !carapace_testkit::require_docker() {
        return;
    }
    let image = std::env::var("CARAPACE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "carapace-test:busybox".into());
    let u = User::new();
    std::fs::create_dir_all(u.state()).unwrap();
    std::fs::write(
        u.state().join("carapace.json5"),
        format!(
            r#"{{ agents: {{ defaults: {{ sandbox: {{ mode: "all", backend: "docker", docker: {{ image: "{image}", containerPrefix: "first-run-{}-" }} }} }} }} }}"#,
            std::process::id()
        ),
    )
    .unwrap();
    struct Cleanup<'a>(&'a User);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&["sandbox", "recreate", "--all", "--force"]);
        }
    }
    let _cleanup = Cleanup(&u);
    let out = u.run(&[
        "tool",
        "invoke",
        "exec",
        "--args",
        r#"{"command": "echo hi"}"#,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = u.run(&["sandbox", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Total: 1 (1 running)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(" age ") && out.stdout.contains(" idle "),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("bwrap"), "{}", out.stdout);
    let v = u.run(&["--json", "sandbox", "list"]).json();
    assert_eq!(v["sandboxes"][0]["scopeKey"], "agent:main", "{v}");
    assert_eq!(
        (v["total"].as_u64(), v["running"].as_u64()),
        (Some(1), Some(1))
    );

    // No terminal, no --force: nothing removed, and it says so.
    let out = u.run(&["--json", "sandbox", "recreate", "--all"]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--force")
    );
    let v = u.run(&["--json", "sandbox", "list"]).json();
    assert_eq!(v["total"], 1, "{v}");

    // Right after use, --force removes it (OpenClaw: --force skips the confirmation).
    let out = u.run(&[
        "--json",
        "sandbox",
        "recreate",
        "--session",
        "agent:main:main",
        "--force",
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["removed"].as_array().unwrap().len(), 1);

    // Nothing left to match: an error, not a success.
    let out = u.run(&["--json", "sandbox", "recreate", "--all", "--force"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert_eq!(out.json()["error"]["code"], "NOT_FOUND");
}

/// On a terminal, `upload-file --file-path /workspace/big.bin` (the README's form) shows a
/// progress bar: its size comes from the verified fd, not from a host lookup of the container
/// path. `script` gives the command a pseudo-terminal.
#[test]
fn a_large_upload_by_container_path_shows_a_progress_bar() {
    if !carapace_testkit::require(
        "script (util-linux)",
        carapace_testkit::have_program("script"),
        "apt-get install -y util-linux",
    ) {
        return;
    }
    let u = User::new();
    let ws = u.state().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("big.bin"), vec![7u8; 9 * 1024 * 1024]).unwrap();
    std::fs::set_permissions(ws.join("big.bin"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let typescript = u.dir.path().join("typescript");
    let out = u
        .command("script")
        .arg("-qec")
        .arg("carapace message upload-file --target user:me --file-path /workspace/big.bin")
        .arg(&typescript)
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert_eq!(out.status.code(), Some(0), "{seen}");
    assert!(seen.contains("big.bin ["), "no progress bar: {seen}");
    assert!(seen.contains("9.00 MiB"), "{seen}");
}
