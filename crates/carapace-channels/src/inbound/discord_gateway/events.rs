//! Dispatch events → what carapace knows and receives: the bot's own identity, which channel
//! is a thread of which parent, the bot's roles per guild, and `MESSAGE_CREATE` as an
//! [`InboundMessage`]. Pure: no I/O.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::protocol::snowflake_ms;
use crate::inbound::websocket::{AllowBots, kind_from_mime};
use crate::inbound::{ChatKind, ChatRef, InboundAttachment, InboundMessage, SenderRef};

/// Message types that are something a person (or bot) said: `DEFAULT` and `REPLY`. Joins,
/// pins, boosts, thread-created notices and the like are not.
const SPOKEN_TYPES: [u64; 2] = [0, 19];

/// What the gateway told this session so far.
#[derive(Debug, Default)]
pub struct GatewayState {
    /// The bot's user id (from `READY`).
    pub bot_id: Option<String>,
    /// The bot's user name (from `READY`), for logs.
    pub bot_name: Option<String>,
    /// Thread channel id → parent channel id.
    threads: HashMap<String, String>,
    /// Guild id → the bot's role ids there.
    bot_roles: HashMap<String, HashSet<String>>,
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl GatewayState {
    /// Learns from a dispatch that is not a message (`READY`, guild and thread events).
    pub fn apply(&mut self, t: &str, d: &Value) {
        match t {
            "READY" => {
                self.bot_id = d
                    .pointer("/user/id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.bot_name = d
                    .pointer("/user/username")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            "GUILD_CREATE" => {
                let guild = str_of(d, "id").unwrap_or_default().to_string();
                for th in d
                    .get("threads")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.thread(th);
                }
                for m in d
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.member(&guild, m);
                }
            }
            "GUILD_DELETE" => {
                if let Some(g) = str_of(d, "id") {
                    self.bot_roles.remove(g);
                }
            }
            "GUILD_MEMBER_UPDATE" => {
                let guild = str_of(d, "guild_id").unwrap_or_default().to_string();
                self.member(&guild, d);
            }
            "THREAD_CREATE" | "THREAD_UPDATE" => self.thread(d),
            "THREAD_DELETE" => {
                if let Some(id) = str_of(d, "id") {
                    self.threads.remove(id);
                }
            }
            "THREAD_LIST_SYNC" => {
                for th in d
                    .get("threads")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.thread(th);
                }
            }
            _ => {}
        }
    }

    fn thread(&mut self, th: &Value) {
        if let (Some(id), Some(parent)) = (str_of(th, "id"), str_of(th, "parent_id")) {
            self.threads.insert(id.to_string(), parent.to_string());
        }
    }

    fn member(&mut self, guild: &str, m: &Value) {
        let is_bot = self.bot_id.is_some()
            && m.pointer("/user/id").and_then(Value::as_str) == self.bot_id.as_deref();
        if !is_bot || guild.is_empty() {
            return;
        }
        let roles = m
            .get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        self.bot_roles.insert(guild.to_string(), roles);
    }

    /// Whether a message mentions the bot: by user mention, by a reply to one of its
    /// messages, or by a mention of one of its roles.
    fn mentions_bot(&self, d: &Value, bot: &str) -> bool {
        let by_user = d
            .get("mentions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|u| str_of(u, "id") == Some(bot));
        let content = str_of(d, "content").unwrap_or_default();
        let in_text =
            content.contains(&format!("<@{bot}>")) || content.contains(&format!("<@!{bot}>"));
        let reply = d
            .pointer("/referenced_message/author/id")
            .and_then(Value::as_str)
            == Some(bot);
        let by_role = str_of(d, "guild_id")
            .and_then(|g| self.bot_roles.get(g))
            .is_some_and(|roles| {
                d.get("mention_roles")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|r| roles.contains(r))
            });
        by_user || in_text || reply || by_role
    }

