//! Twilio REST stand-in under `/2010-04-01`: live-call updates (transfer, hang-up), outbound
//! call creation and phone-number provisioning.
//!
//! Strict about what callvisor could get wrong: HTTP Basic `AccountSid:AuthToken` (401 with
//! Twilio's `20003` error otherwise), the account in the path matching the credentials,
//! form-encoded bodies, the `.json` suffix, required parameters (`To`/`From` and one of
//! `Url`/`Twiml`/`ApplicationSid` on create; `PhoneNumber` or `AreaCode` to buy), `Status`
//! only `completed`/`canceled` on update, a redirect of a finished call refused (400, code
//! 21220), and 404/20404 for a call marked gone. Responses follow Twilio's JSON resource
//! shapes (sid, account_sid, to, from, status, uri, RFC 2822 dates…) and its paged list
//! shape. Lenient: an update for a CallSid it has never seen is accepted (inbound calls come
//! from the simulated caller, not from this server) and nothing is rate-limited. Error codes
//! other than 20003, 20404, 21220 and 21422 are best guesses; `Twiml` is checked with the
//! caller's TwiML reader (12100 on a parse failure).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::form::{form_value, parse_form};
use super::server::{any_local_port, bind, lock, new_sid, RunningServer, SHUTDOWN_TIMEOUT_SECS};

/// Twilio's REST API version prefix.
const API_VERSION: &str = "2010-04-01";

/// Default page size of list resources.
const DEFAULT_PAGE_SIZE: usize = 50;

/// How the Twilio REST stand-in behaves.
#[derive(Debug, Clone)]
pub struct TwilioRestConfig {
    /// Where to listen; `127.0.0.1:0` by default.
    pub bind: SocketAddr,
    /// The account (`AC…`) whose credentials are accepted.
    pub account_sid: String,
    /// Its Auth Token.
    pub auth_token: String,
    /// Numbers the account already owns (E.164), listed by `IncomingPhoneNumbers.json`.
    pub numbers: Vec<String>,
}

impl Default for TwilioRestConfig {
    fn default() -> Self {
        TwilioRestConfig {
            bind: any_local_port(),
            account_sid: format!("AC{}", "0".repeat(32)),
            auth_token: "standin-auth-token".to_owned(),
            numbers: Vec::new(),
        }
    }
}

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TwilioRequest {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/2010-04-01/Accounts/AC…/Calls/CA….json`.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// Decoded form parameters, in order, repeated keys kept.
    pub params: Vec<(String, String)>,
    /// The status the stand-in answered with.
    pub status: u16,
}

impl TwilioRequest {
    /// The first form parameter called `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        form_value(&self.params, name)
    }
}

/// A phone number the account owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberRecord {
    /// `PN…`.
    pub sid: String,
    /// E.164 number.
    pub phone_number: String,
    /// `VoiceUrl`, if set.
    pub voice_url: Option<String>,
    /// `FriendlyName`.
    pub friendly_name: String,
    /// Creation time, RFC 2822.
    pub date_created: String,
    /// Last update, RFC 2822.
    pub date_updated: String,
}

/// A call the stand-in knows about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// `CA…`.
    pub sid: String,
    /// `to`.
    pub to: String,
    /// `from`.
    pub from: String,
    /// `queued`, `in-progress`, `completed`, `canceled`…
    pub status: String,
    /// `inbound` or `outbound-api`.
    pub direction: String,
    /// Creation time, RFC 2822.
    pub date_created: String,
    /// `StatusCallback` of a call created through the API (where the carrier reports its end).
    pub status_callback: Option<String>,
}

#[derive(Debug)]
struct State {
    config: TwilioRestConfig,
    requests: Vec<TwilioRequest>,
    calls: HashMap<String, CallRecord>,
    gone: Vec<String>,
    numbers: Vec<NumberRecord>,
    fail_remaining: u32,
    fail_status: u16,
    /// How long each answer waits after the request took effect.
    answer_delay: std::time::Duration,
}

/// A running Twilio REST stand-in; stops when dropped.
#[derive(Debug)]
pub struct TwilioRest {
    server: RunningServer,
    state: Arc<Mutex<State>>,
}

fn now_rfc2822() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

