//! Loading: TOML file, then `TOUCHSTREAM_<SECTION>_<KEY>` environment overrides, then
//! validation. Every error names the key (or variable) and says what is wrong with it.

use super::Config;
use std::path::Path;
use toml::{Table, Value};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Variables that configure the process but are not configuration keys.
const NOT_KEYS: &[&str] = &["TOUCHSTREAM_CONFIG"];

/// Loads the file at `path` (or the defaults when `None`) with overrides from `env`.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let (text, name) = match path {
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: name.clone(),
                source,
            })?;
            (text, name)
        }
        None => (String::new(), "(defaults)".to_string()),
    };
    let mut config = load_str(&text, &name, env)?;
    config.source = path.map(Path::to_path_buf);
    Ok(config)
}

/// Like [`load`], from TOML text; `name` is used in error messages.
pub fn load_str(
    text: &str,
    name: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: name.into(),
            message: e.to_string(),
        })?;
    apply_env(&mut table, env)?;
    journey_keys_in_one_place(&table)?;
    demo_shop_off_with_own_sites(&mut table);
    let config: Config = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::invalid(
            if key == "." {
                "(top level)".into()
            } else {
                key
            },
            e.inner().message(),
        )
    })?;
    config.validate()?;
    Ok(config)
}

/// With `[[journeys]]` given, `[journey]` holds only the session timeout (its map would be
/// silently unused), and the session timeout stays one for all journeys.
fn journey_keys_in_one_place(table: &Table) -> Result<(), ConfigError> {
    let Some(Value::Array(journeys)) = table.get("journeys") else {
        return Ok(());
    };
    if journeys.is_empty() {
        return Ok(());
    }
    if let Some(Value::Table(journey)) = table.get("journey")
        && let Some(key) = journey.keys().find(|k| *k != "session_timeout")
    {
        return Err(ConfigError::invalid(
            format!("journey.{key}"),
            format!(
                "with [[journeys]] given, [journey] sets only session_timeout: move this key \
                 into the [[journeys]] entry it belongs to (or unset TOUCHSTREAM_JOURNEY_{})",
                key.to_ascii_uppercase()
            ),
        ));
    }
    for (i, j) in journeys.iter().enumerate() {
        let Value::Table(j) = j else { continue };
        if j.contains_key("session_timeout") {
            return Err(ConfigError::invalid(
                format!("journeys[{i}].session_timeout"),
                "the session timeout is one for all journeys: set it in [journey]",
            ));
        }
        if !j.contains_key("name") {
            return Err(ConfigError::invalid(
                format!("journeys[{i}].name"),
                "give each journey a name: it is the `journey` label of its figures",
            ));
        }
    }
    Ok(())
}

/// A configuration that gives its own sites is not the quick start: it has no `demo` site
/// (its `sites` replace it), so the demo shop, whose pages post to `demo`, is off too unless
/// `snippet.demo` is set.
fn demo_shop_off_with_own_sites(table: &mut Table) {
    if !table.contains_key("sites") {
        return;
    }
    let snippet = table
        .entry("snippet")
        .or_insert_with(|| Value::Table(Table::new()));
    // Anything but a table is left for deserialising to report.
    if let Value::Table(snippet) = snippet {
        snippet.entry("demo").or_insert(Value::Boolean(false));
    }
}

/// Sets every `TOUCHSTREAM_*` variable into `table`, typed like the key's default value.
fn apply_env(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t,
        _ => unreachable!("the default config serialises to a table"),
    };
    let keys = env_keys(&defaults);
    for (var, raw) in env {
        if !var.starts_with("TOUCHSTREAM_") || NOT_KEYS.contains(&var.as_str()) {
            continue;
        }
        let Some((path, default)) = keys.iter().find(|(p, _)| env_name(p) == var) else {
            let known: Vec<String> = keys.iter().map(|(p, _)| env_name(p)).collect();
            return Err(ConfigError::Env {
                var,
                reason: format!("no such configuration key; known: {}", known.join(", ")),
            });
        };
        let value = parse_like(default, &raw).map_err(|reason| ConfigError::Env {
            var: var.clone(),
            reason,
        })?;
        set_path(table, path, value);
    }
    Ok(())
}

