//! Checks of the journey maps (`[journey]` or `[[journeys]]`) and of the journeys each site
//! runs. Each error names the key, as `journey.…` or `journeys[i].…`.

use super::{check_touchpoint_name, claim, is_label_name};
use crate::config::journey::{
    MAX_FRICTION_KINDS, MAX_JOURNEYS, MAX_SITE_JOURNEYS, MAX_STAGES, MAX_STEP_DELAY,
    MAX_TOUCHPOINTS,
};
use crate::config::{Config, ConfigError, JourneyConfig, JourneyMode, NO_FRICTION};
use std::collections::{HashMap, HashSet};

impl Config {
    pub(super) fn validate_journey(&self) -> Result<(), ConfigError> {
        let all = self.journeys();
        if all.len() > MAX_JOURNEYS {
            return Err(ConfigError::invalid(
                "journeys",
                format!("give at most {MAX_JOURNEYS} journeys"),
            ));
        }
        let mut names = HashSet::new();
        let mut cart: HashMap<&str, (bool, String)> = HashMap::new();
        let mut aliases: HashMap<&str, (&str, String)> = HashMap::new();
        let mut friction = HashSet::new();
        for (i, j) in all.iter().enumerate() {
            let prefix = if self.journeys.is_empty() {
                "journey".to_string()
            } else {
                format!("journeys[{i}]")
            };
            validate_map(j, &prefix)?;
            if !names.insert(j.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.name"),
                    format!("duplicate journey `{}`", j.name),
                ));
            }
            friction.extend(j.friction.iter().map(String::as_str));
            // One lookup serves a site's journeys: an alias means one touchpoint in all, and
            // never shadows a touchpoint another journey names.
            for (alias, target) in &j.aliases {
                let key = format!("{prefix}.aliases.\"{alias}\"");
                if let Some((other, first)) = aliases.get(alias.as_str())
                    && other != target
                {
                    return Err(ConfigError::invalid(
                        key,
                        format!(
                            "{first} already makes it `{other}`: an alias names the same touchpoint in every journey"
                        ),
                    ));
                }
                if let Some(other) = all.iter().find(|o| o.touchpoints().any(|t| t == alias)) {
                    return Err(ConfigError::invalid(
                        key,
                        format!(
                            "`{alias}` is a touchpoint of journey `{}`: an alias cannot be one",
                            other.name
                        ),
                    ));
                }
                aliases.insert(alias, (target, key));
            }
            // Carts are the session's, whatever its journeys: a touchpoint adds to it or takes
            // from it in every journey alike.
            for (list, adds, key) in [
                (&j.cart_add, true, "cart_add"),
                (&j.cart_remove, false, "cart_remove"),
            ] {
                let key = format!("{prefix}.{key}");
                for t in list {
                    match cart.get(t.as_str()) {
                        Some((was, first)) if *was != adds => {
                            return Err(ConfigError::invalid(
                                key,
                                format!(
                                    "touchpoint `{t}` is already in {first}: a touchpoint adds to the cart or takes from it in every journey alike"
                                ),
                            ));
                        }
                        _ => {
                            cart.insert(t, (adds, key.clone()));
                        }
                    }
                }
            }
        }
        let touchpoints: HashSet<&String> = all.iter().flat_map(|j| j.touchpoints()).collect();
        if touchpoints.len() > MAX_TOUCHPOINTS {
            return Err(ConfigError::invalid(
                "journeys",
                format!("at most {MAX_TOUCHPOINTS} touchpoint names over all journeys"),
            ));
        }
        if friction.len() > MAX_FRICTION_KINDS {
            return Err(ConfigError::invalid(
                "journeys",
                format!("at most {MAX_FRICTION_KINDS} friction kinds over all journeys"),
            ));
        }
        for (i, site) in self.sites.iter().enumerate() {
            let key = format!("sites[{i}].journeys");
            let mut seen = HashSet::new();
            for name in &site.journeys {
                if !names.contains(name.as_str()) {
                    let known: Vec<&str> = all.iter().map(|j| j.name.as_str()).collect();
                    return Err(ConfigError::invalid(
                        key,
                        format!(
                            "no journey is named `{name}`; configured: {}",
                            known.join(", ")
                        ),
                    ));
                }
                if !seen.insert(name.as_str()) {
                    return Err(ConfigError::invalid(
                        key,
                        format!("`{name}` is named twice"),
                    ));
                }
            }
            let runs = if site.journeys.is_empty() {
                all.len()
            } else {
                site.journeys.len()
            };
            if runs > MAX_SITE_JOURNEYS {
                return Err(ConfigError::invalid(
                    key,
                    format!("a site runs at most {MAX_SITE_JOURNEYS} journeys: name those it runs"),
                ));
            }
        }
        Ok(())
    }
}