    /// A `MESSAGE_CREATE` as an inbound message, or `None` for what is not reported: the bot's
    /// own messages, other bots' unless `allow_bots` says so, system messages.
    pub fn message(
        &self,
        d: &Value,
        account: Option<&str>,
        allow_bots: AllowBots,
    ) -> Option<InboundMessage> {
        let id = str_of(d, "id")?;
        let channel_id = str_of(d, "channel_id")?;
        let author = d.get("author")?;
        let author_id = str_of(author, "id")?;
        let bot = self.bot_id.as_deref().unwrap_or_default();
        if author_id == bot {
            return None;
        }
        let kind = d.get("type").and_then(Value::as_u64).unwrap_or(0);
        if !SPOKEN_TYPES.contains(&kind) {
            return None;
        }
        let mentions_bot = !bot.is_empty() && self.mentions_bot(d, bot);
        let from_bot = author.get("bot").and_then(Value::as_bool) == Some(true)
            || d.get("webhook_id").is_some_and(|w| !w.is_null());
        if from_bot {
            match allow_bots {
                AllowBots::Never => return None,
                AllowBots::Mentions if !mentions_bot => return None,
                _ => {}
            }
        }
        let chat = match str_of(d, "guild_id") {
            None => ChatRef {
                kind: ChatKind::Direct,
                id: channel_id.to_string(),
                thread: None,
            },
            Some(_) => match self.threads.get(channel_id) {
                Some(parent) => ChatRef {
                    kind: ChatKind::Group,
                    id: parent.clone(),
                    thread: Some(channel_id.to_string()),
                },
                None => ChatRef {
                    kind: ChatKind::Group,
                    id: channel_id.to_string(),
                    thread: None,
                },
            },
        };
        let name = d
            .pointer("/member/nick")
            .and_then(Value::as_str)
            .or_else(|| str_of(author, "global_name"))
            .or_else(|| str_of(author, "username"))
            .map(str::to_string);
        let attachments = d
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let url = str_of(a, "url")?;
                let mime = str_of(a, "content_type").map(str::to_string);
                Some(InboundAttachment {
                    kind: kind_from_mime(mime.as_deref()),
                    filename: str_of(a, "filename").map(str::to_string),
                    mime,
                    size: a.get("size").and_then(Value::as_u64),
                    fetch: url.to_string(),
                })
            })
            .collect();
        Some(InboundMessage {
            channel: "discord".into(),
            account: account.map(str::to_string),
            event_id: id.to_string(),
            chat,
            sender: SenderRef {
                id: author_id.to_string(),
                name,
            },
            text: str_of(d, "content").unwrap_or_default().to_string(),
            mentions_bot,
            attachments,
            timestamp_ms: snowflake_ms(id),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::inbound::AttachmentKind;
    use serde_json::json;

    const BOT: &str = "900000000000000001";

    fn ready() -> GatewayState {
        let mut s = GatewayState::default();
        s.apply(
            "READY",
            &json!({"session_id": "s", "user": {"id": BOT, "username": "carapace", "bot": true}}),
        );
        s
    }

    fn msg(extra: Value) -> Value {
        let mut m = json!({
            "id": "1200000000000000000",
            "channel_id": "111",
            "type": 0,
            "content": "hello",
            "author": {"id": "42", "username": "alice", "global_name": "Alice"},
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    }

    #[test]
    fn a_dm_with_an_image() {
        let s = ready();
        let m = s
            .message(
                &msg(json!({"attachments": [{
                    "id": "5", "filename": "cat.png", "size": 1234,
                    "url": "https://cdn.discordapp.com/attachments/111/5/cat.png?ex=1",
                    "content_type": "image/png"
                }]})),
                Some("work"),
                AllowBots::Never,
            )
            .unwrap();
        assert_eq!(m.channel, "discord");
        assert_eq!(m.account.as_deref(), Some("work"));
        assert_eq!(m.chat.kind, ChatKind::Direct);
        assert_eq!(m.chat.id, "111");
        assert_eq!(m.sender.id, "42");
        assert_eq!(m.sender.name.as_deref(), Some("Alice"));
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(m.attachments[0].size, Some(1234));
        assert!(
            m.attachments[0]
                .fetch
                .starts_with("https://cdn.discordapp.com/")
        );
        assert!(m.timestamp_ms.unwrap() > 1_600_000_000_000);
        assert!(!m.mentions_bot);
    }

    #[test]
    fn mentions_by_user_text_reply_and_role() {
        let mut s = ready();
        s.apply(
            "GUILD_CREATE",
            &json!({"id": "7", "threads": [], "members": [
                {"user": {"id": BOT}, "roles": ["r-bot"]},
                {"user": {"id": "42"}, "roles": ["r-other"]},
            ]}),
        );
        let g = |extra: Value| {
            let mut e = json!({"guild_id": "7"});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            s.message(&msg(e), None, AllowBots::Never).unwrap()
        };
        assert!(!g(json!({})).mentions_bot);
        assert!(g(json!({"mentions": [{"id": BOT}]})).mentions_bot);
        assert!(g(json!({"content": format!("hey <@!{BOT}>")})).mentions_bot);
        assert!(g(json!({"type": 19, "referenced_message": {"author": {"id": BOT}}})).mentions_bot);
        assert!(g(json!({"mention_roles": ["r-bot"]})).mentions_bot);
        assert!(!g(json!({"mention_roles": ["r-other"]})).mentions_bot);
        assert_eq!(g(json!({})).chat.kind, ChatKind::Group);
    }

    #[test]
    fn threads_map_to_their_parent() {
        let mut s = ready();
        s.apply(
            "GUILD_CREATE",
            &json!({"id": "7", "threads": [{"id": "222", "parent_id": "111"}]}),
        );
        s.apply("THREAD_CREATE", &json!({"id": "333", "parent_id": "112"}));
        let m = s
            .message(
                &msg(json!({"guild_id": "7", "channel_id": "222"})),
                None,
                AllowBots::Never,
            )
            .unwrap();
        assert_eq!(m.chat.id, "111");
        assert_eq!(m.chat.thread.as_deref(), Some("222"));
        let m = s
            .message(
                &msg(json!({"guild_id": "7", "channel_id": "333"})),
                None,
                AllowBots::Never,
            )
            .unwrap();
        assert_eq!(
            (m.chat.id.as_str(), m.chat.thread.as_deref()),
            ("112", Some("333"))
        );
        s.apply("THREAD_DELETE", &json!({"id": "333"}));
        let m = s
            .message(
                &msg(json!({"guild_id": "7", "channel_id": "333"})),
                None,
                AllowBots::Never,
            )
            .unwrap();
        assert_eq!(
            (m.chat.id.as_str(), m.chat.thread.as_deref()),
            ("333", None)
        );
    }

    #[test]
    fn own_bot_and_system_messages_are_not_reported() {
        let s = ready();
        let own = msg(json!({"author": {"id": BOT, "bot": true}}));
        assert!(s.message(&own, None, AllowBots::Always).is_none());
        let other_bot = msg(json!({"author": {"id": "77", "bot": true}}));
        assert!(s.message(&other_bot, None, AllowBots::Never).is_none());
        assert!(s.message(&other_bot, None, AllowBots::Mentions).is_none());
        assert!(s.message(&other_bot, None, AllowBots::Always).is_some());
        let mentioning_bot =
            msg(json!({"author": {"id": "77", "bot": true}, "mentions": [{"id": BOT}]}));
        assert!(
            s.message(&mentioning_bot, None, AllowBots::Mentions)
                .is_some()
        );
        let webhook = msg(json!({"webhook_id": "9"}));
        assert!(s.message(&webhook, None, AllowBots::Never).is_none());
        let join = msg(json!({"type": 7}));
        assert!(s.message(&join, None, AllowBots::Always).is_none());
    }
}
