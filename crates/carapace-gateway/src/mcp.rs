//! MCP: the same tools as `POST /tools/invoke`, over stdio (`carapace mcp`) and streamable HTTP
//! (`/mcp`), with rmcp.
//!
//! `tools/list` answers the tools the session has on the `mcp` surface (the same decision the
//! dispatch applies), with their JSON schemas. `tools/call` takes the session key from the
//! `sessionKey` argument, else (HTTP) the `x-carapace-session` header of the request, else
//! (stdio) the `--session` the server was started with; a denied tool is a tool error
//! `TOOL_DENIED` naming the setting, an unknown argument `BAD_REQUEST`. A typed error is an
//! MCP tool error (`isError: true`) whose text and `structuredContent` are the error
//! envelope, so a model reads the code, the message and the hint.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Map, Value, json};

use crate::gateway::{CallRequest, Gateway, Transport};
use crate::server::SESSION_HEADER;
use carapace_policy::tools_policy::Surface;
use carapace_policy::{ErrorCode, ErrorEnvelope, ResolveInput};

/// One MCP connection's handler.
#[derive(Clone)]
pub struct McpServer {
    gw: Gateway,
    transport: Transport,
    default_session: Option<String>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl McpServer {
    /// A handler over `gw`. `default_session` applies when neither the arguments nor a header
    /// name a session.
    pub fn new(gw: Gateway, transport: Transport, default_session: Option<String>) -> McpServer {
        McpServer {
            gw,
            transport,
            default_session,
        }
    }

    /// The tools of the session the connection names (the `x-carapace-session` header, else
    /// `--session`, else the main session), as the policy of the `mcp` surface decides.
    fn tools(&self, session: Option<&str>) -> Result<Vec<Tool>, ErrorEnvelope> {
        let specs = self.gw.list(
            Surface::Mcp,
            &ResolveInput {
                session_key: session,
                ..ResolveInput::default()
            },
        )?;
        Ok(specs
            .iter()
            .map(|s| {
                let schema = match &s.input_schema {
                    Value::Object(m) => m.clone(),
                    _ => {
                        let mut m = Map::new();
                        m.insert("type".into(), json!("object"));
                        m
                    }
                };
                Tool::new(s.name.clone(), s.description.clone(), Arc::new(schema))
            })
            .collect())
    }

    fn session_of(&self, context: &RequestContext<RoleServer>) -> Option<String> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get(SESSION_HEADER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| self.default_session.clone())
    }
}

/// The MCP form of a tool result: the JSON as text, and as `structuredContent` when it is an
/// object.
pub fn success_result(value: &Value) -> CallToolResult {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    if value.is_object() {
        r.structured_content = Some(value.clone());
    }
    r
}

