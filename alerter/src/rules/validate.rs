//! Validation of rule files, matching `promtool check rules`: YAML structure (unknown fields,
//! duplicate keys), non-empty unique group names, exactly one of `alert`/`record`, `expr` set
//! and valid PromQL, valid recording rule names, label names and values, annotation names,
//! templates that parse, durations, and the fields a recording rule may not have.
//! Every problem in a file is reported, each naming the file, group and rule.

use std::collections::HashSet;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::RuleFileError;
use crate::labels::{Labels, is_valid_label_name, is_valid_metric_name};
use crate::rules::file::{GroupYaml, RuleYaml, parse_rule_file};
use crate::rules::{Rule, RuleGroup, RuleKind};
use crate::template::check_template;

/// Counts of what a set of rule files holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Files read.
    pub files: usize,
    /// Groups in them.
    pub groups: usize,
    /// Rules in them.
    pub rules: usize,
}

/// Expands the globs (sorted, deduplicated). A pattern without glob characters that names no
/// file is an error; a glob that matches nothing is not (as in Prometheus' `rule_files`).
pub fn expand_globs(globs: &[String]) -> Result<Vec<String>, Vec<RuleFileError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for pattern in globs {
        let error = |reason: String| RuleFileError {
            file: pattern.clone(),
            group: None,
            rule: None,
            reason,
        };
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            if std::path::Path::new(pattern).is_file() {
                files.push(pattern.clone());
            } else {
                errors.push(error("no such file".to_string()));
            }
            continue;
        }
        match glob::glob(pattern) {
            Ok(paths) => {
                let mut matched: Vec<String> = paths
                    .filter_map(Result::ok)
                    .filter(|p| p.is_file())
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                matched.sort();
                files.extend(matched);
            }
            Err(e) => errors.push(error(format!("invalid glob: {e}"))),
        }
    }
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    if errors.is_empty() { Ok(files) } else { Err(errors) }
}

