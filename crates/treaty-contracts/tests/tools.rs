//! Tool use as a Cedar action (`use`): the example's T0 and T1, the
//! unrestricted default of readings that never name `use`, and windows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use common::*;
use treaty_contracts::{
    CheckOptions, ClauseKind, Contracts, FindingKind, Query, ToolRef, ToolVerdict,
};
use treaty_domain::{ChannelId, ProductId, TenantId, WorkloadClass};

const MCP: ToolRef<'static> = ToolRef {
    kind: "mcp",
    connector: "github",
    name: "create_issue",
};
const WEBHOOK: ToolRef<'static> = ToolRef {
    kind: "webhook",
    connector: "crm-lookup",
    name: "crm-lookup",
};
const FUNCTION: ToolRef<'static> = ToolRef {
    kind: "function",
    connector: "client",
    name: "get_fx_rate",
};

/// A tool step of a Frontier run sold directly.
fn may_use(c: &Contracts, tenant: &str, tool: ToolRef<'_>, at_unix_ms: i64) -> ToolVerdict {
    let tenant = TenantId::new(tenant).unwrap();
    let channel = ChannelId::new("direct").unwrap();
    let product = ProductId::new("frontier").unwrap();
    c.may_use(
        &Query {
            tenant: &tenant,
            channel: &channel,
            product: &product,
            class: WorkloadClass::StatefulAgent,
            data_classification: "unclassified",
            at_unix_ms,
        },
        &tool,
    )
}

fn ids(v: &ToolVerdict) -> Vec<&str> {
    v.clauses.iter().map(|c| c.as_str()).collect()
}

fn no_solver() -> CheckOptions {
    CheckOptions {
        use_solver: false,
        ..CheckOptions::default()
    }
}

/// A reading from in-memory files, written to a temporary directory and
/// loaded the way `treaty` loads one.
fn reading(files: &[(&str, &str)]) -> Contracts {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reading-test");
    std::fs::create_dir(&path).unwrap();
    for (name, text) in files {
        std::fs::write(path.join(name), text).unwrap();
    }
    Contracts::load(&path, frontier().entities()).unwrap_or_else(|e| panic!("{e}"))
}

const A0: &str = r#"
@id("A0") @title("open-distribution") @source("test")
permit (principal, action == Action::"admit", resource);
"#;

const H0: &str = r#"
@id("H0") @title("open-hosting") @source("test")
permit (principal, action in [Action::"host", Action::"hold"], resource);
"#;

#[test]
fn t0_lets_acme_use_every_kind_of_tool_in_every_reading() {
    let world = frontier();
    for r in READINGS {
        let c = load(r, &world);
        for tool in [MCP, WEBHOOK, FUNCTION] {
            for when in [at("2024-01-01", 0), at("2026-03-01", 0)] {
                let v = may_use(&c, "acme", tool, when);
                assert!(v.allowed, "{r} {tool:?}: {v:?}");
                assert!(!v.unrestricted, "{r}: the reading names use");
                assert_eq!(ids(&v), ["T0"], "{r} {tool:?}");
            }
        }
    }
}

#[test]
fn t1_refuses_eurobank_webhooks_and_only_webhooks() {
    let world = frontier();
    for r in READINGS {
        let c = load(r, &world);
        let v = may_use(&c, "eurobank", WEBHOOK, at("2026-03-01", 0));
        assert_eq!(
            v,
            ToolVerdict {
                allowed: false,
                clauses: vec![c.clause("T1").unwrap().id.clone()],
                unrestricted: false,
            },
            "{r}"
        );
        for tool in [MCP, FUNCTION] {
            let v = may_use(&c, "eurobank", tool, at("2026-03-01", 0));
            assert!(v.allowed, "{r} {tool:?}: {v:?}");
            assert_eq!(ids(&v), ["T0"]);
        }
        // dod's data region is us: its webhooks stay allowed.
        assert!(may_use(&c, "dod", WEBHOOK, at("2026-03-01", 0)).allowed);
    }
}

#[test]
fn tool_clauses_are_classified_and_annotated() {
    let c = load("reading-openai", &frontier());
    for id in ["T0", "T1"] {
        let clause = c.clause(id).unwrap();
        assert_eq!(clause.kind, ClauseKind::Tools, "{id}");
        assert!(clause.window.is_always());
        assert!(clause.file.ends_with("tools.cedar"));
        assert!(clause.source.starts_with("Treaty example"), "{id}");
    }
    // The verdict JSON others will log and show.
    let v = may_use(&c, "eurobank", WEBHOOK, 0);
    assert_eq!(
        serde_json::to_value(&v).unwrap(),
        serde_json::json!({"allowed": false, "clauses": ["T1"], "unrestricted": false})
    );
}

#[test]
fn a_reading_that_never_names_use_leaves_tools_unrestricted() {
    // An open action scope does not opt in: this forbid predates tools.
    let c = reading(&[(
        "distribution.cedar",
        &format!(
            "{A0}\n{}",
            r#"@id("X1") @title("no national security") @source("test")
forbid (principal, action, resource) when { principal.segment == "national_security" };"#
        ),
    )]);
    for tenant in ["acme", "dod", "eurobank", "nobody"] {
        for tool in [MCP, WEBHOOK, FUNCTION] {
            assert_eq!(
                may_use(&c, tenant, tool, 0),
                ToolVerdict {
                    allowed: true,
                    clauses: vec![],
                    unrestricted: true,
                },
                "{tenant} {tool:?}"
            );
        }
    }
    let report = c.check(&no_solver());
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::ToolsRefused),
        "{report}"
    );
}

