//! The rule file as written: Prometheus' YAML format (`groups:` of `name`, `interval`, `limit`,
//! `query_offset`, `labels`, `rules:` of `alert`/`record`, `expr`, `for`, `keep_firing_for`,
//! `labels`, `annotations`). Unknown fields and duplicate keys are errors, as with promtool
//! (yaml.v3 with `KnownFields`). Scalars are kept as their text: `for: 0` and `severity: 1` are
//! valid and mean the strings `"0"` and `"1"`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A whole rule file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFileYaml {
    /// The file's groups, in order (`groups:` with no value is no groups).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub groups: Vec<GroupYaml>,
}

/// One `groups:` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupYaml {
    /// The group's name, unique within the file.
    #[serde(default, deserialize_with = "scalar_string")]
    pub name: String,
    /// Evaluation interval (a Prometheus duration).
    #[serde(default, deserialize_with = "opt_scalar_string")]
    pub interval: Option<String>,
    /// Shift of every query's evaluation time into the past (Prometheus 2.53+).
    #[serde(default, deserialize_with = "opt_scalar_string")]
    pub query_offset: Option<String>,
    /// Maximum number of alerts or series a rule may produce; 0 means no limit.
    #[serde(default, deserialize_with = "opt_go_int")]
    pub limit: Option<i64>,
    /// Labels added to every rule's output (Prometheus 3.x); a rule's own labels win.
    #[serde(default, deserialize_with = "opt_string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The rules, evaluated in this order.
    #[serde(default)]
    pub rules: Option<Vec<RuleYaml>>,
}

/// One `rules:` entry, alerting or recording.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleYaml {
    /// Name of the recorded series (recording rule).
    #[serde(default, deserialize_with = "opt_scalar_string")]
    pub record: Option<String>,
    /// Name of the alert (alerting rule).
    #[serde(default, deserialize_with = "opt_scalar_string")]
    pub alert: Option<String>,
    /// The PromQL expression.
    #[serde(default, deserialize_with = "opt_scalar_string")]
    pub expr: Option<String>,
    /// How long an alert stays pending before it fires.
    #[serde(default, rename = "for", deserialize_with = "opt_scalar_string")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(default, deserialize_with = "opt_scalar_string")]
    pub keep_firing_for: Option<String>,
    /// Labels to add or override (templates for alerts).
    #[serde(default, deserialize_with = "opt_string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations (templates), alerting rules only.
    #[serde(default, deserialize_with = "opt_string_map")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Parses a rule file's text. An empty file (or one with only comments) has no groups.
pub fn parse_rule_file(text: &str) -> Result<RuleFileYaml, String> {
    let meaningful = text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#') && line != "---"
    });
    if !meaningful {
        return Ok(RuleFileYaml::default());
    }
    let parsed: Option<RuleFileYaml> =
        serde_saphyr::from_str(first_document(text)).map_err(|e| e.to_string())?;
    Ok(parsed.unwrap_or_default())
}

/// The first YAML document of `text`: promtool (yaml.v3's `Decoder.Decode`, called once)
/// reads only the first document of a file and ignores the rest.
fn first_document(text: &str) -> &str {
    let mut offset = 0;
    let mut started = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let separator = trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "...";
        if separator && started {
            return &text[..offset];
        }
        if !separator && !trimmed.is_empty() && !trimmed.starts_with('#') {
            started = true;
        }
        offset += line.len();
    }
    text
}

/// Accepts any YAML scalar and keeps its text (as yaml.v3 does when decoding into a string).
struct ScalarString;

impl<'de> Visitor<'de> for ScalarString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

/// An integer as yaml.v3 decodes one into a Go `int`: floats are truncated, strings rejected.
struct GoInt;

impl<'de> Visitor<'de> for GoInt {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.is_finite() && v.abs() < i64::MAX as f64 {
            Ok(Some(v as i64))
        } else {
            Err(E::custom(format!("cannot unmarshal {v} into an integer")))
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

fn opt_go_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(GoInt)
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<GroupYaml>, D::Error> {
    Ok(Option::<Vec<GroupYaml>>::deserialize(d)?.unwrap_or_default())
}

fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_string(ScalarString)
}

fn opt_scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "scalar_string")] String);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
}

fn opt_string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    #[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Wrapped(#[serde(deserialize_with = "scalar_string")] String);
    // A null value (`severity:`) is the empty string, as with yaml.v3.
    let map = Option::<BTreeMap<Wrapped, Option<Wrapped>>>::deserialize(d)?;
    Ok(map.map(|m| m.into_iter().map(|(k, v)| (k.0, v.map(|v| v.0).unwrap_or_default())).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_kept_as_text() {
        let f = parse_rule_file(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 0\n    labels:\n      severity: 1\n",
        )
        .unwrap();
        let rule = &f.groups[0].rules.as_ref().unwrap()[0];
        assert_eq!(rule.for_.as_deref(), Some("0"));
        assert_eq!(rule.labels.as_ref().unwrap()["severity"], "1");
    }

    #[test]
    fn only_the_first_document_counts() {
        assert!(parse_rule_file("---\ngroups: []\n---\nfoo: [\n").is_ok());
        assert!(parse_rule_file("groups: []\n...\n").is_ok());
    }

    #[test]
    fn limit_is_a_go_int() {
        let limit = |text: &str| {
            parse_rule_file(&format!("groups:\n- name: g\n  limit: {text}\n"))
                .map(|f| f.groups[0].limit)
        };
        assert_eq!(limit("5"), Ok(Some(5)));
        assert_eq!(limit("1.5"), Ok(Some(1)));
        assert_eq!(limit(""), Ok(None));
        assert!(limit("abc").is_err());
        assert!(limit("'5'").is_err());
    }

    #[test]
    fn empty_file_has_no_groups() {
        assert!(parse_rule_file("").unwrap().groups.is_empty());
        assert!(parse_rule_file("# nothing\n").unwrap().groups.is_empty());
    }

    #[test]
    fn unknown_fields_and_duplicate_keys_are_errors() {
        assert!(parse_rule_file("groups: []\nfoo: 1\n").is_err());
        assert!(parse_rule_file("groups:\n- name: a\n  name: b\n").is_err());
    }
}
