//! A real Synapse (scripts/synapse.sh) for the Matrix tests: its URL from
//! `CARAPACE_TEST_SYNAPSE_URL` (through [`crate::synapse_url`], so a missing server skips the
//! test or fails it under `CARAPACE_TEST_STRICT=1`) and the two shared users of the users file
//! at `CARAPACE_TEST_SYNAPSE_USERS`: `carapace-bot` (an admin, the account carapace sends as)
//! and `alice`. Fresh users per test come through the admin API ([`Synapse::user`]), so
//! concurrent tests and earlier runs never see each other's rooms, invites or account data.
//!
//! Every call panics on a transport error or an unexpected answer: these are test helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};

/// Environment variable naming the users file written by scripts/synapse.sh.
pub const USERS_ENV: &str = "CARAPACE_TEST_SYNAPSE_USERS";

/// The homeserver and its two shared users.
#[derive(Clone, Debug)]
pub struct Synapse {
    /// Base URL, no trailing slash.
    pub url: String,
    /// The shared `@carapace-bot:localhost`, an admin: its token is the admin token.
    pub bot: User,
    /// The shared `@alice:localhost`, a person to DM.
    pub alice: User,
}

/// A logged-in user.
#[derive(Clone, Debug, Default)]
pub struct User {
    /// The Matrix user id (`@name:localhost`).
    pub id: String,
    /// An access token.
    pub token: String,
}

/// Percent-encodes a path segment (room ids, user ids, aliases).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The Synapse of scripts/synapse.sh, when available (a failure under strict mode).
///
/// Panics when the URL is set but the users file is missing or malformed.
pub fn synapse() -> Option<Synapse> {
    let url = crate::synapse_url()?;
    let path = std::env::var(USERS_ENV)
        .unwrap_or_else(|_| panic!("CARAPACE_TEST_SYNAPSE_URL is set but {USERS_ENV} is not"));
    let users: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    let s = |p: &str| {
        users
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{path}: no {p}"))
            .to_string()
    };
    Some(Synapse {
        url,
        bot: User {
            id: s("/bot/userId"),
            token: s("/bot/accessToken"),
        },
        alice: User {
            id: s("/alice/userId"),
            token: s("/alice/accessToken"),
        },
    })
}

impl Synapse {
    /// A homeserver known by its URL only (no users), e.g. in a child process that was given
    /// the URL and the tokens it needs.
    pub fn at(url: impl Into<String>) -> Self {
        Synapse {
            url: url.into(),
            bot: User::default(),
            alice: User::default(),
        }
    }

    /// The admin token (the shared bot's).
    pub fn admin(&self) -> &str {
        &self.bot.token
    }

    /// One Client-Server API call as `token`; panics on a non-2xx answer.
    pub async fn api(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.try_api(token, method, path, body).await;
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }

