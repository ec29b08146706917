//! Contract files to clauses: parsing, annotations, schema validation.
//!
//! Owns the rules a contract file must follow (one `@id` per policy, known
//! annotations only, valid dates, no templates, `@kind("preference")` exactly
//! on `prefer` clauses; clauses scoped to `use` follow the same rules) and turns every violation into a [`SourceError`] with
//! file, line and reason. It never evaluates a policy.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Effect as CedarEffect, Policy, PolicyId, PolicySet, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;

use crate::clause::{Clause, ClauseId, ClauseKind, ContractAction, Effect, Window, parse_date};
use crate::error::{ContractError, SourceError};

/// The annotations a clause may carry. Anything else is a typo waiting to
/// happen (`@effective_form` would leave a clause in force forever), so it is
/// refused.
const ANNOTATIONS: [&str; 6] = [
    "id",
    "title",
    "source",
    "effective_from",
    "effective_until",
    "kind",
];

/// A reading's clauses with their Cedar policies (ids already the clause ids),
/// in file order then source order.
pub(crate) struct Parsed {
    pub clauses: Vec<Clause>,
    pub policies: Vec<Policy>,
    /// Cedar validator warnings (e.g. a clause that can never apply).
    pub warnings: Vec<SourceError>,
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, col as u32)
}

fn diagnostic_position(diag: &dyn Diagnostic, text: &str) -> (u32, u32) {
    diag.labels()
        .and_then(|mut labels| labels.next())
        .map_or((0, 0), |label| line_col(text, label.offset()))
}

fn diagnostic_message(diag: &dyn Diagnostic) -> String {
    let mut message = diag.to_string();
    if let Some(help) = diag.help() {
        message.push_str(" (");
        message.push_str(&help.to_string());
        message.push(')');
    }
    message
}

fn policy_offset(policy: &Policy) -> Option<usize> {
    // Cedar keeps each policy's position in the text it was parsed from; the
    // public API does not expose it, the AST it wraps does.
    AsRef::as_ref(policy).loc().map(|loc| loc.start())
}

/// Parses and validates every source of one reading.
pub(crate) fn parse_sources(
    schema: &Schema,
    sources: &[(String, String)],
) -> Result<Parsed, ContractError> {
    let validator = Validator::new(schema.clone());
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut parsed: Vec<(Clause, Policy, usize)> = Vec::new();
    let mut seen: HashMap<String, (String, u32)> = HashMap::new();

    for (file_index, (file, text)) in sources.iter().enumerate() {
        let err = |line, column, clause: Option<&str>, message: String| SourceError {
            file: file.clone(),
            line,
            column,
            clause: clause.map(str::to_owned),
            message,
        };
        let set = match PolicySet::from_str(text) {
            Ok(set) => set,
            Err(parse_errors) => {
                for e in parse_errors.iter() {
                    let (line, col) = diagnostic_position(e, text);
                    errors.push(err(line, col, None, diagnostic_message(e)));
                }
                continue;
            }
        };
        if let Some(template) = set.templates().next() {
            let (line, col) = AsRef::as_ref(template)
                .loc()
                .map_or((0, 0), |loc| line_col(text, loc.start()));
            errors.push(err(
                line,
                col,
                None,
                "policy templates (with ?principal or ?resource slots) are not contract clauses; write a static policy".into(),
            ));
            continue;
        }

        let mut file_set = PolicySet::new();
        for policy in set.policies() {
            let offset = policy_offset(policy).unwrap_or(0);
            let (line, col) = line_col(text, offset);
            let Some(id) = policy.annotation("id") else {
                errors.push(err(
                    line,
                    col,
                    None,
                    "clause has no @id annotation; add e.g. @id(\"C1\") before permit/forbid"
                        .into(),
                ));
                continue;
            };
            match clause_from_policy(policy, id, file, line) {
                Ok(clause) => {
                    if let Some((other_file, other_line)) = seen.get(id) {
                        errors.push(err(
                            line,
                            col,
                            Some(id),
                            format!(
                                "duplicate clause id; already used at {other_file}:{other_line}"
                            ),
                        ));
                        continue;
                    }
                    seen.insert(id.to_owned(), (file.clone(), line));
                    let policy = policy.new_id(PolicyId::new(id));
                    if let Err(e) = file_set.add(policy.clone()) {
                        errors.push(err(line, col, Some(id), e.to_string()));
                        continue;
                    }
                    parsed.push((clause, policy, file_index * (text.len() + 1) + offset));
                }
                Err(message) => errors.push(err(line, col, Some(id), message)),
            }
        }

        let result = validator.validate(&file_set, ValidationMode::Strict);
        for e in result.validation_errors() {
            let (line, col) = diagnostic_position(e, text);
            errors.push(err(
                line,
                col,
                Some(e.policy_id().to_string().as_str()),
                diagnostic_message(e),
            ));
        }
        for w in result.validation_warnings() {
            let (line, col) = diagnostic_position(w, text);
            warnings.push(err(
                line,
                col,
                Some(w.policy_id().to_string().as_str()),
                diagnostic_message(w),
            ));
        }
    }

    if !errors.is_empty() {
        return Err(ContractError::Invalid(errors));
    }
    // File order, then position in the file: the order a reader meets them.
    parsed.sort_by_key(|(_, _, order)| *order);
    let (clauses, policies) = parsed.into_iter().map(|(c, p, _)| (c, p)).unzip();
    Ok(Parsed {
        clauses,
        policies,
        warnings,
    })
}

