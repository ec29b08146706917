//! `check` on the example and on crafted contracts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use common::*;
use treaty_contracts::{CheckOptions, Contracts, FindingKind, Severity, SymbolicStatus};

fn no_solver() -> CheckOptions {
    CheckOptions {
        use_solver: false,
        ..CheckOptions::default()
    }
}

#[test]
fn the_shipped_example_has_no_errors() {
    let world = frontier();
    for reading in READINGS {
        let c = load(reading, &world);
        let report = c.check(&no_solver());
        print!("{report}");
        assert!(!report.has_errors(), "{reading}:\n{report}");
        assert!(matches!(report.symbolic, SymbolicStatus::Skipped { .. }));
    }
}

#[test]
fn the_shipped_example_with_the_solver() {
    if !solver_or_skip("the_shipped_example_with_the_solver") {
        return;
    }
    let world = frontier();
    for reading in READINGS {
        let c = load(reading, &world);
        let report = c.check(&CheckOptions::default());
        print!("{report}");
        assert!(
            matches!(report.symbolic, SymbolicStatus::Ran { .. }),
            "{report}"
        );
        assert!(!report.has_errors(), "{reading}:\n{report}");
        // Forbids narrowing the open defaults are the design.
        for f in &report.findings {
            let ids: Vec<&str> = f.clauses.iter().map(|c| c.as_str()).collect();
            assert!(!ids.contains(&"A0") && !ids.contains(&"H0"), "{f:?}");
        }
    }
}

#[test]
fn an_eu_tenant_without_an_eu_host_is_a_dead_zone() {
    let mut world = frontier();
    world.hosts.retain(|h| h.id.as_str() != "azure-westeurope");
    let c = load("reading-openai", &world);
    let report = c.check(&no_solver());
    print!("{report}");
    assert!(report.has_errors());
    let dead: Vec<_> = report
        .errors()
        .filter(|f| f.kind == FindingKind::DeadZone)
        .collect();
    assert!(!dead.is_empty());
    for f in &dead {
        let cex = f.counterexample.as_ref().unwrap();
        assert_eq!(cex["tenant"], "eurobank", "{f:?}");
        assert!(f.clauses.iter().any(|c| c.as_str() == "R1"), "{f:?}");
        assert!(f.message.contains("eurobank"));
    }
    // The counterexample is a request the engine really refuses everywhere.
    let cex = dead[0].counterexample.as_ref().unwrap();
    let class: treaty_domain::WorkloadClass = cex["class"].as_str().unwrap().parse().unwrap();
    let when = cex["from"]
        .as_str()
        .map_or(at("2000-01-01", 0), |d| at(d, 0));
    let e = explain(
        &c,
        "eurobank",
        cex["channel"].as_str().unwrap(),
        cex["product"].as_str().unwrap(),
        class,
        when,
    );
    assert!(e.admitted && e.hosts.iter().all(|h| !h.allowed));
    // No other tenant is in a dead zone.
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::DeadZone
                || f.counterexample.as_ref().unwrap()["tenant"] == "eurobank")
    );
}

const CRAFTED: &str = r#"
@id("A0") @title("open-distribution") @source("test")
permit (principal, action == Action::"admit", resource);
@id("H0") @title("open-hosting") @source("test")
permit (principal, action in [Action::"host", Action::"hold"], resource);

// A permit and a forbid that overlap on GCP hosts for enterprise tenants.
@id("X1") @title("gcp-for-enterprise") @source("test")
permit (principal, action == Action::"host", resource)
when { principal.segment == "enterprise" && resource.cloud == "gcp" };
@id("X2") @title("no-gcp-for-stateless") @source("test")
forbid (principal, action == Action::"host", resource)
when { context.class == "stateless_api" }
unless { resource.cloud != "gcp" };

// Can never apply: a host cannot be on two clouds.
@id("X3") @title("impossible") @source("test")
forbid (principal, action == Action::"host", resource)
when { resource.cloud == "aws" && resource.cloud == "gcp" };

// Fully shadowed: every request it permits, X5 forbids.
@id("X4") @title("onprem-for-eu") @source("test")
permit (principal, action == Action::"host", resource)
when { principal.data_region == "eu" && resource.cloud == "onprem" };
@id("X5") @title("no-onprem") @source("test")
forbid (principal, action == Action::"host", resource)
when { resource.cloud == "onprem" };

// In force at different times: never in conflict.
@id("X6") @title("old-aws") @source("test") @effective_until("2020-12-31")
permit (principal, action == Action::"host", resource)
when { resource.cloud == "aws" };
@id("X7") @title("new-no-aws") @source("test") @effective_from("2021-01-01")
forbid (principal, action == Action::"host", resource)
when { resource.cloud == "aws" };
"#;

#[test]
fn symbolic_findings_on_crafted_clauses() {
    if !solver_or_skip("symbolic_findings_on_crafted_clauses") {
        return;
    }
    let world = frontier();
    let c = Contracts::from_sources(
        "crafted",
        &[("crafted.cedar".into(), CRAFTED.into())],
        world.entities(),
    )
    .unwrap();
    let report = c.check(&CheckOptions::default());
    print!("{report}");
    assert!(matches!(report.symbolic, SymbolicStatus::Ran { .. }));
    let has = |kind: FindingKind, ids: &[&str]| {
        report.findings.iter().any(|f| {
            f.kind == kind
                && f.severity == Severity::Warning
                && ids
                    .iter()
                    .all(|id| f.clauses.iter().any(|c| c.as_str() == *id))
        })
    };
    // X1 and X2: opposite effects, same request, with a counterexample
    // that really is a GCP host, an enterprise tenant, a stateless call.
    let conflict = report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Conflict && f.clauses.iter().any(|c| c.as_str() == "X1"))
        .expect("X1/X2 conflict");
    assert!(conflict.clauses.iter().any(|c| c.as_str() == "X2"));
    let cex = conflict.counterexample.as_ref().unwrap();
    assert_eq!(cex["principal"]["attrs"]["segment"], "enterprise");
    assert_eq!(cex["resource"]["attrs"]["cloud"], "gcp");
    assert_eq!(cex["context"]["class"], "stateless_api");
    assert!(has(FindingKind::NeverApplies, &["X3"]));
    assert!(has(FindingKind::Shadowed, &["X4", "X5"]));
    assert!(
        !has(FindingKind::Shadowed, &["X1"]),
        "X1 still permits non-stateless calls"
    );
    assert!(
        !has(FindingKind::Conflict, &["X6", "X7"]),
        "windows do not overlap"
    );
    // Forbids narrowing the open defaults are not findings.
    assert!(!report.findings.iter().any(|f| {
        f.clauses
            .iter()
            .any(|c| c.as_str() == "H0" || c.as_str() == "A0")
    }));
    assert!(!report.has_errors());
}

#[test]
fn without_the_solver_the_report_says_skipped() {
    let c = load("reading-openai", &frontier());
    let report = c.check(&CheckOptions {
        use_solver: true,
        solver_path: Some("/nonexistent/cvc5".into()),
    });
    match &report.symbolic {
        SymbolicStatus::Skipped { reason } => assert!(reason.contains("cvc5"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(report.to_string().contains("SKIPPED"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["symbolic"]["status"], "skipped");
}
