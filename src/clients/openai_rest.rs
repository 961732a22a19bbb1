//! OpenAI's HTTPS API: call summaries from the text model (Chat Completions).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::{client, error_from, RestError};
use crate::secret::Secret;

/// What the text model is asked to do with a transcript.
const SUMMARY_INSTRUCTIONS: &str =
    "You summarise phone calls between a business's AI receptionist \
and a caller. In at most three short lines, say who called, what they wanted, and what was agreed \
or what follow-up is needed. Write in the language of the conversation.";

/// The text-model client.
#[derive(Clone)]
pub struct OpenAiRest {
    base_url: Arc<str>,
    api_key: Secret,
    model: Arc<str>,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

impl OpenAiRest {
    /// A client of `base_url` (`…/v1`) using `model`.
    pub fn new(base_url: &str, api_key: Secret, model: &str) -> Self {
        Self {
            base_url: Arc::from(base_url.trim_end_matches('/')),
            api_key,
            model: Arc::from(model),
        }
    }

    /// Summarises a transcript (one `role: text` line per segment).
    pub async fn summarize(&self, transcript: &str) -> Result<String, RestError> {
        let body = json!({
            "model": &*self.model,
            "messages": [
                { "role": "system", "content": SUMMARY_INSTRUCTIONS },
                { "role": "user", "content": transcript },
            ],
        });
        let mut response = client()
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(self.api_key.expose())
            .send_json(&body)
            .await
            .map_err(|e| RestError::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        let completion: Completion = response
            .json()
            .limit(1024 * 1024)
            .await
            .map_err(|e| RestError::Decode(e.to_string()))?;
        completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                RestError::Decode("no summary text in choices[0].message.content".into())
            })
    }
}
