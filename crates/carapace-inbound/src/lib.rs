//! carapace's conversation service: what happens between a person writing to the bot on a
//! chat platform and the agent's answer arriving there.
//!
//! - [`InboundService`] is the [`InboundSink`](carapace_channels::inbound::InboundSink) of
//!   every inbound source (Matrix `/sync`, Telegram `getUpdates`, Discord, Slack): it records
//!   each message in a per-channel [`journal`] before the source may move its cursor, drops
//!   redeliveries, and queues the message on its conversation's lane.
//! - On the lane: who may talk ([`carapace_policy::access`]: `dmPolicy`, `allowFrom`,
//!   `groupPolicy`, `groups`, `requireMention`; [`pairing`] codes for strangers), rate limits
//!   ([`limits`]), the session key ([`carapace_policy::routing`], OpenClaw's grammar), inbound
//!   media placed in the session's workspace ([`media`]), the agent turn
//!   ([`carapace_agent::AgentRuntime`]), and the reply ([`reply`]: chunked, attachments through
//!   the outbound checks, refusals said in the reply, typing while the turn runs).
//! - [`InboundService::start`] runs a source per receiving channel under a supervisor
//!   ([`supervisor`]); [`InboundService::handle_webhook`] is the webhook ingress
//!   (`POST <hooks.path>/agent`).
//! - [`status`]: per-channel connection, last error and counters, also written to disk for
//!   `carapace channels status`.
//!
//! Wiring (the gateway):
//!
//! ```ignore
//! let routes = carapace_inbound::ReplyRoutes::new();
//! let runtime = AgentRuntime::builder(config.clone(), models, routes.wrap(tool_executor)).build();
//! let inbound = carapace_inbound::InboundService::new(config, runtime.clone(), tool_ctx, routes);
//! let handle = inbound.start()?;
//! // route: POST {hooks.path}/{*rest} → inbound.handle_webhook(WebhookRequest { .. }).await
//! // on shutdown: handle.shutdown(Duration::from_secs(10)).await;
//! ```

mod envelope;
mod error;
mod handle;
pub mod journal;
pub mod limits;
pub mod media;
pub mod observer;
pub mod pairing;
pub mod reply;
mod service;
pub mod status;
mod supervisor;
pub mod time;
mod tools;
mod webhook;

pub use envelope::{channel_label, turn_text};
pub use error::InboundError;
pub use handle::{SLOW_DOWN_TEXT, pairing_text};
pub use observer::{InboundEvent, InboundObserver, NoObserver};
pub use pairing::{PairingRequest, PairingStore, RequestOutcome};
pub use service::{InboundOptions, InboundService};
pub use status::{ChannelStatus, Counters, read_status};
pub use supervisor::InboundHandle;
pub use tools::{ReplyRoute, ReplyRoutes};
pub use webhook::{WebhookRequest, WebhookResponse};