    /// One call; (status, JSON body).
    pub async fn try_api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let c = reqwest::Client::new();
        let url = format!("{}{path}", self.url);
        let mut r = match method {
            "GET" => c.get(url),
            "POST" => c.post(url),
            "PUT" => c.put(url),
            "DELETE" => c.delete(url),
            m => panic!("{m}"),
        }
        .bearer_auth(token)
        .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let st = resp.status().as_u16();
        (st, resp.json().await.unwrap_or(Value::Null))
    }

    /// A new user (unique name with `prefix`), logged in.
    pub async fn user(&self, prefix: &str) -> User {
        let name = format!("{prefix}-{}-{}", std::process::id(), uuid_like()).to_lowercase();
        let id = format!("@{name}:localhost");
        let password = format!("pw-{}", uuid_like());
        self.api(
            self.admin(),
            "PUT",
            &format!("/_synapse/admin/v2/users/{}", enc(&id)),
            Some(json!({"password": password, "displayname": prefix})),
        )
        .await;
        let v = self
            .api(
                "",
                "POST",
                "/_matrix/client/v3/login",
                Some(json!({"type": "m.login.password",
                            "identifier": {"type": "m.id.user", "user": name},
                            "password": password})),
            )
            .await;
        User {
            id,
            token: v["access_token"].as_str().unwrap().to_string(),
        }
    }

    /// `from` creates a room inviting `invite` (a DM when `direct`), returns its id.
    pub async fn room(
        &self,
        from: &User,
        invite: &[&User],
        direct: bool,
        encrypted: bool,
    ) -> String {
        let mut body = json!({
            "invite": invite.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
            "preset": if direct { "trusted_private_chat" } else { "private_chat" },
            "is_direct": direct,
        });
        if encrypted {
            body["initial_state"] = json!([{
                "type": "m.room.encryption", "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"}
            }]);
        }
        self.create_room(from, body).await
    }

    /// `from` creates a room with the `createRoom` `body`, returns its id.
    pub async fn create_room(&self, from: &User, body: Value) -> String {
        self.api(
            &from.token,
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(body),
        )
        .await["room_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `u` joins `room`.
    pub async fn join(&self, u: &User, room: &str) {
        self.api(
            &u.token,
            "POST",
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            Some(json!({})),
        )
        .await;
    }

    /// `u` sends an `m.room.message` with `content`; returns the event id.
    pub async fn send(&self, u: &User, room: &str, content: Value) -> String {
        self.send_event(u, room, "m.room.message", content).await
    }

    /// `u` sends an event of `kind`; returns the event id.
    pub async fn send_event(&self, u: &User, room: &str, kind: &str, content: Value) -> String {
        self.api(
            &u.token,
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{}/send/{kind}/t{}",
                enc(room),
                uuid_like()
            ),
            Some(content),
        )
        .await["event_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `u` says `text` in `room`.
    pub async fn say(&self, u: &User, room: &str, text: &str) -> String {
        self.send(u, room, json!({"msgtype": "m.text", "body": text}))
            .await
    }

    /// `u` uploads `bytes`; returns the mxc URI.
    pub async fn upload(&self, u: &User, bytes: &[u8], mime: &str, name: &str) -> String {
        let v: Value = reqwest::Client::new()
            .post(format!(
                "{}/_matrix/media/v3/upload?filename={}",
                self.url,
                enc(name)
            ))
            .bearer_auth(&u.token)
            .header("content-type", mime)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["content_uri"].as_str().unwrap().to_string()
    }

    /// Downloads an mxc URI as `u`.
    pub async fn download(&self, u: &User, mxc: &str) -> Vec<u8> {
        let rest = mxc.strip_prefix("mxc://").unwrap();
        reqwest::Client::new()
            .get(format!(
                "{}/_matrix/client/v1/media/download/{rest}",
                self.url
            ))
            .bearer_auth(&u.token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// The last `n` (at most 100) `m.room.message` events of `room`, newest first, as `reader`
    /// sees them.
    pub async fn messages(&self, reader: &User, room: &str, n: usize) -> Vec<Value> {
        let v = self
            .api(
                &reader.token,
                "GET",
                &format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                    enc(room)
                ),
                None,
            )
            .await;
        v["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .take(n)
            .cloned()
            .collect()
    }

    /// The `m.room.message` events of `room` by `sender` (oldest first), as `reader` sees them.
    pub async fn messages_from(&self, reader: &User, room: &str, sender: &str) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .messages(reader, room, 100)
            .await
            .into_iter()
            .filter(|e| e["sender"] == sender)
            .collect();
        out.reverse();
        out
    }

    /// Joined member ids of `room`.
    pub async fn members(&self, u: &User, room: &str) -> Vec<String> {
        let v = self
            .api(
                &u.token,
                "GET",
                &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room)),
                None,
            )
            .await;
        v["joined"].as_object().unwrap().keys().cloned().collect()
    }
}

/// A short random hex string.
pub fn uuid_like() -> String {
    format!("{:016x}", fastrand_u64())
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    h.finish()
}

/// Polls `f` until it returns `Some`, for at most a minute.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
