//! Invalid contracts stop loading with the file, line and reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use common::*;
use treaty_contracts::{ContractError, Contracts};

fn load_err(text: &str) -> ContractError {
    let world = frontier();
    let sources = vec![
        (
            "ok.cedar".to_owned(),
            "@id(\"A0\") @title(\"t\") @source(\"s\")\npermit (principal, action == Action::\"admit\", resource);\n".to_owned(),
        ),
        ("bad.cedar".to_owned(), text.to_owned()),
    ];
    match Contracts::from_sources("test", &sources, world.entities()) {
        Ok(_) => panic!("loaded an invalid contract:\n{text}"),
        Err(e) => e,
    }
}

fn first(e: &ContractError) -> &treaty_contracts::SourceError {
    e.source_errors()
        .first()
        .unwrap_or_else(|| panic!("no source error: {e}"))
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let e = load_err(
        "// a comment\n\n@id(\"C1\") @title(\"t\") @source(\"s\")\nforbid (principal, action == Action::\"host\", resource)\nwhen { resource.cloud == };\n",
    );
    let s = first(&e);
    assert_eq!(s.file, "bad.cedar");
    assert_eq!(s.line, 5, "{e}");
    assert!(e.to_string().contains("bad.cedar:5:"), "{e}");
}

#[test]
fn a_schema_violation_names_file_line_and_attribute() {
    let e = load_err(
        "\n\n@id(\"C1\") @title(\"t\") @source(\"s\")\nforbid (principal, action == Action::\"host\", resource)\nunless { resource.colud == \"azure\" };\n",
    );
    let s = first(&e);
    assert_eq!(s.file, "bad.cedar");
    assert_eq!(s.line, 5, "{e}");
    assert_eq!(s.clause.as_deref(), Some("C1"));
    assert!(s.message.contains("colud"), "{e}");
}

#[test]
fn a_wrongly_typed_comparison_is_refused() {
    let e = load_err(
        "@id(\"C1\") @title(\"t\") @source(\"s\")\nforbid (principal, action == Action::\"admit\", resource)\nwhen { resource.kind == 3 };\n",
    );
    assert_eq!(first(&e).line, 3, "{e}");
}

#[test]
fn annotations_are_checked() {
    let cases = [
        (
            "permit (principal, action == Action::\"host\", resource);",
            "@id",
        ),
        (
            "@id(\"C 1\") @title(\"t\") @source(\"s\")\npermit (principal, action == Action::\"host\", resource);",
            "clause id",
        ),
        (
            "@id(\"C1\") @source(\"s\")\npermit (principal, action == Action::\"host\", resource);",
            "@title",
        ),
        (
            "@id(\"C1\") @title(\"t\") @source(\"s\") @effective_form(\"2025-10-28\")\npermit (principal, action == Action::\"host\", resource);",
            "unknown annotation",
        ),
        (
            "@id(\"C1\") @title(\"t\") @source(\"s\") @effective_from(\"28/10/2025\")\npermit (principal, action == Action::\"host\", resource);",
            "not a date",
        ),
        (
            "@id(\"C1\") @title(\"t\") @source(\"s\") @effective_from(\"2025-10-28\") @effective_until(\"2025-10-27\")\npermit (principal, action == Action::\"host\", resource);",
            "never be in force",
        ),
        (
            "@id(\"A0\") @title(\"t\") @source(\"s\")\npermit (principal, action == Action::\"host\", resource);",
            "duplicate clause id",
        ),
        (
            "@id(\"P1\") @title(\"t\") @source(\"s\") @kind(\"preference\")\npermit (principal, action == Action::\"host\", resource);",
            "prefer",
        ),
        (
            "@id(\"P1\") @title(\"t\") @source(\"s\")\npermit (principal, action == Action::\"prefer\", resource);",
            "preference",
        ),
        (
            "@id(\"T1\") @title(\"t\") @source(\"s\")\npermit (principal == ?principal, action == Action::\"host\", resource);",
            "template",
        ),
        (
            "@id(\"U1\") @title(\"t\") @source(\"s\")\npermit (principal, action == Action::\"fly\", resource);",
            "action",
        ),
    ];
    for (text, expect) in cases {
        let e = load_err(text);
        let s = first(&e);
        assert_eq!(s.file, "bad.cedar", "{text}");
        assert!(s.line >= 1, "{text}: {e}");
        assert!(
            e.to_string().contains(expect),
            "{text}: expected {expect:?} in {e}"
        );
    }
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let e = load_err(
        "@id(\"C1\") @title(\"t\") @source(\"s\")\nforbid (principal, action == Action::\"host\", resource)\nunless { resource.colud == \"azure\" };\n@id(\"C2\") @title(\"t\") @source(\"s\")\nforbid (principal, action == Action::\"host\", resource)\nunless { resource.regoin == \"us\" };\n",
    );
    assert_eq!(e.source_errors().len(), 2, "{e}");
}

#[test]
fn a_missing_directory_and_an_empty_one_are_errors() {
    let world = frontier();
    let e = Contracts::load(
        std::path::Path::new("/nonexistent/reading"),
        world.entities(),
    )
    .unwrap_err();
    assert!(matches!(e, ContractError::Io { .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = Contracts::load(dir.path(), world.entities()).unwrap_err();
    assert!(matches!(e, ContractError::Empty { .. }), "{e}");
}

#[test]
fn a_clause_reading_data_classification_needs_configured_classifications() {
    let world = frontier();
    let text = "@id(\"D1\") @title(\"t\") @source(\"s\")\nforbid (principal, action == Action::\"host\", resource)\nwhen { context.data_classification == \"phi\" } unless { resource.certifications.contains(\"hipaa\") };\n";
    let e = Contracts::from_sources("t", &[("d.cedar".into(), text.into())], world.entities())
        .unwrap_err();
    assert!(e.to_string().contains("data classifications"), "{e}");
}