#[test]
fn once_use_is_named_an_open_scope_forbid_applies_to_tools_too() {
    let c = reading(&[(
        "all.cedar",
        &format!(
            "{A0}\n{}",
            r#"@id("T0") @title("open-tools") @source("test")
permit (principal, action == Action::"use", resource);
@id("X1") @title("no national security") @source("test")
forbid (principal, action, resource) when { principal.segment == "national_security" };"#
        ),
    )]);
    let v = may_use(&c, "dod", MCP, 0);
    assert!(!v.allowed);
    assert_eq!(ids(&v), ["X1"]);
    assert_eq!(ids(&may_use(&c, "acme", MCP, 0)), ["T0"]);
}

#[test]
fn tool_clauses_follow_their_effective_windows() {
    let c = reading(&[
        ("distribution.cedar", A0),
        ("hosting.cedar", H0),
        (
            "tools.cedar",
            r#"
@id("T0") @title("open-tools") @source("test")
@effective_from("2025-01-01")
permit (principal, action == Action::"use", resource);

@id("TW") @title("no webhooks in January") @source("test")
@effective_from("2026-01-01")
@effective_until("2026-01-31")
forbid (principal, action == Action::"use", resource)
when { resource.kind == "webhook" && resource.connector == "crm-lookup" };
"#,
        ),
    ]);
    let cases: [(i64, bool, &[&str]); 6] = [
        // Before T0: governed, nothing permits, refused naming no clause.
        (at("2025-01-01", -1), false, &[]),
        (at("2025-01-01", 0), true, &["T0"]),
        (at("2026-01-01", -1), true, &["T0"]),
        (at("2026-01-01", 0), false, &["TW"]),
        // 2026-01-31 is included, whole UTC day.
        (at("2026-02-01", -1), false, &["TW"]),
        (at("2026-02-01", 0), true, &["T0"]),
    ];
    for (when, allowed, named) in cases {
        let v = may_use(&c, "acme", WEBHOOK, when);
        assert_eq!(v.allowed, allowed, "at {when}: {v:?}");
        assert_eq!(ids(&v), named, "at {when}");
        assert!(!v.unrestricted);
    }
    // The forbid reads the connector: another webhook is allowed in January.
    let other = ToolRef {
        connector: "ticketing",
        name: "ticketing",
        ..WEBHOOK
    };
    assert!(may_use(&c, "acme", other, at("2026-01-15", 0)).allowed);

    // Before T0 no permit is in force: check says every tool is refused.
    let report = c.check(&no_solver());
    let f = report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::ToolsRefused)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(f.message.contains("until 2024-12-31"), "{}", f.message);
    assert!(!report.has_errors(), "{report}");
    // TW never matches the configured (tool-less) table; that is no finding.
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::NeverAppliesHere),
        "{report}"
    );
}

#[test]
fn unknown_ids_are_refused_once_use_is_governed() {
    let c = load("reading-openai", &frontier());
    let v = may_use(&c, "nobody", MCP, 0);
    assert_eq!(
        v,
        ToolVerdict {
            allowed: false,
            clauses: vec![],
            unrestricted: false,
        }
    );
}

#[test]
fn use_clauses_are_checked_against_the_schema() {
    let err = Contracts::from_sources(
        "bad",
        &[(
            "tools.cedar".into(),
            r#"@id("T9") @title("t") @source("s")
forbid (principal, action == Action::"use", resource) when { resource.cloud == "aws" };"#
                .into(),
        )],
        frontier().entities(),
    )
    .unwrap_err();
    let errors = err.source_errors();
    assert!(!errors.is_empty(), "{err}");
    assert!(
        errors.iter().all(|e| e.clause.as_deref() == Some("T9")),
        "{err}"
    );
}

#[test]
fn the_example_checks_clean_for_tools() {
    let world = frontier();
    for r in READINGS {
        let c = load(r, &world);
        let report = c.check(&no_solver());
        assert!(!report.has_errors(), "{r}:\n{report}");
        for f in &report.findings {
            let named: Vec<&str> = f.clauses.iter().map(|c| c.as_str()).collect();
            assert!(
                f.kind != FindingKind::ToolsRefused
                    && !named.contains(&"T0")
                    && !named.contains(&"T1"),
                "{r}: {f:?}"
            );
        }
    }
}

#[test]
fn the_symbolic_checks_cover_use() {
    if !solver_or_skip("the_symbolic_checks_cover_use") {
        return;
    }
    let c = reading(&[
        ("distribution.cedar", A0),
        ("hosting.cedar", H0),
        (
            "tools.cedar",
            r#"
@id("T0") @title("mcp only") @source("test")
permit (principal, action == Action::"use", resource) when { resource.kind == "mcp" };

@id("T1") @title("no eu connectors") @source("test")
forbid (principal, action == Action::"use", resource)
when { principal.data_region == "eu" && resource.connector == "github" };

@id("T2") @title("impossible") @source("test")
forbid (principal, action == Action::"use", resource)
when { resource.kind == "mcp" && resource.kind == "webhook" };
"#,
        ),
    ]);
    let report = c.check(&CheckOptions::default());
    let has = |kind: FindingKind, ids: &[&str]| {
        report
            .findings
            .iter()
            .any(|f| f.kind == kind && f.clauses.iter().map(|c| c.as_str()).eq(ids.iter().copied()))
    };
    assert!(has(FindingKind::Conflict, &["T0", "T1"]), "{report}");
    assert!(has(FindingKind::NeverApplies, &["T2"]), "{report}");
    assert!(!report.has_errors(), "{report}");
}