/// The MCP form of a typed error: `isError: true`, the envelope as text and structured content.
pub fn error_result(env: &ErrorEnvelope, request_id: &str) -> CallToolResult {
    let env = env.clone().with_detail("requestId", request_id);
    let body = env.to_response_json();
    let mut text = format!("{}: {}", env.code, env.message);
    if let Some(h) = &env.hint {
        text.push_str("\nhint: ");
        text.push_str(h);
    }
    text.push('\n');
    text.push_str(&body.to_string());
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    r.structured_content = Some(body);
    r
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("carapace", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "carapace runs file, shell and messaging tools inside per-session sandboxes. \
                 Paths are /workspace/... (or relative to /workspace). Pass sessionKey \
                 (agent:<id>:<rest>) to choose the session.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let session = self.session_of(&context);
        match self.tools(session.as_deref()) {
            Ok(t) => Ok(ListToolsResult::with_all_items(t)),
            Err(env) => Err(ErrorData::invalid_params(
                format!("{}: {}", env.code, env.message),
                Some(env.to_response_json()),
            )),
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let parts = context.extensions.get::<http::request::Parts>();
        let header = |name: &str| {
            parts
                .and_then(|p| p.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let session = self.session_of(&context);
        let request_id = header(crate::server::REQUEST_ID_HEADER)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (call, idempotency_key) =
            match crate::call::from_mcp(&request.name, request.arguments, session) {
                Ok(c) => c,
                Err(env) => {
                    return Ok(CallToolResponse::Complete(error_result(&env, &request_id)));
                }
            };
        let req = CallRequest {
            request_id: request_id.clone(),
            transport: self.transport,
            channel_hint: None,
            idempotency_key,
        };
        let result = match self.gw.call(call, &req).await {
            Ok(v) => success_result(&v),
            Err(env) => error_result(&env, &request_id),
        };
        Ok(CallToolResponse::Complete(result))
    }
}

/// Serves MCP on stdin/stdout until the peer closes it.
pub async fn serve_stdio(
    gw: Gateway,
    default_session: Option<String>,
) -> Result<(), ErrorEnvelope> {
    let max_line = usize::try_from(gw.limits().max_body_bytes).unwrap_or(usize::MAX);
    serve_lines(
        gw,
        default_session,
        tokio::io::stdin(),
        tokio::io::stdout(),
        max_line,
    )
    .await
}

/// Serves MCP over newline-delimited JSON on `input`/`output`. Every line passes
/// [`crate::jsonrpc::check`] first: a line that fails gets its JSON-RPC error on `output` and
/// the server keeps serving; a line longer than `max_line` bytes is refused the same way.
pub async fn serve_lines<R, W>(
    gw: Gateway,
    default_session: Option<String>,
    input: R,
    output: W,
    max_line: usize,
) -> Result<(), ErrorEnvelope>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    let (to_rmcp, rmcp_in) = tokio::io::duplex(64 * 1024);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(64 * 1024);
    let (reject_tx, mut reject_rx) = tokio::sync::mpsc::unbounded_channel::<String>();

    // One writer, whole lines only: rmcp's answers and the filter's rejections never interleave.
    let writer = tokio::spawn(async move {
        let mut output = output;
        let mut lines = BufReader::new(from_rmcp).lines();
        let (mut rmcp_open, mut rejects_open) = (true, true);
        loop {
            let line = tokio::select! {
                l = lines.next_line(), if rmcp_open => match l {
                    Ok(Some(l)) => l,
                    _ => { rmcp_open = false; continue; }
                },
                r = reject_rx.recv(), if rejects_open => match r {
                    Some(l) => l,
                    None => { rejects_open = false; continue; }
                },
                else => break,
            };
            if output.write_all(line.as_bytes()).await.is_err()
                || output.write_all(b"\n").await.is_err()
                || output.flush().await.is_err()
            {
                break;
            }
        }
    });

    let reader = tokio::spawn(async move {
        let mut to_rmcp = to_rmcp;
        let mut input = BufReader::new(input);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_line_bounded(&mut input, &mut buf, max_line).await {
                Ok(LineRead::Eof) => break,
                Ok(LineRead::TooLong) => {
                    let r = crate::jsonrpc::Rejection {
                        id: Value::Null,
                        code: crate::jsonrpc::INVALID_REQUEST,
                        message: format!(
                            "Invalid Request: the message is longer than the limit of {max_line} bytes (gateway.maxBodyBytes)"
                        ),
                    };
                    let _ = reject_tx.send(r.to_json().to_string());
                }
                Ok(LineRead::Line) => {
                    let line = trim_line(&buf);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match crate::jsonrpc::check(line) {
                        Ok(()) => {
                            if to_rmcp.write_all(line).await.is_err()
                                || to_rmcp.write_all(b"\n").await.is_err()
                            {
                                break;
                            }
                        }
                        Err(r) => {
                            let _ = reject_tx.send(r.to_json().to_string());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("MCP stdio: cannot read stdin: {e}");
                    break;
                }
            }
        }
        let _ = to_rmcp.shutdown().await;
    });

    let server = McpServer::new(gw, Transport::McpStdio, default_session);
    let result = match server.serve((rmcp_in, rmcp_out)).await {
        Ok(running) => running
            .waiting()
            .await
            .map(drop)
            .map_err(|e| mcp_error(format!("MCP stdio server stopped: {e}"))),
        // The peer closed its end before (or instead of) initializing: nothing to serve.
        Err(e) => {
            tracing::info!("MCP stdio: no session ({e})");
            Ok(())
        }
    };
    reader.abort();
    let _ = writer.await;
    result
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without keeping more than `max` bytes); a longer line is
/// consumed to its end and reported as [`LineRead::TooLong`].
async fn read_line_bounded<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    use tokio::io::AsyncBufReadExt as _;
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if !any {
                LineRead::Eof
            } else if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
        any = true;
        let (take, end) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > max.saturating_add(1) {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(take);
        if end {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

fn trim_line(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn mcp_error(msg: String) -> ErrorEnvelope {
    ErrorEnvelope::new(ErrorCode::Internal, msg)
}

/// The `/mcp` endpoint: the tower service and a handle that ends its sessions at shutdown.
pub struct HttpMcp {
    /// The service to mount.
    pub service: StreamableHttpService<McpServer, LocalSessionManager>,
    /// Its sessions (the layer in front answers `DELETE` of an unknown one with 404).
    pub sessions: Arc<LocalSessionManager>,
}

impl std::fmt::Debug for HttpMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpMcp")
    }
}

impl HttpMcp {
    /// Builds the endpoint. `loopback_only` keeps rmcp's Host-header check (DNS rebinding
    /// protection) for a loopback bind; on other binds the bearer token is the guard.
    pub fn new(gw: Gateway, loopback_only: bool) -> HttpMcp {
        let mut config = StreamableHttpServerConfig::default();
        if !loopback_only {
            config = config.disable_allowed_hosts();
        }
        config.max_request_body_bytes =
            usize::try_from(gw.limits().max_body_bytes).unwrap_or(usize::MAX);
        let factory_gw = gw.clone();
        let sessions = Arc::new(LocalSessionManager::default());
        let service = StreamableHttpService::new(
            move || Ok(McpServer::new(factory_gw.clone(), Transport::McpHttp, None)),
            sessions.clone(),
            config,
        );
        HttpMcp { service, sessions }
    }

    /// A closure that ends every MCP session (call it when the server shuts down, so open SSE
    /// streams do not hold the graceful shutdown forever).
    pub fn shutdown_handle(&self) -> impl Fn() + Send + Sync + 'static {
        let ct = self.service.config.cancellation_token.clone();
        move || ct.cancel()
    }
}