/// Loads and validates every file the globs name. `default_interval` is used for groups
/// without `interval`.
pub fn load_rule_files(
    globs: &[String],
    default_interval: Duration,
) -> Result<(Vec<RuleGroup>, CheckSummary), Vec<RuleFileError>> {
    let files = expand_globs(globs)?;
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        let result = std::fs::read_to_string(file)
            .map_err(|e| {
                vec![RuleFileError {
                    file: file.clone(),
                    group: None,
                    rule: None,
                    reason: e.to_string(),
                }]
            })
            .and_then(|text| validate_rule_file(file, &text, default_interval));
        match result {
            Ok(mut g) => groups.append(&mut g),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let summary = CheckSummary {
        files: files.len(),
        groups: groups.len(),
        rules: groups.iter().map(|g| g.rules.len()).sum(),
    };
    Ok((groups, summary))
}

/// Validates one file's text; `file` names it in errors and in the groups.
pub fn validate_rule_file(
    file: &str,
    text: &str,
    default_interval: Duration,
) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    let parsed = parse_rule_file(text).map_err(|reason| {
        vec![RuleFileError { file: file.to_string(), group: None, rule: None, reason }]
    })?;
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    let mut groups = Vec::new();
    for group in parsed.groups {
        let group_error = |reason: String| RuleFileError {
            file: file.to_string(),
            group: Some(group.name.clone()),
            rule: None,
            reason,
        };
        if group.name.is_empty() {
            errors.push(group_error("group name must not be empty".to_string()));
        }
        if !names.insert(group.name.clone()) {
            errors.push(group_error(format!(
                "groupname: {:?} is repeated in the same file",
                group.name
            )));
        }
        match validate_group(file, &group, default_interval) {
            Ok(g) => groups.push(g),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

fn validate_group(
    file: &str,
    group: &GroupYaml,
    default_interval: Duration,
) -> Result<RuleGroup, Vec<RuleFileError>> {
    let mut errors = Vec::new();
    let mut group_error = |reason: String| {
        errors.push(RuleFileError {
            file: file.to_string(),
            group: Some(group.name.clone()),
            rule: None,
            reason,
        })
    };
    let mut duration = |field: &str, value: &Option<String>| -> Duration {
        match value.as_deref().map(parse_duration) {
            None => Duration::ZERO,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                group_error(format!("{field}: {e}"));
                Duration::ZERO
            }
        }
    };
    let interval = duration("interval", &group.interval);
    let query_offset = duration("query_offset", &group.query_offset);
    let group_labels = group.labels.clone().unwrap_or_default();
    for (name, value) in &group_labels {
        if let Some(reason) = label_problem(name, value) {
            group_error(reason);
        }
    }
    let limit = group.limit.unwrap_or(0).max(0) as usize;
    let mut rules = Vec::new();
    for (index, rule) in group.rules.iter().flatten().enumerate() {
        match validate_rule(rule, &group_labels) {
            Ok(r) => rules.push(r),
            Err(reasons) => {
                let name =
                    rule.alert.clone().filter(|a| !a.is_empty()).or_else(|| rule.record.clone());
                for reason in reasons {
                    errors.push(RuleFileError {
                        file: file.to_string(),
                        group: Some(group.name.clone()),
                        rule: Some((index + 1, name.clone().unwrap_or_default())),
                        reason,
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(RuleGroup {
        name: group.name.clone(),
        file: file.to_string(),
        interval: if interval.is_zero() { default_interval } else { interval },
        limit,
        query_offset,
        labels: group_labels,
        rules,
    })
}

fn label_problem(name: &str, _value: &str) -> Option<String> {
    // Values are Rust strings, so always valid UTF-8 (Prometheus' only rule for values).
    if !is_valid_label_name(name) || name == basin_proto::METRIC_NAME {
        Some(format!("invalid label name: {name}"))
    } else {
        None
    }
}

fn validate_rule(rule: &RuleYaml, group_labels: &Labels) -> Result<Rule, Vec<String>> {
    let mut reasons = Vec::new();
    let alert = rule.alert.clone().unwrap_or_default();
    let record = rule.record.clone().unwrap_or_default();
    if !alert.is_empty() && !record.is_empty() {
        reasons.push("only one of 'record' and 'alert' must be set".to_string());
    }
    if alert.is_empty() && record.is_empty() {
        reasons.push("one of 'record' or 'alert' must be set".to_string());
    }
    let expr = rule.expr.clone().unwrap_or_default();
    let mut query = String::new();
    if expr.is_empty() {
        reasons.push("field 'expr' must be set in rule".to_string());
    } else {
        match promql_parser::parser::parse(&expr) {
            Ok(parsed) => query = parsed.to_string(),
            Err(e) => reasons.push(format!("could not parse expression: {e}")),
        }
    }
    let mut duration = |field: &str, value: &Option<String>| -> Duration {
        match value.as_deref().map(parse_duration) {
            None => Duration::ZERO,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                reasons.push(format!("{field}: {e}"));
                Duration::ZERO
            }
        }
    };
    let hold = duration("for", &rule.for_);
    let keep_firing_for = duration("keep_firing_for", &rule.keep_firing_for);
    let annotations = rule.annotations.clone().unwrap_or_default();
    let own_labels = rule.labels.clone().unwrap_or_default();
    if !record.is_empty() {
        if !annotations.is_empty() {
            reasons.push("invalid field 'annotations' in recording rule".to_string());
        }
        if !hold.is_zero() {
            reasons.push("invalid field 'for' in recording rule".to_string());
        }
        if !keep_firing_for.is_zero() {
            reasons.push("invalid field 'keep_firing_for' in recording rule".to_string());
        }
        if !is_valid_metric_name(&record) {
            reasons.push(format!("invalid recording rule name: {record}"));
        }
    }
    for (name, value) in &own_labels {
        if let Some(reason) = label_problem(name, value) {
            reasons.push(reason);
        }
    }
    for name in annotations.keys() {
        if !is_valid_label_name(name) {
            reasons.push(format!("invalid annotation name: {name}"));
        }
    }
    if !alert.is_empty() {
        for (name, text) in &own_labels {
            if let Err(e) = check_template(text) {
                reasons.push(format!("label {name:?}: template: {e}"));
            }
        }
        for (name, text) in &annotations {
            if let Err(e) = check_template(text) {
                reasons.push(format!("annotation {name:?}: template: {e}"));
            }
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    let mut labels = group_labels.clone();
    labels.extend(own_labels);
    let (name, kind) = if alert.is_empty() {
        (record, RuleKind::Recording)
    } else {
        (alert, RuleKind::Alerting { hold, keep_firing_for, annotations })
    };
    Ok(Rule { name, query, labels, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn errors(text: &str) -> Vec<RuleFileError> {
        validate_rule_file("f.yml", text, MIN).err().unwrap_or_default()
    }

    #[test]
    fn valid_file_becomes_groups() {
        let groups = validate_rule_file(
            "f.yml",
            "groups:\n- name: g\n  interval: 30s\n  labels: {team: a}\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: Down\n    expr: up == 0\n    for: 5m\n    keep_firing_for: 1m\n    labels: {severity: page, team: b}\n    annotations: {summary: '{{ $labels.job }} down'}\n",
            MIN,
        )
        .unwrap();
        let g = &groups[0];
        assert_eq!(g.interval, Duration::from_secs(30));
        assert_eq!(g.rules.len(), 2);
        assert_eq!(g.rules[0].labels["team"], "a");
        assert_eq!(g.rules[1].labels["team"], "b");
        assert!(
            matches!(g.rules[1].kind, RuleKind::Alerting { hold, .. } if hold == Duration::from_secs(300))
        );
    }

    #[test]
    fn errors_name_group_rule_and_reason() {
        let e = errors("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].group.as_deref(), Some("g"));
        assert_eq!(e[0].rule, Some((1, "A".to_string())));
        assert!(e[0].reason.starts_with("could not parse expression"), "{}", e[0].reason);
        assert!(e[0].to_string().starts_with("f.yml: group \"g\", rule 1, \"A\": "));
    }

    #[test]
    fn rejects_what_promtool_rejects() {
        assert!(!errors("groups:\n- name: g\n- name: g\n").is_empty());
        assert!(!errors("groups:\n- name: ''\n").is_empty());
        assert!(
            !errors("groups:\n- name: g\n  rules:\n  - record: 'a-b'\n    expr: up\n").is_empty()
        );
        assert!(
            !errors("groups:\n- name: g\n  rules:\n  - record: r\n    alert: a\n    expr: up\n")
                .is_empty()
        );
        assert!(
            !errors("groups:\n- name: g\n  rules:\n  - alert: a\n    expr: up\n    for: 5x\n")
                .is_empty()
        );
        assert!(!errors("groups:\n- name: g\n  rules:\n  - alert: a\n    expr: up\n    labels: {__name__: x}\n").is_empty());
    }
}
