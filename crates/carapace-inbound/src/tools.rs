//! The conversation a turn belongs to, for the tools: a `message` call without a `target`
//! goes back to the conversation the turn answers (the channel and the chat the message came
//! from), as in OpenClaw. The gateway wraps its [`ToolExecutor`] once with
//! [`ReplyRoutes::wrap`] and gives the same [`ReplyRoutes`] to the conversation service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use carapace_agent::{SessionInfo, ToolExecutor, ToolFuture};
use carapace_policy::ErrorEnvelope;
use carapace_tools::{ToolCall, ToolSpec};
use serde_json::Value;

/// Routes kept at most (the oldest are forgotten beyond it).
const MAX_ROUTES: usize = 10_000;

/// Where a session's replies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRoute {
    /// Channel id.
    pub channel: String,
    /// Target string (`room:!id:hs`, `channel:42`).
    pub target: String,
    /// The thread of the conversation inside the target, if it is one (a `message` call that
    /// defaults to this conversation gets it as `threadId`).
    pub thread: Option<String>,
}

/// Session key → the conversation its current turn answers. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct ReplyRoutes(Arc<Mutex<Table>>);

#[derive(Debug, Default)]
struct Table {
    map: HashMap<String, ReplyRoute>,
    order: std::collections::VecDeque<String>,
}

impl ReplyRoutes {
    /// An empty table.
    pub fn new() -> ReplyRoutes {
        ReplyRoutes::default()
    }

    /// Records where `session_key` replies go.
    pub fn set(&self, session_key: &str, route: ReplyRoute) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let t = &mut *g;
        if t.map.insert(session_key.to_string(), route).is_none() {
            t.order.push_back(session_key.to_string());
            while t.order.len() > MAX_ROUTES {
                if let Some(old) = t.order.pop_front() {
                    t.map.remove(&old);
                }
            }
        }
    }

    /// Where `session_key` replies go, if a conversation is known.
    pub fn get(&self, session_key: &str) -> Option<ReplyRoute> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.map.get(session_key).cloned()
    }

    /// `inner` with `message` calls defaulting to the session's conversation.
    pub fn wrap(&self, inner: Arc<dyn ToolExecutor>) -> Arc<dyn ToolExecutor> {
        Arc::new(ConversationTools {
            inner,
            routes: self.clone(),
        })
    }
}

struct ConversationTools {
    inner: Arc<dyn ToolExecutor>,
    routes: ReplyRoutes,
}

fn has(args: &Value, keys: &[&str]) -> bool {
    keys.iter()
        .any(|k| args.get(*k).is_some_and(|v| !v.is_null()))
}

impl ToolExecutor for ConversationTools {
    fn tools(&self, session: &SessionInfo) -> Vec<ToolSpec> {
        let mut specs = self.inner.tools(session);
        if let Some(route) = self.routes.get(&session.session_key) {
            for s in specs.iter_mut().filter(|s| s.name == "message") {
                if let Some(req) = s
                    .input_schema
                    .get_mut("required")
                    .and_then(Value::as_array_mut)
                {
                    req.retain(|r| r != "target");
                }
                if let Some(t) = s.input_schema.pointer_mut("/properties/target") {
                    t["description"] = Value::String(format!(
                        "user:<id>, channel:<id> or room:<id>; default: this conversation ({} {})",
                        route.channel, route.target
                    ));
                }
            }
        }
        specs
    }

    fn invoke<'a>(&'a self, mut call: ToolCall) -> ToolFuture<'a> {
        if call.tool == "message"
            && let Some(key) = call.session_key.as_deref()
            && let Some(route) = self.routes.get(key)
            && let Some(args) = call.args.as_object_mut()
            && !has(&Value::Object(args.clone()), &["target", "to"])
        {
            let same_channel = args
                .get("channel")
                .and_then(Value::as_str)
                .is_none_or(|c| c == route.channel);
            if same_channel {
                args.insert("channel".into(), Value::String(route.channel.clone()));
                args.insert("target".into(), Value::String(route.target.clone()));
                if let Some(t) = &route.thread
                    && args.get("threadId").is_none_or(|v| v.is_null())
                {
                    args.insert("threadId".into(), Value::String(t.clone()));
                }
            }
        }
        self.inner.invoke(call)
    }

    fn unavailable(&self, session: &SessionInfo, tool: &str) -> Option<ErrorEnvelope> {
        self.inner.unavailable(session, tool)
    }
}
