//! OpenAI HTTP stand-in under `/v1`: Chat Completions and Responses (call summaries), and
//! the Realtime SIP call controls (`/v1/realtime/calls/{id}/accept|reject|refer|hangup`).
//!
//! Faithful to the response shapes callvisor reads (`choices[0].message.content`; the
//! `output_text` part of the `message` item in `output[]`) and to OpenAI's error body
//! `{"error":{"message","type","param","code"}}`. It checks the Bearer key (any non-empty key,
//! or exactly [`OpenAiRestConfig::api_key`] when set), that bodies are JSON objects with a
//! `model`, and that `messages` / `input` are present; it does not check model names.
//! Answers are deterministic: `summary_prefix` + the first `summary_chars` characters of the
//! last user message (or of `input`). Every request is recorded; [`OpenAiRest::fail_next`]
//! makes the next N requests fail with 500 (or another status) to exercise retries.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Serialize;
use serde_json::{json, Value};

use super::server::{any_local_port, bind, lock, RunningServer, SHUTDOWN_TIMEOUT_SECS};

/// Largest request body accepted (transcripts of long calls fit easily).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How the OpenAI REST stand-in behaves.
#[derive(Debug, Clone)]
pub struct OpenAiRestConfig {
    /// Where to listen; `127.0.0.1:0` by default.
    pub bind: SocketAddr,
    /// If set, the only Bearer key accepted; otherwise any non-empty key is.
    pub api_key: Option<String>,
    /// Text put before the summary (default `"Summary: "`).
    pub summary_prefix: String,
    /// Characters of the user's text kept in the summary (default 120).
    pub summary_chars: usize,
}