/// One journey map's own consistency.
fn validate_map(j: &JourneyConfig, prefix: &str) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    if !is_label_name(&j.name) {
        return Err(ConfigError::invalid(
            key("name"),
            "must match [a-z0-9_-]{1,64}",
        ));
    }
    if j.stages.is_empty() || j.stages.len() > MAX_STAGES {
        return Err(ConfigError::invalid(
            key("stages"),
            format!("give 1 to {MAX_STAGES} stages"),
        ));
    }
    let mut names = HashSet::new();
    let mut owner: HashMap<&str, String> = HashMap::new();
    for (i, stage) in j.stages.iter().enumerate() {
        let key = |k: &str| format!("{prefix}.stages[{i}].{k}");
        if !is_label_name(&stage.name) {
            return Err(ConfigError::invalid(
                key("name"),
                "must match [a-z0-9_-]{1,64}",
            ));
        }
        if !names.insert(stage.name.as_str()) {
            return Err(ConfigError::invalid(
                key("name"),
                format!("duplicate stage `{}`", stage.name),
            ));
        }
        if !is_label_name(&stage.phase) || stage.phase == "post_purchase" {
            return Err(ConfigError::invalid(
                key("phase"),
                "must match [a-z0-9_-]{1,64} and not be `post_purchase` (reserved)",
            ));
        }
        for t in &stage.touchpoints {
            claim(&mut owner, t, key("touchpoints"))?;
        }
        if let Some(within) = stage.within {
            let reason = if j.mode != JourneyMode::Ordered {
                Some(
                    "a conversion window needs `mode = \"ordered\"`: in `any` mode stages have no order to time",
                )
            } else if i == 0 {
                Some("the first stage has no stage before it to be within")
            } else if within.is_zero() {
                Some("must be longer than zero")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::invalid(key("within"), reason));
            }
        }
        if let Some(delay) = stage.step_delay {
            if i == 0 {
                return Err(ConfigError::invalid(
                    key("step_delay"),
                    "the first stage has no step into it to time",
                ));
            }
            if delay.as_secs() % 60 != 0 || delay.subsec_nanos() != 0 {
                return Err(ConfigError::invalid(
                    key("step_delay"),
                    "give whole minutes (the step alerts count in minutes)",
                ));
            }
            if stage.within.is_some_and(|within| delay > within) {
                return Err(ConfigError::invalid(
                    key("step_delay"),
                    "must not be longer than the stage's `within`: the typical step is within it",
                ));
            }
            if delay > MAX_STEP_DELAY {
                return Err(ConfigError::invalid(
                    key("step_delay"),
                    "must be at most 1h: the step alerts compare windows of minutes to two hours, \
                     and a slower step has no useful alert at that scale",
                ));
            }
        }
    }
    if j.friction.iter().any(|f| f == NO_FRICTION) {
        return Err(ConfigError::invalid(
            key("friction"),
            "`none` is the kind of a drop-off that met no friction: pick another name",
        ));
    }
    for (list, k) in [
        (&j.post_purchase, "post_purchase"),
        (&j.friction, "friction"),
        (&j.other_touchpoints, "other_touchpoints"),
    ] {
        for t in list {
            claim(&mut owner, t, key(k))?;
        }
    }
    for (list, k) in [(&j.cart_add, "cart_add"), (&j.cart_remove, "cart_remove")] {
        for t in list {
            check_touchpoint_name(t, &key(k))?;
        }
    }
    for (stage, k, what) in [
        (&j.cart_stage, "cart_stage", "opens a cart"),
        (&j.purchase_stage, "purchase_stage", "is the order"),
    ] {
        if !stage.is_empty() && !names.contains(stage.as_str()) {
            return Err(ConfigError::invalid(
                key(k),
                format!(
                    "`{stage}` is not one of {prefix}.stages (a key not set takes the default \
                     map's value): name the stage that {what}, or set {k} = \"\" for a \
                     journey without one"
                ),
            ));
        }
    }
    for (alias, target) in &j.aliases {
        if alias.is_empty() || alias.len() > 64 {
            return Err(ConfigError::invalid(
                key("aliases"),
                "aliases are 1 to 64 characters",
            ));
        }
        check_touchpoint_name(target, &format!("{prefix}.aliases.\"{alias}\""))?;
    }
    Ok(())
}
