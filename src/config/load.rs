//! Layered loading: files, then `.env`, then the environment.
//!
//! Overrides are applied to the merged TOML table *before* it becomes typed
//! settings, each checked against the type of its default in
//! `config/default.toml`, so that every malformed variable is reported by
//! name at once rather than the first serde error alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

use super::names::{GENERIC_PREFIX, LEGACY_NAMES};
use super::validate::{self, ConfigIssue};
use super::{AppEnv, Purpose, Settings};

/// Environment variables as seen by the loader (process environment plus `.env`).
pub type EnvVars = BTreeMap<String, String>;

/// The defaults, compiled in so a binary run outside the repository still has every key.
const EMBEDDED_DEFAULTS: &str = include_str!("../../config/default.toml");

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Every problem found, each naming the variable or file to fix.
    #[error("invalid configuration (APP_ENV={env}):\n{}", format_issues(.issues))]
    Invalid {
        /// The environment being loaded.
        env: String,
        /// All problems, in a stable order.
        issues: Vec<ConfigIssue>,
    },
}

impl ConfigError {
    /// The problems found.
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            Self::Invalid { issues, .. } => issues,
        }
    }
}

fn format_issues(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(|issue| format!("  - {issue}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads settings for this process: `CALLVISOR_CONFIG_DIR` (default `config`),
/// the process environment, and `.env` in the working directory when present
/// (the process environment wins over `.env`).
pub fn load(purpose: Purpose) -> Result<Settings, ConfigError> {
    let mut env: EnvVars = std::env::vars().collect();
    let mut issues = Vec::new();
    if Path::new(".env").exists() {
        match dotenvy::from_path_iter(".env") {
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Ok((key, value)) => {
                            env.entry(key).or_insert(value);
                        }
                        Err(e) => issues.push(ConfigIssue::new(".env", e.to_string())),
                    }
                }
            }
            Err(e) => issues.push(ConfigIssue::new(".env", e.to_string())),
        }
    }
    let dir = env
        .get("CALLVISOR_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"));
    let mut result = load_from(&dir, &env, purpose);
    if !issues.is_empty() {
        let env_name = env.get("APP_ENV").cloned().unwrap_or_default();
        match &mut result {
            Err(ConfigError::Invalid { issues: all, .. }) => all.splice(0..0, issues),
            Ok(_) => {
                return Err(ConfigError::Invalid {
                    env: env_name,
                    issues,
                })
            }
        };
    }
    result
}

/// Loads settings from a config directory and a given environment: the pure
/// core of [`load`], used directly by tests.
pub fn load_from(
    config_dir: &Path,
    env: &EnvVars,
    purpose: Purpose,
) -> Result<Settings, ConfigError> {
    let mut issues = Vec::new();
    let given = env.get("APP_ENV").filter(|v| !v.is_empty());
    let env_name = given.map_or("development", String::as_str);
    // What error messages show: not "development" when nothing was chosen.
    let shown_env = given.map_or("(not set)", String::as_str);
    let app_env = AppEnv::parse(env_name).unwrap_or_else(|| {
        issues.push(ConfigIssue::new(
            "APP_ENV",
            format!("expected development, production or test, got {env_name:?}"),
        ));
        AppEnv::Development
    });

    let mut table = read_defaults(config_dir, &mut issues);
    let env_file = config_dir.join(format!("{}.toml", app_env.as_str()));
    if env_file.exists() {
        if let Some(layer) = read_table(&env_file, &mut issues) {
            merge_layer(&mut table, layer, &env_file, &mut issues);
        }
    }
    apply_environment(&mut table, env, &mut issues);

    let mut settings = match Settings::deserialize(Value::Table(table)) {
        Ok(settings) => settings,
        Err(e) => {
            issues.push(ConfigIssue::new("config files", e.to_string()));
            return Err(ConfigError::Invalid {
                env: shown_env.to_owned(),
                issues,
            });
        }
    };
    settings.app_env = app_env;
    if given.is_none() {
        // Development is the default only for a process that looks like one:
        // a live deployment that lost its APP_ENV must not start with
        // development's relaxed checks (README, "Configuration").
        let signs = validate::production_signs(&settings);
        if !signs.is_empty() {
            issues.push(ConfigIssue::new(
                "APP_ENV",
                format!(
                    "not set, but this process looks like a live deployment ({}): set \
                     APP_ENV=production, or APP_ENV=development to use these settings on \
                     a development machine on purpose",
                    signs.join("; ")
                ),
            ));
        }
    }
    issues.extend(validate::validate(&settings, purpose));
    if issues.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Invalid {
            env: shown_env.to_owned(),
            issues,
        })
    }
}

