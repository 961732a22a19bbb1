//! Tenants (`profiles`) and their agent configuration (`user_prompts`).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{phone_numbers, profiles, user_prompts};
use super::DbError;

/// A tenant as the call path needs it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = profiles)]
pub struct Tenant {
    /// `profiles.id`
    pub id: Uuid,
    /// The number callers dial.
    pub phone_number: Option<String>,
    /// Paying: only subscribed tenants get an agent.
    pub is_subscribed: bool,
    /// `standard` (shared pool) or `enterprise` (dedicated numbers).
    pub plan: String,
    /// Live calls allowed at once, across all instances.
    pub max_concurrent_calls: i32,
    /// Where `transfer_to_human` sends callers.
    pub handoff_number: Option<String>,
    /// BCP 47 tag: the agent's language.
    pub preferred_language: String,
    /// The agent's voice, when not the default.
    pub voice: Option<String>,
    /// Languages the agent may pick by the caller's country code (empty: preferred only).
    pub allowed_languages: Vec<String>,
}

/// The tenant's agent instructions.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// `user_prompts.system_prompt`
    pub system_prompt: String,
    /// `user_prompts.config_metadata` (a JSON object: `greeting_message`, ...)
    pub config_metadata: serde_json::Value,
}

type PromptColumns = (user_prompts::system_prompt, user_prompts::config_metadata);

fn with_prompt(row: (Tenant, Option<(String, serde_json::Value)>)) -> (Tenant, Prompt) {
    let (tenant, prompt) = row;
    let prompt = prompt
        .map(|(system_prompt, config_metadata)| Prompt {
            system_prompt,
            config_metadata,
        })
        .unwrap_or_default();
    (tenant, prompt)
}

const PROMPT: PromptColumns = (user_prompts::system_prompt, user_prompts::config_metadata);

/// The tenant a call to `number` (E.164) reaches, with its prompt: the
/// tenant whose business number it is (`profiles.phone_number`), else the
/// tenant a pool number is dedicated to. A shared pool number is no tenant's
/// (`None`): it carries outbound calls of many tenants, so a stranger calling
/// it back cannot be told which one they mean. Should a number be both (an
/// operator's mistake), the business number's owner wins. One statement.
pub async fn find_by_number(
    conn: &mut AsyncPgConnection,
    number: &str,
) -> Result<Option<(Tenant, Prompt)>, DbError> {
    // The ids of both kinds of owner, each found by its unique index (an `OR`
    // of the two conditions would scan every tenant on every call).
    let owner = diesel::alias!(profiles as owner);
    let owners = owner
        .filter(owner.field(profiles::phone_number).eq(number))
        .select(owner.field(profiles::id).nullable())
        .union_all(
            phone_numbers::table
                .filter(phone_numbers::phone_number.eq(number))
                .filter(phone_numbers::dedicated_to.is_not_null())
                .select(phone_numbers::dedicated_to),
        );
    let row = profiles::table
        .left_join(user_prompts::table.on(user_prompts::user_id.eq(profiles::id)))
        .filter(profiles::id.nullable().eq_any(owners))
        .order(profiles::phone_number.is_not_distinct_from(number).desc())
        .select((Tenant::as_select(), PROMPT.nullable()))
        .first::<(Tenant, Option<(String, serde_json::Value)>)>(conn)
        .await
        .optional()?;
    Ok(row.map(with_prompt))
}

/// The tenant with id `id`, with its prompt.
pub async fn find_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Option<(Tenant, Prompt)>, DbError> {
    let row = profiles::table
        .left_join(user_prompts::table.on(user_prompts::user_id.eq(profiles::id)))
        .filter(profiles::id.eq(id))
        .select((Tenant::as_select(), PROMPT.nullable()))
        .first::<(Tenant, Option<(String, serde_json::Value)>)>(conn)
        .await
        .optional()?;
    Ok(row.map(with_prompt))
}
