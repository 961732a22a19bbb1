//! Drives a SIP call the way OpenAI does: signed project webhooks
//! (`realtime.call.incoming`, `realtime.call.ended`) posted to the service's
//! `/openai/webhook`, in OpenAI's event shape and Standard Webhooks headers.
//! The call's controls land on the [`OpenAiRest`](crate::OpenAiRest) stand-in
//! and its sideband socket on the [`RealtimeServer`](crate::RealtimeServer).

use serde_json::{json, Value};

use callvisor_wire::signing::standard_webhooks;

/// Posts signed OpenAI webhooks to one URL.
#[derive(Debug, Clone)]
pub struct SipDriver {
    /// The webhook URL (`http://127.0.0.1:P/openai/webhook`).
    pub url: String,
    /// The project's signing secret (`whsec_…`).
    pub secret: String,
}

/// What a delivery looked like, so a test can replay or tamper with it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook-id`
    pub id: String,
    /// `webhook-timestamp`
    pub timestamp: String,
    /// `webhook-signature`
    pub signature: String,
    /// The raw body.
    pub body: String,
}

/// `realtime.call.incoming` for `call_id` with these SIP headers (name, value).
#[must_use]
pub fn incoming_event(call_id: &str, sip_headers: &[(&str, &str)]) -> Value {
    let headers: Vec<Value> = sip_headers
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    json!({
        "object": "event",
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "type": "realtime.call.incoming",
        "created_at": chrono::Utc::now().timestamp(),
        "data": { "call_id": call_id, "sip_headers": headers },
    })
}

/// `realtime.call.ended` for `call_id`.
#[must_use]
pub fn ended_event(call_id: &str) -> Value {
    json!({
        "object": "event",
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "type": "realtime.call.ended",
        "created_at": chrono::Utc::now().timestamp(),
        "data": { "call_id": call_id },
    })
}

impl SipDriver {
    /// A driver of `url` signing with `secret`.
    #[must_use]
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
        }
    }

    /// A signed delivery of `event`, sent `age_secs` ago (0: now).
    #[must_use]
    pub fn sign(&self, event: &Value, age_secs: i64) -> Delivery {
        let id = format!("wh_{}", uuid::Uuid::new_v4().simple());
        let at = chrono::Utc::now().timestamp() - age_secs;
        let body = event.to_string();
        let signature =
            standard_webhooks::sign(&self.secret, &id, at, body.as_bytes()).unwrap_or_default();
        Delivery {
            id,
            timestamp: at.to_string(),
            signature,
            body,
        }
    }

    /// Posts a delivery as is; returns the HTTP status.
    pub async fn post(&self, delivery: &Delivery) -> u16 {
        let sent = awc::Client::new()
            .post(&self.url)
            .insert_header(("content-type", "application/json"))
            .insert_header((standard_webhooks::ID_HEADER, delivery.id.as_str()))
            .insert_header((
                standard_webhooks::TIMESTAMP_HEADER,
                delivery.timestamp.as_str(),
            ))
            .insert_header((
                standard_webhooks::SIGNATURE_HEADER,
                delivery.signature.as_str(),
            ))
            .send_body(delivery.body.clone())
            .await;
        sent.map_or(0, |r| r.status().as_u16())
    }

    /// Signs and posts `event` now; returns the delivery and the status.
    pub async fn send(&self, event: &Value) -> (Delivery, u16) {
        let delivery = self.sign(event, 0);
        let status = self.post(&delivery).await;
        (delivery, status)
    }

    /// A call from `from` to `to` (E.164) over a plain SIP trunk.
    pub async fn incoming(&self, call_id: &str, from: &str, to: &str) -> (Delivery, u16) {
        let from = format!("sip:{from}@sip.example.com");
        let to = format!("sip:{to}@sip.example.com");
        self.send(&incoming_event(
            call_id,
            &[("From", &from), ("To", &to), ("Call-ID", call_id)],
        ))
        .await
    }

    /// A WhatsApp call from `from` to `to`, as Meta's SIP sends it through a provider.
    pub async fn incoming_whatsapp(&self, call_id: &str, from: &str, to: &str) -> (Delivery, u16) {
        let from = format!("<sip:{from}@wa.meta.vc>;tag=wa");
        let to = format!("<sip:{to}@sip.example.com>");
        self.send(&incoming_event(
            call_id,
            &[("From", &from), ("To", &to), ("X-WA-Meta-Call-Id", call_id)],
        ))
        .await
    }

    /// The call is over.
    pub async fn ended(&self, call_id: &str) -> (Delivery, u16) {
        self.send(&ended_event(call_id)).await
    }
}