fn read_defaults(dir: &Path, issues: &mut Vec<ConfigIssue>) -> Table {
    let path = dir.join("default.toml");
    if path.exists() {
        if let Some(table) = read_table(&path, issues) {
            return table;
        }
    }
    match EMBEDDED_DEFAULTS.parse::<Table>() {
        Ok(table) => table,
        Err(e) => {
            issues.push(ConfigIssue::new("embedded default.toml", e.to_string()));
            Table::new()
        }
    }
}

fn read_table(path: &Path, issues: &mut Vec<ConfigIssue>) -> Option<Table> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => match text.parse::<Table>() {
            Ok(table) => Some(table),
            Err(e) => {
                issues.push(ConfigIssue::new(shown, e.to_string()));
                None
            }
        },
        Err(e) => {
            issues.push(ConfigIssue::new(shown, e.to_string()));
            None
        }
    }
}

/// Merges an environment file over the defaults; a key the defaults do not
/// know is reported (a typo would otherwise be silently ignored).
fn merge_layer(base: &mut Table, layer: Table, path: &Path, issues: &mut Vec<ConfigIssue>) {
    for (section, values) in layer {
        let (Some(Value::Table(base_section)), Value::Table(values)) =
            (base.get_mut(&section), values)
        else {
            issues.push(ConfigIssue::new(
                path.display().to_string(),
                format!("unknown section [{section}]"),
            ));
            continue;
        };
        for (key, value) in values {
            if base_section.contains_key(&key) {
                base_section.insert(key, value);
            } else {
                issues.push(ConfigIssue::new(
                    path.display().to_string(),
                    format!("unknown key {section}.{key}"),
                ));
            }
        }
    }
}

/// Applies legacy names first, then `CALLVISOR__SECTION__KEY` (so the explicit
/// generic form wins when both are given).
fn apply_environment(table: &mut Table, env: &EnvVars, issues: &mut Vec<ConfigIssue>) {
    for (var, section, key) in LEGACY_NAMES {
        if let Some(raw) = env.get(*var) {
            set_value(table, var, section, key, raw, issues);
        }
    }
    for (var, raw) in env {
        let Some(path) = var.strip_prefix(GENERIC_PREFIX) else {
            continue;
        };
        let mut parts = path.splitn(2, "__");
        match (parts.next(), parts.next()) {
            (Some(section), Some(key)) if !section.is_empty() && !key.is_empty() => {
                let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
                set_value(table, var, &section, &key, raw, issues);
            }
            _ => issues.push(ConfigIssue::new(
                var,
                "expected CALLVISOR__<SECTION>__<KEY>".to_owned(),
            )),
        }
    }
}

/// Sets one key from a variable, parsed as the type its default has.
fn set_value(
    table: &mut Table,
    var: &str,
    section: &str,
    key: &str,
    raw: &str,
    issues: &mut Vec<ConfigIssue>,
) {
    let Some(slot) = table
        .get_mut(section)
        .and_then(Value::as_table_mut)
        .and_then(|s| s.get_mut(key))
    else {
        issues.push(ConfigIssue::new(
            var,
            format!("no such setting {section}.{key}"),
        ));
        return;
    };
    let raw = raw.trim();
    let parsed = match slot {
        Value::Integer(_) => match raw.parse::<u64>() {
            Ok(n) if key == "port" && n > u64::from(u16::MAX) => {
                Err(format!("expected a port number (0-65535), got {raw:?}"))
            }
            Ok(n) => i64::try_from(n)
                .map(Value::Integer)
                .map_err(|_| format!("number too large: {raw:?}")),
            Err(_) => Err(format!("expected a non-negative integer, got {raw:?}")),
        },
        Value::Boolean(_) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Value::Float(_) => raw
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        _ => Ok(Value::String(raw.to_owned())),
    };
    match parsed {
        Ok(value) => *slot = value,
        Err(problem) => issues.push(ConfigIssue::new(var, problem)),
    }
}