impl Default for OpenAiRestConfig {
    fn default() -> Self {
        OpenAiRestConfig {
            bind: any_local_port(),
            api_key: None,
            summary_prefix: "Summary: ".to_owned(),
            summary_chars: 120,
        }
    }
}

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenAiRequest {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The body as JSON (`Null` when empty, a JSON string holding the raw text if it was
    /// not JSON).
    pub body: Value,
    /// The status the stand-in answered with.
    pub status: u16,
}

#[derive(Debug)]
struct State {
    config: OpenAiRestConfig,
    requests: Vec<OpenAiRequest>,
    fail_remaining: u32,
    fail_status: u16,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    next_id: AtomicU64,
}

/// A running OpenAI REST stand-in; stops when dropped.
#[derive(Debug)]
pub struct OpenAiRest {
    server: RunningServer,
    shared: Arc<Shared>,
}

impl OpenAiRest {
    /// Starts the stand-in on the current actix System.
    ///
    /// # Errors
    /// Binding failed, or there is no actix System.
    pub fn start(config: OpenAiRestConfig) -> io::Result<OpenAiRest> {
        let (listener, addr) = bind(config.bind)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                config,
                requests: Vec::new(),
                fail_remaining: 0,
                fail_status: 500,
            }),
            next_id: AtomicU64::new(1),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();
        Ok(OpenAiRest {
            server: RunningServer::spawn(server, addr)?,
            shared,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:P/v1`: the value for `OPENAI_BASE_URL`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// Every request so far, in arrival order.
    #[must_use]
    pub fn requests(&self) -> Vec<OpenAiRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// The requests whose path ends with `suffix` (e.g. `/chat/completions`).
    #[must_use]
    pub fn requests_to(&self, suffix: &str) -> Vec<OpenAiRequest> {
        lock(&self.shared.state)
            .requests
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .cloned()
            .collect()
    }

    /// The SIP call controls received for `call_id`, in order: `(action, body)` with
    /// `action` one of `accept`, `reject`, `refer`, `hangup` (the body is `Null` when empty).
    #[must_use]
    pub fn call_controls(&self, call_id: &str) -> Vec<(String, Value)> {
        let prefix = format!("/v1/realtime/calls/{call_id}/");
        lock(&self.shared.state)
            .requests
            .iter()
            .filter_map(|r| {
                let action = r.path.strip_prefix(&prefix)?;
                Some((action.to_owned(), r.body.clone()))
            })
            .collect()
    }

    /// Makes the next `n` requests fail with HTTP 500 and an OpenAI `server_error` body.
    pub fn fail_next(&self, n: u32) {
        self.fail_next_with(n, 500);
    }

    /// Makes the next `n` requests fail with `status` (429 gives a `rate_limit_exceeded`
    /// body, anything else a `server_error` one).
    pub fn fail_next_with(&self, n: u32, status: u16) {
        let mut state = lock(&self.shared.state);
        state.fail_remaining = n;
        state.fail_status = status;
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.state).requests.clear();
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// OpenAI's error body.
fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let path = req.path().to_owned();
    let method = req.method().as_str().to_owned();
    let body_json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let (status, answer) = answer(&req, &path, &body_json, &shared);
    lock(&shared.state).requests.push(OpenAiRequest {
        method,
        path,
        body: body_json,
        status: status.as_u16(),
    });
    match answer {
        Some(value) => HttpResponse::build(status).json(value),
        None => HttpResponse::build(status).finish(),
    }
}

/// The status and JSON body (if any) for one request.
fn answer(
    req: &HttpRequest,
    path: &str,
    body: &Value,
    shared: &Shared,
) -> (StatusCode, Option<Value>) {
    let (expected_key, prefix, chars) = {
        let mut state = lock(&shared.state);
        if state.fail_remaining > 0 {
            state.fail_remaining -= 1;
            let status = StatusCode::from_u16(state.fail_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if status == StatusCode::TOO_MANY_REQUESTS {
                error_body(
                    "Rate limit reached (stand-in).",
                    "requests",
                    None,
                    Some("rate_limit_exceeded"),
                )
            } else {
                error_body(
                    "The server had an error while processing your request (stand-in).",
                    "server_error",
                    None,
                    Some("internal_error"),
                )
            };
            return (status, Some(body));
        }
        (
            state.config.api_key.clone(),
            state.config.summary_prefix.clone(),
            state.config.summary_chars,
        )
    };
    let bearer = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| !key.is_empty());
    let authorized = match (bearer, expected_key.as_deref()) {
        (None, _) => false,
        (Some(given), Some(expected)) => {
            callvisor_wire::signing::constant_time_eq(given.as_bytes(), expected.as_bytes())
        }
        (Some(_), None) => true,
    };
    if !authorized {
        let message = if bearer.is_none() {
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        } else {
            "Incorrect API key provided."
        };
        return (
            StatusCode::UNAUTHORIZED,
            Some(error_body(
                message,
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            )),
        );
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let post = req.method() == actix_web::http::Method::POST;
    match path {
        "/v1/chat/completions" if post => chat_completion(body, id, &prefix, chars),
        "/v1/responses" if post => response(body, id, &prefix, chars),
        _ if post && path.starts_with("/v1/realtime/calls/") => realtime_call_control(path, body),
        _ => (
            StatusCode::NOT_FOUND,
            Some(error_body(
                &format!("Invalid URL ({} {path})", req.method()),
                "invalid_request_error",
                None,
                None,
            )),
        ),
    }
}

fn bad_request(message: &str, param: &str) -> (StatusCode, Option<Value>) {
    (
        StatusCode::BAD_REQUEST,
        Some(error_body(
            message,
            "invalid_request_error",
            Some(param),
            None,
        )),
    )
}

/// `model` must be a non-empty string in a JSON object body.
fn check_model(body: &Value) -> Result<String, (StatusCode, Option<Value>)> {
    if !body.is_object() {
        return Err(bad_request(
            "We could not parse the JSON body of your request.",
            "body",
        ));
    }
    match body.get("model").and_then(Value::as_str) {
        Some(model) if !model.is_empty() => Ok(model.to_owned()),
        _ => Err(bad_request("Missing required parameter: 'model'.", "model")),
    }
}

/// Text of a message `content`: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn summarize(prefix: &str, chars: usize, text: &str) -> String {
    let kept: String = text.chars().take(chars).collect();
    format!("{prefix}{kept}")
}

/// Rough token count for `usage`: words, at least 1.
fn tokens(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn chat_completion(
    body: &Value,
    id: u64,
    prefix: &str,
    chars: usize,
) -> (StatusCode, Option<Value>) {
    let model = match check_model(body) {
        Ok(model) => model,
        Err(err) => return err,
    };
    let Some(messages) = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return bad_request("Missing required parameter: 'messages'.", "messages");
    };
    const ROLES: [&str; 6] = [
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
    ];
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str);
        if !role.is_some_and(|r| ROLES.contains(&r)) {
            return bad_request(
                &format!("Invalid value for 'role' in messages[{i}]."),
                &format!("messages[{i}].role"),
            );
        }
    }
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();
    let content = summarize(prefix, chars, &user_text);
    let prompt_tokens: u64 = messages
        .iter()
        .filter_map(|m| m.get("content"))
        .map(|c| tokens(&content_text(c)))
        .sum();
    let completion_tokens = tokens(&content);
    (
        StatusCode::OK,
        Some(json!({
            "id": format!("chatcmpl-standin{id}"),
            "object": "chat.completion",
            "created": chrono::Utc::now().timestamp(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens
            },
            "service_tier": "default",
            "system_fingerprint": null
        })),
    )
}

fn response(body: &Value, id: u64, prefix: &str, chars: usize) -> (StatusCode, Option<Value>) {
    let model = match check_model(body) {
        Ok(model) => model,
        Err(err) => return err,
    };
    let input_text = match body.get("input") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|item| item.get("role").and_then(Value::as_str).unwrap_or("user") == "user")
            .filter_map(|item| item.get("content"))
            .map(content_text)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return bad_request("Missing required parameter: 'input'.", "input"),
    };
    let text = summarize(prefix, chars, &input_text);
    let input_tokens = tokens(&input_text);
    let output_tokens = tokens(&text);
    (
        StatusCode::OK,
        Some(json!({
            "id": format!("resp_standin{id}"),
            "object": "response",
            "created_at": chrono::Utc::now().timestamp(),
            "status": "completed",
            "error": null,
            "incomplete_details": null,
            "instructions": body.get("instructions").cloned().unwrap_or(Value::Null),
            "model": model,
            "output": [{
                "type": "message",
                "id": format!("msg_standin{id}"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]
            }],
            "parallel_tool_calls": true,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens
            }
        })),
    )
}

/// `POST /v1/realtime/calls/{call_id}/{accept|reject|refer|hangup}`: 200 with an empty body.
fn realtime_call_control(path: &str, body: &Value) -> (StatusCode, Option<Value>) {
    let rest = path.trim_start_matches("/v1/realtime/calls/");
    let Some((call_id, action)) = rest.split_once('/') else {
        return bad_request("Invalid URL.", "call_id");
    };
    if call_id.is_empty() {
        return bad_request("Missing call id.", "call_id");
    }
    match action {
        "accept" => {
            if body.get("type").and_then(Value::as_str) != Some("realtime") {
                return bad_request(
                    "Missing required parameter: 'type' (must be 'realtime').",
                    "type",
                );
            }
            (StatusCode::OK, None)
        }
        "refer" => {
            if body.get("target_uri").and_then(Value::as_str).is_none() {
                return bad_request("Missing required parameter: 'target_uri'.", "target_uri");
            }
            (StatusCode::OK, None)
        }
        "reject" | "hangup" => (StatusCode::OK, None),
        _ => (
            StatusCode::NOT_FOUND,
            Some(error_body(
                "Invalid URL.",
                "invalid_request_error",
                None,
                None,
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(base: &str, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        let client = awc::Client::default();
        let mut request = client.post(format!("{base}{path}"));
        if let Some(key) = key {
            request = request.insert_header(("Authorization", format!("Bearer {key}")));
        }
        let mut response = request.send_json(body).await.unwrap();
        let bytes = response.body().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (response.status().as_u16(), value)
    }

    #[actix_web::test]
    async fn chat_completion_summarizes_the_user_message() {
        // Arrange
        let rest = OpenAiRest::start(OpenAiRestConfig::default()).unwrap();
        let transcript = "caller: I'd like a table for two tomorrow at 7. ".repeat(10);
        let body = json!({"model": "gpt-5-mini", "messages": [
            {"role": "system", "content": "Summarise this phone call in 3 lines."},
            {"role": "user", "content": transcript}
        ]});

        // Act
        let (status, value) = post(
            &rest.base_url(),
            "/chat/completions",
            Some("sk-test"),
            &body,
        )
        .await;

        // Assert
        assert_eq!(status, 200);
        let content = value
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap();
        let expected: String = transcript.chars().take(120).collect();
        assert_eq!(content, format!("Summary: {expected}"));
        assert_eq!(value["object"], "chat.completion");
        assert_eq!(value["choices"][0]["finish_reason"], "stop");
        let recorded = rest.requests_to("/chat/completions");
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].body, body);
        assert_eq!(recorded[0].status, 200);
    }

    #[actix_web::test]
    async fn responses_api_returns_output_text() {
        let rest = OpenAiRest::start(OpenAiRestConfig::default()).unwrap();
        let body = json!({"model": "gpt-5-mini", "instructions": "Summarise.", "input": "The caller booked a table."});
        let (status, value) = post(&rest.base_url(), "/responses", Some("k"), &body).await;
        assert_eq!(status, 200);
        assert_eq!(value["object"], "response");
        assert_eq!(value.pointer("/output/0/type").unwrap(), "message");
        assert_eq!(
            value.pointer("/output/0/content/0/type").unwrap(),
            "output_text"
        );
        assert_eq!(
            value.pointer("/output/0/content/0/text").unwrap(),
            "Summary: The caller booked a table."
        );
    }

    #[actix_web::test]
    async fn failures_auth_and_validation() {
        let rest = OpenAiRest::start(OpenAiRestConfig {
            api_key: Some("sk-right".to_owned()),
            ..OpenAiRestConfig::default()
        })
        .unwrap();
        let base = rest.base_url();
        let good = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});

        // Missing and wrong keys.
        let (status, value) = post(&base, "/chat/completions", None, &good).await;
        assert_eq!(status, 401);
        assert_eq!(value["error"]["code"], "invalid_api_key");
        assert_eq!(
            post(&base, "/chat/completions", Some("sk-wrong"), &good)
                .await
                .0,
            401
        );

        // Injected failures, then success: the retry path.
        rest.fail_next(2);
        for _ in 0..2 {
            let (status, value) = post(&base, "/chat/completions", Some("sk-right"), &good).await;
            assert_eq!(status, 500);
            assert_eq!(value["error"]["type"], "server_error");
            assert!(value["error"]["message"].is_string());
            assert!(value["error"].get("code").is_some());
        }
        let (status, value) = post(&base, "/chat/completions", Some("sk-right"), &good).await;
        assert_eq!(status, 200);
        assert_eq!(
            value.pointer("/choices/0/message/content").unwrap(),
            "Summary: hi"
        );
        rest.fail_next_with(1, 429);
        let (status, value) = post(
            &base,
            "/responses",
            Some("sk-right"),
            &json!({"model": "m", "input": "x"}),
        )
        .await;
        assert_eq!(
            (status, value["error"]["code"].as_str()),
            (429, Some("rate_limit_exceeded"))
        );

        // Validation.
        assert_eq!(
            post(
                &base,
                "/chat/completions",
                Some("sk-right"),
                &json!({"messages": []})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(
                &base,
                "/chat/completions",
                Some("sk-right"),
                &json!({"model": "m"})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(
                &base,
                "/chat/completions",
                Some("sk-right"),
                &json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(
                &base,
                "/responses",
                Some("sk-right"),
                &json!({"model": "m"})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(&base, "/nope", Some("sk-right"), &json!({})).await.0,
            404
        );

        // Realtime SIP call controls.
        assert_eq!(
            post(
                &base,
                "/realtime/calls/rtc_1/accept",
                Some("sk-right"),
                &json!({"type": "realtime", "model": "gpt-realtime"})
            )
            .await,
            (200, Value::Null)
        );
        assert_eq!(
            post(
                &base,
                "/realtime/calls/rtc_1/accept",
                Some("sk-right"),
                &json!({"model": "gpt-realtime"})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(
                &base,
                "/realtime/calls/rtc_1/hangup",
                Some("sk-right"),
                &json!({})
            )
            .await
            .0,
            200
        );
        assert_eq!(rest.requests().len(), 14);
        rest.stop().await;
    }
}