fn number_record(
    phone_number: &str,
    friendly_name: Option<&str>,
    voice_url: Option<&str>,
) -> NumberRecord {
    let now = now_rfc2822();
    NumberRecord {
        sid: new_sid("PN"),
        phone_number: phone_number.to_owned(),
        voice_url: voice_url.map(str::to_owned),
        friendly_name: friendly_name.map_or_else(|| format_number(phone_number), str::to_owned),
        date_created: now.clone(),
        date_updated: now,
    }
}

/// `+14155550100` → `(415) 555-0100`, as Twilio formats North American friendly names.
fn format_number(e164: &str) -> String {
    match e164.strip_prefix("+1") {
        Some(digits) if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let (area, rest) = digits.split_at(3);
            let (exchange, line) = rest.split_at(3);
            format!("({area}) {exchange}-{line}")
        }
        _ => e164.to_owned(),
    }
}

impl TwilioRest {
    /// Starts the stand-in on the current actix System.
    ///
    /// # Errors
    /// Binding failed, or there is no actix System.
    pub fn start(config: TwilioRestConfig) -> io::Result<TwilioRest> {
        let (listener, addr) = bind(config.bind)?;
        let numbers = config
            .numbers
            .iter()
            .map(|n| number_record(n, None, None))
            .collect();
        let state = Arc::new(Mutex::new(State {
            config,
            requests: Vec::new(),
            calls: HashMap::new(),
            gone: Vec::new(),
            numbers,
            fail_remaining: 0,
            answer_delay: std::time::Duration::ZERO,
            fail_status: 503,
        }));
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();
        Ok(TwilioRest {
            server: RunningServer::spawn(server, addr)?,
            state,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:P/2010-04-01`: the value for `TWILIO_API_BASE`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/{API_VERSION}", self.addr())
    }

    /// Every request so far, in arrival order.
    #[must_use]
    pub fn requests(&self) -> Vec<TwilioRequest> {
        lock(&self.state).requests.clone()
    }

    /// Form parameters of every update (`POST …/Calls/{call_sid}.json`) of one call, in order,
    /// rejected ones included (check [`TwilioRequest::status`] through [`Self::requests`]).
    #[must_use]
    pub fn call_updates(&self, call_sid: &str) -> Vec<Vec<(String, String)>> {
        let suffix = format!("/Calls/{call_sid}.json");
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(&suffix))
            .map(|r| r.params.clone())
            .collect()
    }

    /// Form parameters of every call-create request (`POST …/Calls.json`), in order.
    #[must_use]
    pub fn calls_created(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Calls.json"))
            .map(|r| r.params.clone())
            .collect()
    }

    /// The calls the stand-in knows (created, updated or registered).
    #[must_use]
    pub fn calls(&self) -> Vec<CallRecord> {
        let mut calls: Vec<CallRecord> = lock(&self.state).calls.values().cloned().collect();
        calls.sort_by(|a, b| a.sid.cmp(&b.sid));
        calls
    }

    /// The numbers the account owns now.
    #[must_use]
    pub fn numbers(&self) -> Vec<NumberRecord> {
        lock(&self.state).numbers.clone()
    }

    /// Makes later requests about `call_sid` answer 404 with code 20404 (call already gone).
    pub fn mark_call_gone(&self, call_sid: &str) {
        lock(&self.state).gone.push(call_sid.to_owned());
    }

    /// Registers an inbound call as in progress (e.g. one placed by the simulated caller).
    pub fn register_call(&self, call_sid: &str, from: &str, to: &str) {
        let record = CallRecord {
            sid: call_sid.to_owned(),
            to: to.to_owned(),
            from: from.to_owned(),
            status: "in-progress".to_owned(),
            direction: "inbound".to_owned(),
            date_created: now_rfc2822(),
            status_callback: None,
        };
        lock(&self.state).calls.insert(call_sid.to_owned(), record);
    }

    /// Makes the next `n` authenticated requests fail with `status` (429 → code 20429,
    /// otherwise code 20500) before doing anything.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut state = lock(&self.state);
        state.fail_remaining = n;
        state.fail_status = status;
    }

    /// Makes every later answer wait `delay` after its request took effect, as
    /// a slow network does: a call exists (and may end) before its creator
    /// hears its CallSid.
    pub fn delay_answers(&self, delay: std::time::Duration) {
        lock(&self.state).answer_delay = delay;
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A Twilio REST error body.
fn twilio_error(status: StatusCode, code: u32, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16()
        }),
    )
}

fn not_found(path: &str) -> (StatusCode, Value) {
    twilio_error(
        StatusCode::NOT_FOUND,
        20404,
        &format!("The requested resource {path} was not found"),
    )
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let path = req.path().to_owned();
    let query = parse_form(req.query_string());
    let form_content = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let params = if body.is_empty() {
        Vec::new()
    } else {
        parse_form(&String::from_utf8_lossy(&body))
    };
    let (status, value, delay) = {
        let mut state = lock(&state);
        let (status, value) = route(
            &req,
            &path,
            &query,
            &params,
            form_content || body.is_empty(),
            &mut state,
        );
        state.requests.push(TwilioRequest {
            method: req.method().as_str().to_owned(),
            path,
            query,
            params,
            status: status.as_u16(),
        });
        (status, value, state.answer_delay)
    };
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    if status == StatusCode::NO_CONTENT {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::build(status).json(value)
    }
}

/// Checks `Authorization: Basic base64(AccountSid:AuthToken)`.
fn authorized(req: &HttpRequest, config: &TwilioRestConfig) -> bool {
    let Some(encoded) = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", config.account_sid, config.auth_token);
    callvisor_wire::signing::constant_time_eq(&decoded, expected.as_bytes())
}

fn route(
    req: &HttpRequest,
    path: &str,
    query: &[(String, String)],
    params: &[(String, String)],
    form_body: bool,
    state: &mut State,
) -> (StatusCode, Value) {
    if !authorized(req, &state.config) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if state.fail_remaining > 0 {
        state.fail_remaining -= 1;
        let status =
            StatusCode::from_u16(state.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let code = if status == StatusCode::TOO_MANY_REQUESTS {
            20429
        } else {
            20500
        };
        return twilio_error(status, code, "Injected failure (stand-in)");
    }
    let Some(rest) = path.strip_prefix(&format!("/{API_VERSION}/Accounts/")) else {
        return not_found(path);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let Some((&account, resource)) = segments.split_first() else {
        return not_found(path);
    };
    if account != state.config.account_sid {
        return not_found(path);
    }
    let method = req.method().as_str();
    if method == "POST" && !form_body {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "Request body must be application/x-www-form-urlencoded",
        );
    }
    match (method, resource) {
        ("POST", ["Calls.json"]) => create_call(params, state),
        ("POST", ["Calls", call]) => match call.strip_suffix(".json") {
            Some(call_sid) => update_call(path, call_sid, params, state),
            None => not_found(path),
        },
        ("GET", ["Calls", call]) => match call.strip_suffix(".json") {
            Some(call_sid) => fetch_call(path, call_sid, state),
            None => not_found(path),
        },
        ("GET", ["IncomingPhoneNumbers.json"]) => list_numbers(query, state),
        ("POST", ["IncomingPhoneNumbers.json"]) => buy_number(params, state),
        ("POST", ["IncomingPhoneNumbers", number]) => match number.strip_suffix(".json") {
            Some(sid) => update_number(path, sid, params, state),
            None => not_found(path),
        },
        ("DELETE", ["IncomingPhoneNumbers", number]) => match number.strip_suffix(".json") {
            Some(sid) => {
                let before = state.numbers.len();
                state.numbers.retain(|n| n.sid != sid);
                if state.numbers.len() < before {
                    (StatusCode::NO_CONTENT, Value::Null)
                } else {
                    not_found(path)
                }
            }
            None => not_found(path),
        },
        ("GET", ["AvailablePhoneNumbers", country, kind]) => {
            available_numbers(path, country, kind, query, state)
        }
        _ => not_found(path),
    }
}

fn call_json(call: &CallRecord, account_sid: &str) -> Value {
    let uri = format!(
        "/{API_VERSION}/Accounts/{account_sid}/Calls/{}.json",
        call.sid
    );
    json!({
        "sid": call.sid,
        "account_sid": account_sid,
        "parent_call_sid": null,
        "to": call.to,
        "to_formatted": format_number(&call.to),
        "from": call.from,
        "from_formatted": format_number(&call.from),
        "phone_number_sid": null,
        "status": call.status,
        "start_time": null,
        "end_time": null,
        "duration": null,
        "price": null,
        "price_unit": "USD",
        "direction": call.direction,
        "answered_by": null,
        "annotation": null,
        "api_version": API_VERSION,
        "forwarded_from": null,
        "group_sid": null,
        "caller_name": null,
        "queue_time": "0",
        "trunk_sid": null,
        "date_created": call.date_created,
        "date_updated": now_rfc2822(),
        "uri": uri,
        "subresource_uris": {
            "notifications": uri.replace(".json", "/Notifications.json"),
            "recordings": uri.replace(".json", "/Recordings.json"),
            "events": uri.replace(".json", "/Events.json")
        }
    })
}

fn bad_param(message: &str) -> (StatusCode, Value) {
    twilio_error(StatusCode::BAD_REQUEST, 21205, message)
}

fn create_call(params: &[(String, String)], state: &mut State) -> (StatusCode, Value) {
    let to = form_value(params, "To").filter(|v| !v.is_empty());
    let from = form_value(params, "From").filter(|v| !v.is_empty());
    let (Some(to), Some(from)) = (to, from) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21201,
            "Both 'To' and 'From' are required",
        );
    };
    let how = ["Url", "Twiml", "ApplicationSid"]
        .iter()
        .filter(|name| form_value(params, name).is_some_and(|v| !v.is_empty()))
        .count();
    if how != 1 {
        return bad_param("Exactly one of 'Url', 'Twiml' or 'ApplicationSid' is required");
    }
    let call = CallRecord {
        sid: new_sid("CA"),
        to: to.to_owned(),
        from: from.to_owned(),
        status: "queued".to_owned(),
        direction: "outbound-api".to_owned(),
        date_created: now_rfc2822(),
        status_callback: form_value(params, "StatusCallback")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
    };
    let value = call_json(&call, &state.config.account_sid);
    state.calls.insert(call.sid.clone(), call);
    (StatusCode::CREATED, value)
}

fn update_call(
    path: &str,
    call_sid: &str,
    params: &[(String, String)],
    state: &mut State,
) -> (StatusCode, Value) {
    if state.gone.iter().any(|g| g == call_sid) {
        return not_found(path);
    }
    let status = form_value(params, "Status");
    if let Some(status) = status {
        if status != "completed" && status != "canceled" {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                20001,
                "Status must be 'completed' or 'canceled'",
            );
        }
    }
    if let Some(twiml) = form_value(params, "Twiml") {
        if twiml.chars().count() > 4000 {
            return bad_param("Twiml is longer than 4000 characters");
        }
        if let Err(err) = super::twiml::parse_twiml(twiml) {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                12100,
                &format!("Document parse failure: {err}"),
            );
        }
    }
    let redirect = form_value(params, "Twiml").is_some() || form_value(params, "Url").is_some();
    if status.is_none() && !redirect {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "Nothing to update: give Twiml, Url or Status",
        );
    }
    let account_sid = state.config.account_sid.clone();
    let call = state
        .calls
        .entry(call_sid.to_owned())
        .or_insert_with(|| CallRecord {
            sid: call_sid.to_owned(),
            to: String::new(),
            from: String::new(),
            status: "in-progress".to_owned(),
            direction: "inbound".to_owned(),
            date_created: now_rfc2822(),
            status_callback: None,
        });
    let finished = call.status == "completed" || call.status == "canceled";
    if redirect && finished {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21220,
            "Call is not in-progress. Cannot redirect.",
        );
    }
    if let Some(status) = status {
        call.status = status.to_owned();
    }
    (StatusCode::OK, call_json(call, &account_sid))
}

fn fetch_call(path: &str, call_sid: &str, state: &State) -> (StatusCode, Value) {
    if state.gone.iter().any(|g| g == call_sid) {
        return not_found(path);
    }
    match state.calls.get(call_sid) {
        Some(call) => (StatusCode::OK, call_json(call, &state.config.account_sid)),
        None => not_found(path),
    }
}

fn number_json(number: &NumberRecord, account_sid: &str) -> Value {
    json!({
        "sid": number.sid,
        "account_sid": account_sid,
        "friendly_name": number.friendly_name,
        "phone_number": number.phone_number,
        "voice_url": number.voice_url,
        "voice_method": "POST",
        "voice_fallback_url": null,
        "voice_fallback_method": "POST",
        "voice_caller_id_lookup": false,
        "voice_application_sid": null,
        "status_callback": null,
        "status_callback_method": "POST",
        "sms_url": null,
        "sms_method": "POST",
        "capabilities": {"voice": true, "sms": true, "mms": true, "fax": false},
        "beta": false,
        "origin": "twilio",
        "status": "in-use",
        "address_requirements": "none",
        "trunk_sid": null,
        "emergency_status": "Inactive",
        "api_version": API_VERSION,
        "date_created": number.date_created,
        "date_updated": number.date_updated,
        "uri": format!("/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{}.json", number.sid)
    })
}

fn page_params(query: &[(String, String)]) -> (usize, usize) {
    let page_size = form_value(query, "PageSize")
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| (1..=1000).contains(&n))
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let page = form_value(query, "Page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (page_size, page)
}

fn list_numbers(query: &[(String, String)], state: &State) -> (StatusCode, Value) {
    let account = &state.config.account_sid;
    let filter = form_value(query, "PhoneNumber");
    let matching: Vec<&NumberRecord> = state
        .numbers
        .iter()
        .filter(|n| filter.is_none_or(|f| n.phone_number == f))
        .collect();
    let (page_size, page) = page_params(query);
    let start = page.saturating_mul(page_size);
    let items: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(page_size)
        .map(|n| number_json(n, account))
        .collect();
    let base = format!("/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers.json");
    let page_uri = |p: usize| format!("{base}?PageSize={page_size}&Page={p}");
    let has_next = start.saturating_add(page_size) < matching.len();
    (
        StatusCode::OK,
        json!({
            "first_page_uri": page_uri(0),
            "end": start + items.len().saturating_sub(1),
            "previous_page_uri": if page > 0 { Value::String(page_uri(page - 1)) } else { Value::Null },
            "uri": page_uri(page),
            "page_size": page_size,
            "start": start,
            "next_page_uri": if has_next { Value::String(page_uri(page + 1)) } else { Value::Null },
            "page": page,
            "incoming_phone_numbers": items
        }),
    )
}

fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The first `+1{area}555{NNNN}` number nobody owns, from 0100 up.
fn free_number_in(area: &str, owned: &[NumberRecord], skip: usize) -> Option<String> {
    (100..10_000)
        .map(|n| format!("+1{area}555{n:04}"))
        .filter(|candidate| owned.iter().all(|o| &o.phone_number != candidate))
        .nth(skip)
}

fn buy_number(params: &[(String, String)], state: &mut State) -> (StatusCode, Value) {
    let phone_number = if let Some(number) = form_value(params, "PhoneNumber") {
        if !is_e164(number) {
            return twilio_error(StatusCode::BAD_REQUEST, 21421, "PhoneNumber is invalid");
        }
        if state.numbers.iter().any(|n| n.phone_number == number) {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21422,
                "PhoneNumber is not available",
            );
        }
        number.to_owned()
    } else if let Some(area) = form_value(params, "AreaCode") {
        let valid = area.len() == 3 && area.bytes().all(|b| b.is_ascii_digit());
        match free_number_in(area, &state.numbers, 0).filter(|_| valid) {
            Some(number) => number,
            None => {
                return twilio_error(
                    StatusCode::BAD_REQUEST,
                    21452,
                    "No phone numbers found in area code",
                )
            }
        }
    } else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21421,
            "A 'PhoneNumber' or 'AreaCode' is required",
        );
    };
    let record = number_record(
        &phone_number,
        form_value(params, "FriendlyName"),
        form_value(params, "VoiceUrl"),
    );
    let value = number_json(&record, &state.config.account_sid);
    state.numbers.push(record);
    (StatusCode::CREATED, value)
}

fn update_number(
    path: &str,
    sid: &str,
    params: &[(String, String)],
    state: &mut State,
) -> (StatusCode, Value) {
    let account = state.config.account_sid.clone();
    let Some(number) = state.numbers.iter_mut().find(|n| n.sid == sid) else {
        return not_found(path);
    };
    if let Some(url) = form_value(params, "VoiceUrl") {
        number.voice_url = Some(url.to_owned());
    }
    if let Some(name) = form_value(params, "FriendlyName") {
        number.friendly_name = name.to_owned();
    }
    number.date_updated = now_rfc2822();
    (StatusCode::OK, number_json(number, &account))
}

fn available_numbers(
    path: &str,
    country: &str,
    kind: &str,
    query: &[(String, String)],
    state: &State,
) -> (StatusCode, Value) {
    if !matches!(kind, "Local.json" | "TollFree.json" | "Mobile.json") || country != "US" {
        return not_found(path);
    }
    let area = match (kind, form_value(query, "AreaCode")) {
        ("TollFree.json", _) => "800".to_owned(),
        (_, Some(area)) if area.len() == 3 && area.bytes().all(|b| b.is_ascii_digit()) => {
            area.to_owned()
        }
        (_, Some(_)) => {
            return (
                StatusCode::OK,
                json!({"uri": path, "available_phone_numbers": []}),
            )
        }
        (_, None) => "415".to_owned(),
    };
    let (page_size, _) = page_params(query);
    let numbers: Vec<Value> = (0..page_size.min(30))
        .filter_map(|i| free_number_in(&area, &state.numbers, i))
        .map(|number| {
            json!({
                "friendly_name": format_number(&number),
                "phone_number": number,
                "lata": null,
                "locality": null,
                "rate_center": null,
                "latitude": null,
                "longitude": null,
                "region": null,
                "postal_code": null,
                "iso_country": "US",
                "address_requirements": "none",
                "beta": false,
                "capabilities": {"voice": true, "SMS": true, "MMS": true}
            })
        })
        .collect();
    (
        StatusCode::OK,
        json!({"uri": path, "available_phone_numbers": numbers}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::encode_form;

    fn config() -> TwilioRestConfig {
        TwilioRestConfig {
            account_sid: "AC11111111111111111111111111111111".to_owned(),
            auth_token: "secret".to_owned(),
            numbers: vec!["+14155550100".to_owned(), "+14155550101".to_owned()],
            ..TwilioRestConfig::default()
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    async fn call(
        method: &str,
        url: &str,
        creds: (&str, &str),
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let client = awc::Client::default();
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let request = client.request(method, url).basic_auth(creds.0, creds.1);
        let mut response = if form.is_empty() {
            request.send().await.unwrap()
        } else {
            request
                .content_type("application/x-www-form-urlencoded")
                .send_body(encode_form(&pairs(form)))
                .await
                .unwrap()
        };
        let bytes = response.body().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (response.status().as_u16(), value)
    }

    #[actix_web::test]
    async fn call_updates_are_authenticated_recorded_and_validated() {
        // Arrange
        let rest = TwilioRest::start(config()).unwrap();
        let account = "AC11111111111111111111111111111111";
        let creds = (account, "secret");
        let call_sid = "CA22222222222222222222222222222222";
        let url = format!(
            "{}/Accounts/{account}/Calls/{call_sid}.json",
            rest.base_url()
        );
        let transfer = "<Response><Dial><Number>+15550001111</Number></Dial></Response>";

        // Act + Assert: wrong credentials.
        let (status, value) =
            call("POST", &url, (account, "wrong"), &[("Status", "completed")]).await;
        assert_eq!((status, value["code"].as_u64()), (401, Some(20003)));

        // Transfer, then hang up, then a redirect of the finished call is refused.
        let (status, value) = call("POST", &url, creds, &[("Twiml", transfer)]).await;
        assert_eq!(status, 200, "{value}");
        assert_eq!(value["sid"], call_sid);
        assert_eq!(value["status"], "in-progress");
        assert_eq!(value["account_sid"], account);
        let (status, value) = call("POST", &url, creds, &[("Status", "completed")]).await;
        assert_eq!((status, value["status"].as_str()), (200, Some("completed")));
        let (status, value) =
            call("POST", &url, creds, &[("Url", "https://x.example/twiml")]).await;
        assert_eq!((status, value["code"].as_u64()), (400, Some(21220)));
        assert_eq!(
            call("POST", &url, creds, &[("Status", "ringing")]).await.0,
            400
        );
        assert_eq!(
            call("POST", &url, creds, &[("Twiml", "<Response><Dial>")])
                .await
                .0,
            400
        );

        // A call marked gone is 404/20404.
        rest.mark_call_gone(call_sid);
        let (status, value) = call("POST", &url, creds, &[("Status", "completed")]).await;
        assert_eq!((status, value["code"].as_u64()), (404, Some(20404)));

        let updates = rest.call_updates(call_sid);
        assert_eq!(updates.len(), 7);
        assert_eq!(form_value(&updates[1], "Twiml"), Some(transfer));
        assert_eq!(rest.requests()[0].status, 401);
    }

    #[actix_web::test]
    async fn calls_are_created_with_a_fresh_sid() {
        let rest = TwilioRest::start(config()).unwrap();
        let account = "AC11111111111111111111111111111111";
        let url = format!("{}/Accounts/{account}/Calls.json", rest.base_url());
        let (status, value) = call(
            "POST",
            &url,
            (account, "secret"),
            &[
                ("To", "+15551112222"),
                ("From", "+14155550100"),
                ("Url", "https://engine.example/twilio/voice"),
                ("StatusCallbackEvent", "initiated"),
                ("StatusCallbackEvent", "completed"),
            ],
        )
        .await;
        assert_eq!(status, 201);
        let sid = value["sid"].as_str().unwrap();
        assert!(sid.starts_with("CA") && sid.len() == 34, "{sid}");
        assert_eq!(value["status"], "queued");
        assert_eq!(value["direction"], "outbound-api");
        assert_eq!(
            value["uri"],
            format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json")
        );
        let created = rest.calls_created();
        assert_eq!(
            created[0]
                .iter()
                .filter(|(k, _)| k == "StatusCallbackEvent")
                .count(),
            2
        );
        assert_eq!(
            call(
                "POST",
                &url,
                (account, "secret"),
                &[("To", "+1555"), ("From", "+1444")]
            )
            .await
            .0,
            400
        );
        // Another account's path is not ours.
        let other = format!(
            "{}/Accounts/AC99999999999999999999999999999999/Calls.json",
            rest.base_url()
        );
        assert_eq!(
            call(
                "POST",
                &other,
                (account, "secret"),
                &[("To", "+1"), ("From", "+1"), ("Url", "u")]
            )
            .await
            .0,
            404
        );
    }

    #[actix_web::test]
    async fn numbers_are_listed_bought_and_repointed() {
        let rest = TwilioRest::start(config()).unwrap();
        let account = "AC11111111111111111111111111111111";
        let creds = (account, "secret");
        let list = format!(
            "{}/Accounts/{account}/IncomingPhoneNumbers.json",
            rest.base_url()
        );

        let (status, value) = call("GET", &format!("{list}?PageSize=1"), creds, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(value["incoming_phone_numbers"].as_array().unwrap().len(), 1);
        assert_eq!(
            value["incoming_phone_numbers"][0]["phone_number"],
            "+14155550100"
        );
        assert!(value["next_page_uri"].is_string());
        assert_eq!(value["page_size"], 1);

        let (status, bought) = call(
            "POST",
            &list,
            creds,
            &[("AreaCode", "415"), ("VoiceUrl", "https://a/voice")],
        )
        .await;
        assert_eq!(status, 201);
        assert_eq!(bought["phone_number"], "+14155550102");
        assert_eq!(bought["voice_url"], "https://a/voice");
        let sid = bought["sid"].as_str().unwrap();
        assert!(sid.starts_with("PN"));
        let (status, value) = call("POST", &list, creds, &[("PhoneNumber", "+14155550100")]).await;
        assert_eq!((status, value["code"].as_u64()), (400, Some(21422)));
        assert_eq!(
            call("POST", &list, creds, &[("PhoneNumber", "+12125550199")])
                .await
                .0,
            201
        );

        let one = format!(
            "{}/Accounts/{account}/IncomingPhoneNumbers/{sid}.json",
            rest.base_url()
        );
        let (status, value) = call("POST", &one, creds, &[("VoiceUrl", "https://b/voice")]).await;
        assert_eq!(
            (status, value["voice_url"].as_str()),
            (200, Some("https://b/voice"))
        );
        assert_eq!(rest.numbers().len(), 4);

        let search = format!(
            "{}/Accounts/{account}/AvailablePhoneNumbers/US/Local.json?AreaCode=415&PageSize=3",
            rest.base_url()
        );
        let (status, value) = call("GET", &search, creds, &[]).await;
        assert_eq!(status, 200);
        let found: Vec<&str> = value["available_phone_numbers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["phone_number"].as_str())
            .collect();
        assert_eq!(found, ["+14155550103", "+14155550104", "+14155550105"]);

        assert_eq!(call("DELETE", &one, creds, &[]).await.0, 204);
        assert_eq!(rest.numbers().len(), 3);
        rest.fail_next(1, 429);
        let (status, value) = call("GET", &list, creds, &[]).await;
        assert_eq!((status, value["code"].as_u64()), (429, Some(20429)));
    }
}