/// Key paths that can be set from the environment: scalars and lists of scalars, at the top
/// level or one section deep (arrays of tables such as `sites` need the file).
fn env_keys(defaults: &Table) -> Vec<(Vec<String>, Value)> {
    let mut keys = Vec::new();
    for (key, value) in defaults {
        match value {
            Value::Table(section) => {
                for (sub, v) in section {
                    if is_env_settable(v) {
                        keys.push((vec![key.clone(), sub.clone()], v.clone()));
                    }
                }
            }
            v if is_env_settable(v) => keys.push((vec![key.clone()], v.clone())),
            _ => {}
        }
    }
    keys
}

fn is_env_settable(v: &Value) -> bool {
    match v {
        Value::Table(_) => false,
        Value::Array(items) => items
            .iter()
            .all(|i| !matches!(i, Value::Table(_) | Value::Array(_))),
        _ => true,
    }
}

fn env_name(path: &[String]) -> String {
    format!("TOUCHSTREAM_{}", path.join("_").to_ascii_uppercase())
}

fn parse_like(default: &Value, raw: &str) -> Result<Value, String> {
    Ok(match default {
        Value::Integer(_) => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected a whole number, got `{raw}`"))?,
        ),
        Value::Float(_) => Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected a number, got `{raw}`"))?,
        ),
        Value::Boolean(_) => Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected true or false, got `{raw}`"))?,
        ),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => Value::String(raw.to_string()),
    })
}

fn set_path(table: &mut Table, path: &[String], value: Value) {
    let (last, sections) = path.split_last().expect("env key paths are never empty");
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
    current.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_file() {
        let c = load(None, env(&[])).unwrap();
        assert_eq!(c.sites[0].id, "demo");
        assert!(c.snippet.demo);
        assert_eq!(c.journey.stages.len(), 5);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn own_sites_replace_the_demo_site_and_turn_the_demo_shop_off() {
        let shop = "[[sites]]\nid = \"shop\"\n";
        let c = load_str(shop, "t.toml", env(&[])).unwrap();
        let ids: Vec<&str> = c.sites.iter().map(|s| s.id.as_str()).collect();
        assert_eq!((ids, c.snippet.demo), (vec!["shop"], false));
        // Asked for, in the file or the environment, the demo shop stays on.
        let asked = format!("{shop}[snippet]\ndemo = true\n");
        assert!(load_str(&asked, "t.toml", env(&[])).unwrap().snippet.demo);
        let by_env = env(&[("TOUCHSTREAM_SNIPPET_DEMO", "true")]);
        assert!(load_str(shop, "t.toml", by_env).unwrap().snippet.demo);
        // Without sites of its own a file keeps the quick start's demo site and shop.
        let c = load_str("[snippet]\npath = \"/a.js\"\n", "t.toml", env(&[])).unwrap();
        assert_eq!((c.sites[0].id.as_str(), c.snippet.demo), ("demo", true));
    }

    #[test]
    fn environment_overrides_file() {
        let text = "listen = \"127.0.0.1:1\"\n[journey]\nsession_timeout = \"10m\"\n";
        let c = load_str(
            text,
            "t.toml",
            env(&[
                ("TOUCHSTREAM_LISTEN", "127.0.0.1:7000"),
                ("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:7001"),
                ("TOUCHSTREAM_JOURNEY_SESSION_TIMEOUT", "2s"),
                ("TOUCHSTREAM_LIMITS_MAX_BATCH_EVENTS", "10"),
                ("TOUCHSTREAM_JOURNEY_FRICTION", "error, rage_click"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.admin_listen.port(), 7001);
        assert_eq!(c.journey.session_timeout.as_secs(), 2);
        assert_eq!(c.limits.max_batch_events, 10);
        assert_eq!(c.journey.friction, ["error", "rage_click"]);
    }

    #[test]
    fn errors_name_the_key() {
        let err = load_str(
            "[journey]\nsession_timeout = \"soon\"\n",
            "t.toml",
            env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("journey.session_timeout"), "{err}");
        let err = load_str("[limits]\nmax_bodyy = 1\n", "t.toml", env(&[])).unwrap_err();
        assert!(err.to_string().contains("max_bodyy"), "{err}");
        let err = load_str("", "t", env(&[("TOUCHSTREAM_LIMITS_MAX_ITEMS", "many")])).unwrap_err();
        assert!(
            err.to_string().contains("TOUCHSTREAM_LIMITS_MAX_ITEMS"),
            "{err}"
        );
        let err = load_str("", "t", env(&[("TOUCHSTREAM_NOPE", "1")])).unwrap_err();
        assert!(
            err.to_string().contains("no such configuration key"),
            "{err}"
        );
        let err = load_str("listen = [", "t.toml", env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }
}