fn clause_from_policy(policy: &Policy, id: &str, file: &str, line: u32) -> Result<Clause, String> {
    if !ClauseId::is_valid(id) {
        return Err(format!(
            "clause id {id:?} must be 1-64 ASCII letters, digits, '-', '_' or '.', e.g. \"C1\""
        ));
    }
    for (key, _) in policy.annotations() {
        if !ANNOTATIONS.contains(&key) {
            return Err(format!(
                "unknown annotation @{key}; clauses take {}",
                ANNOTATIONS.map(|a| format!("@{a}")).join(", ")
            ));
        }
    }
    let required = |key: &str| {
        policy
            .annotation(key)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("clause has no @{key}(\"...\") annotation"))
    };
    let title = required("title")?;
    let source = required("source")?;
    let date = |key: &str| -> Result<_, String> {
        policy
            .annotation(key)
            .map(|v| {
                parse_date(v).ok_or_else(|| {
                    format!("@{key}({v:?}) is not a date; write a UTC day as \"2025-10-28\"")
                })
            })
            .transpose()
    };
    let window = Window {
        from: date("effective_from")?,
        until: date("effective_until")?,
    };
    if let (Some(from), Some(until)) = (window.from, window.until)
        && from > until
    {
        return Err(format!(
            "@effective_from is after @effective_until ({window}); the clause would never be in force"
        ));
    }

    let actions = match policy.action_constraint() {
        ActionConstraint::Any => ContractAction::ALL.to_vec(),
        ActionConstraint::Eq(uid) => vec![action_of(&uid)?],
        ActionConstraint::In(uids) => {
            let mut actions = uids.iter().map(action_of).collect::<Result<Vec<_>, _>>()?;
            actions.sort();
            actions.dedup();
            actions
        }
    };
    let preference = match policy.annotation("kind") {
        None => false,
        Some("preference") => true,
        Some(other) => {
            return Err(format!(
                "@kind({other:?}) is not a clause kind; the only kind is \"preference\""
            ));
        }
    };
    let prefer_only = actions == [ContractAction::Prefer];
    let kind = if preference {
        if actions != [ContractAction::Prefer] {
            return Err(
                "a @kind(\"preference\") clause must be scoped to action == Action::\"prefer\" only"
                    .into(),
            );
        }
        ClauseKind::Preference
    } else if prefer_only {
        return Err(
            "a clause scoped to Action::\"prefer\" is a preference; annotate it @kind(\"preference\")"
                .into(),
        );
    } else if actions.contains(&ContractAction::Host) {
        ClauseKind::Placement
    } else if actions.contains(&ContractAction::Hold) {
        ClauseKind::Holding
    } else if actions.contains(&ContractAction::Admit) {
        ClauseKind::Admission
    } else {
        // What is left names `use`, possibly with `prefer` (which, not being
        // prefer-only, is no preference).
        ClauseKind::Tools
    };

    Ok(Clause {
        id: ClauseId::new(id),
        title,
        source,
        effect: match policy.effect() {
            CedarEffect::Permit => Effect::Permit,
            CedarEffect::Forbid => Effect::Forbid,
        },
        kind,
        actions,
        window,
        file: file.to_owned(),
        line,
    })
}

fn action_of(uid: &cedar_policy::EntityUid) -> Result<ContractAction, String> {
    ContractAction::from_name(uid.id().unescaped()).ok_or_else(|| {
        format!("unknown action {uid}; Treaty's actions are admit, host, hold, prefer and use")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
