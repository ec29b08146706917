//! What-if replays with two closure readings on the report fixture.

use super::reports::load_fixture;
use super::{Db, on_both};
use crate::{
    ClauseCount, DecisionRecord, HostMove, HostVerdict, Redecision, RuleChange, RuntimeVerdict,
    Simulation, ToolVerdict, Verdicts, simulate,
};

fn verdict(host: &str, allowed: bool, clause: &str) -> HostVerdict {
    HostVerdict {
        host: host.into(),
        allowed,
        clauses: vec![clause.into()],
    }
}

/// Reading B: the AWS marketplace runs on `bed` (X2), not on `az` (X1),
/// its requests classed `non_api_product` by rule `b-non-api`; `gov` is
/// not admitted (X9); everything else as recorded.
fn reading_b(d: &DecisionRecord) -> Redecision {
    if d.channel == "aws-marketplace" {
        let hosts = [verdict("az", false, "X1"), verdict("bed", true, "X2")];
        return Redecision::from_verdicts(
            d,
            Verdicts {
                admitted: true,
                workload_class: "non_api_product",
                classified_by: "b-non-api",
                admit_clauses: &["C3".to_owned()],
                hosts: &hosts,
                preferred: &[],
            },
        );
    }
    if d.tenant == "gov" {
        return Redecision::from_verdicts(
            d,
            Verdicts {
                admitted: false,
                workload_class: &d.workload_class,
                classified_by: &d.classified_by,
                admit_clauses: &["X9".to_owned()],
                hosts: &d.hosts,
                preferred: &[],
            },
        );
    }
    Redecision::recorded(d)
}

async fn simulate_counts_moves_and_refusals(db: Db) {
    let store = db.store().await;
    load_fixture(&store).await;
    let mut last = (0, 0);
    let report = simulate(&store, &Redecision::recorded, &reading_b, |done, total| {
        last = (done, total);
    })
    .await
    .unwrap();
    assert_eq!(last, (6, 6));
    let t = &report.total;
    assert_eq!(
        (
            t.requests,
            t.keep,
            t.moved,
            t.became_refused,
            t.became_admitted,
            t.stayed_refused
        ),
        (6, 3, 1, 0, 1, 1)
    );
    assert_eq!(
        report.moves,
        vec![HostMove {
            from: "az".into(),
            to: "bed".into(),
            requests: 1
        }]
    );
    // The clause that refuses the old host is named for the move.
    let x1 = report.by_clause.iter().find(|c| c.clause == "X1").unwrap();
    assert_eq!((x1.impact.moved, x1.moves.len()), (1, 1));
    let x2 = report.by_clause.iter().find(|c| c.clause == "X2").unwrap();
    assert_eq!((x2.impact.moved, x2.impact.became_admitted), (1, 1));
    let group = report
        .by_group
        .iter()
        .find(|g| g.tenant == "acme" && g.channel == "aws-marketplace")
        .unwrap();
    assert_eq!(
        (group.product.as_str(), group.class.as_str()),
        ("frontier", "stateless_api")
    );
    assert_eq!(group.impact.moved, 1);

    // The other way round, the admitted request becomes refused again and
    // the move goes back.
    let back = simulate(&store, &reading_b, &Redecision::recorded, |_, _| {})
        .await
        .unwrap();
    assert_eq!(back.total.became_refused, 1);
    assert_eq!(back.moves[0].from, "bed");
    assert_eq!(back.moves[0].to, "az");

    // JSON for `--format json`.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["moved"], 1);
    assert_eq!(json["by_group"][0]["tenant"], "acme");

    // The same reading on both sides changes nothing.
    let same = simulate(&store, &reading_b, &reading_b, |_, _| {})
        .await
        .unwrap();
    assert_eq!(same.total.changed(), 0);
    db.finish().await;
}
on_both!(simulate_counts_moves_and_refusals);

async fn simulate_names_what_separates_the_readings(db: Db) {
    let store = db.store().await;
    load_fixture(&store).await;
    let report = simulate(&store, &Redecision::recorded, &reading_b, |_, _| {})
        .await
        .unwrap();
    // The AWS marketplace request (r2): recorded, `az` allowed by C1 and
    // `bed` refused by C4; under B, `az` refused by X1 and `bed` allowed
    // by X2, classed by another rule. C1 and C4 stop applying, X1 and X2
    // start.
    let group = report
        .by_group
        .iter()
        .find(|g| g.channel == "aws-marketplace" && g.tenant == "acme")
        .unwrap();
    let names = |c: &[ClauseCount]| -> Vec<(String, u64)> {
        c.iter().map(|c| (c.clause.clone(), c.requests)).collect()
    };
    assert_eq!(
        names(&group.stop_applying),
        [("C1".to_owned(), 1), ("C4".to_owned(), 1)]
    );
    assert_eq!(
        names(&group.start_applying),
        [("X1".to_owned(), 1), ("X2".to_owned(), 1)]
    );
    assert_eq!(
        group.rules,
        [RuleChange {
            from_rule: "rule".into(),
            from_class: "stateless_api".into(),
            to_rule: "b-non-api".into(),
            to_class: "non_api_product".into(),
            requests: 1,
        }]
    );
    assert!(group.separated());
    // `gov` through `direct` is not admitted under B (r4): C2 gives way to
    // X9.
    let gov = report
        .by_group
        .iter()
        .find(|g| g.tenant == "gov" && g.channel == "direct")
        .unwrap();
    assert_eq!(names(&gov.start_applying), [("X9".to_owned(), 1)]);
    assert!(gov.stop_applying.iter().any(|c| c.clause == "C2"));
    // Groups where the readings agree name nothing.
    let same = report
        .by_group
        .iter()
        .find(|g| g.tenant == "eu-bank")
        .unwrap();
    assert!(!same.separated(), "{same:?}");
    // Per clause: C1 stops applying to the two AWS marketplace requests
    // (r2 moves, r3 becomes admitted), not to the `direct` ones.
    let c1 = report.by_clause.iter().find(|c| c.clause == "C1").unwrap();
    assert_eq!(
        (
            c1.stopped,
            c1.started,
            c1.impact.moved,
            c1.impact.became_admitted
        ),
        (2, 0, 1, 1)
    );
    let x1 = report.by_clause.iter().find(|c| c.clause == "X1").unwrap();
    assert_eq!((x1.stopped, x1.started), (0, 2));
    assert_eq!(report.rules[0].requests, 2);
    // JSON for `--format json`.
    let json = serde_json::to_value(group).unwrap();
    assert_eq!(json["stop_applying"][0]["clause"], "C1");
    assert_eq!(json["rules"][0]["to_rule"], "b-non-api");

    // The counting needs no store: the same from decisions in memory.
    let mut sim = Simulation::default();
    for e in super::reports::fixture() {
        if let crate::Entry::Decision(d) = e {
            sim.add(&d, &Redecision::recorded(&d), &reading_b(&d));
        }
    }
    assert_eq!(sim.finish(), report);
    db.finish().await;
}
on_both!(simulate_names_what_separates_the_readings);

#[test]
fn preferred_hosts_are_chosen_first_among_candidates() {
    let d = super::reports::req(
        "r",
        0,
        ("t", "c", "p"),
        "stateless_api",
        true,
        &[],
        &[("a", true, &[]), ("b", true, &[]), ("c", true, &[])],
        Some("a"),
        None,
    );
    let hosts = [
        verdict("z", true, "Z"),
        verdict("c", true, "K"),
        verdict("b", true, "K"),
        verdict("a", false, "N"),
    ];
    let v = Verdicts {
        admitted: true,
        workload_class: "stateless_api",
        classified_by: "rule",
        admit_clauses: &[],
        hosts: &hosts,
        preferred: &[],
    };
    // First allowed candidate in the record's order; `z` serves no model.
    assert_eq!(
        Redecision::from_verdicts(&d, v).chosen.as_deref(),
        Some("b")
    );
    let preferred = ["c".to_owned()];
    let p = Verdicts {
        preferred: &preferred,
        ..v
    };
    assert_eq!(
        Redecision::from_verdicts(&d, p).chosen.as_deref(),
        Some("c")
    );
    let refused = Redecision::from_verdicts(
        &d,
        Verdicts {
            admitted: false,
            ..v
        },
    );
    assert_eq!(refused.chosen, None);
    assert!(!refused.runs());
}

#[test]
fn a_hold_is_served_when_its_instance_may_hold_the_state() {
    let mut d = super::reports::req(
        "h",
        0,
        ("acme", "aws-marketplace", "frontier"),
        "stateful_agent",
        true,
        &["C1"],
        &[],
        None,
        None,
    );
    let held = |allowed: bool, clause: &str| RuntimeVerdict {
        instance: "treaty-aws".into(),
        cloud: "aws".into(),
        region: "us-east".into(),
        allowed,
        clauses: vec![clause.into()],
    };
    d.runtime = Some(held(true, "C2"));
    let recorded = Redecision::recorded(&d);
    assert!(recorded.runs(), "a hold that was allowed is served");
    assert_eq!(recorded.reasons(), ["C1", "C2"]);

    // The fresh verdict about hosts gives way to the hold's: no host is
    // chosen, and the hold decides whether it is served.
    let hosts = [verdict("az", true, "X1")];
    let fresh = || {
        Redecision::from_verdicts(
            &d,
            Verdicts {
                admitted: true,
                workload_class: "stateful_agent",
                classified_by: "rule",
                admit_clauses: &["C1".to_owned()],
                hosts: &hosts,
                preferred: &[],
            },
        )
    };
    let refused = fresh().holding(held(false, "C4m"));
    assert_eq!((refused.runs(), refused.chosen.as_deref()), (false, None));
    assert_eq!(refused.reasons(), ["C1", "C4m"]);
    let allowed = fresh().holding(held(true, "C4a"));
    assert!(allowed.runs());
    assert!(allowed.hosts.is_empty());
}

#[test]
fn a_tool_call_is_served_when_its_use_is_allowed() {
    let mut d = super::reports::req(
        "t",
        0,
        ("eurobank", "direct", "frontier"),
        "stateful_agent",
        true,
        &["A0"],
        &[],
        None,
        Some("contract_refused"),
    );
    let tool = |allowed: bool, clause: &str| ToolVerdict {
        call_id: "call_1".into(),
        kind: "webhook".into(),
        connector: "create_ticket".into(),
        name: "create_ticket".into(),
        allowed,
        clauses: vec![clause.into()],
    };
    d.tool = Some(tool(false, "T1"));
    let recorded = Redecision::recorded(&d);
    assert!(!recorded.runs(), "a refused call was not served");
    assert_eq!(recorded.reasons(), ["A0", "T1"]);
    let hosts = [verdict("az", true, "X1")];
    let allowed = Redecision::from_verdicts(
        &d,
        Verdicts {
            admitted: true,
            workload_class: "stateful_agent",
            classified_by: "tool_call",
            admit_clauses: &["A0".to_owned()],
            hosts: &hosts,
            preferred: &[],
        },
    )
    .using(tool(true, "T0"));
    assert!(allowed.runs());
    assert_eq!(
        (allowed.chosen.as_deref(), allowed.reasons()),
        (None, vec!["A0", "T0"])
    );
}

#[test]
fn a_clause_that_takes_anothers_place_is_named() {
    use crate::{ReadingClauses, ScopedClause};
    // An agent held on an AWS instance: refused by C2 under one reading;
    // let through under the other, whose C2a exempts AWS in its `unless`,
    // so its verdict names only the permit (H0).
    let mut d = super::reports::req(
        "h",
        0,
        ("acme", "aws-marketplace", "frontier"),
        "stateful_agent",
        true,
        &["A0"],
        &[],
        None,
        None,
    );
    let hold = |allowed: bool, clause: &str| RuntimeVerdict {
        instance: "treaty-aws".into(),
        cloud: "aws".into(),
        region: "us-east".into(),
        allowed,
        clauses: vec![clause.into()],
    };
    d.runtime = Some(hold(false, "C2"));
    let a = Redecision::recorded(&d);
    let b = Redecision {
        runtime: Some(hold(true, "H0")),
        ..a.clone()
    };
    let scoped = |id: &str, actions: &[&str], from_ms: Option<i64>| ScopedClause {
        id: id.into(),
        actions: actions.iter().map(|a| (*a).into()).collect(),
        from_ms,
        until_ms: None,
    };
    let shared = [
        scoped("A0", &["admit"], None),
        scoped("H0", &["host", "hold"], None),
    ];
    let from = ReadingClauses(
        shared
            .iter()
            .cloned()
            .chain([scoped("C2", &["hold"], None)])
            .collect(),
    );
    let to = ReadingClauses(
        shared
            .iter()
            .cloned()
            .chain([
                scoped("C2a", &["hold"], None),
                // Not yet in force at the decision: not named.
                scoped("C9", &["hold"], Some(d.at_ms + 1)),
                // Another action: not named.
                scoped("C5", &["host"], None),
            ])
            .collect(),
    );
    let names = |c: &[ClauseCount]| -> Vec<String> { c.iter().map(|c| c.clause.clone()).collect() };

    let mut plain = Simulation::default();
    plain.add(&d, &a, &b);
    let g = &plain.finish().by_group[0];
    assert_eq!(
        (names(&g.stop_applying), names(&g.start_applying)),
        (vec!["C2".to_owned()], vec!["H0".to_owned()])
    );

    let mut sim = Simulation::between(from.clone(), to.clone());
    sim.add(&d, &a, &b);
    let report = sim.finish();
    let g = &report.by_group[0];
    assert_eq!(names(&g.stop_applying), ["C2"]);
    assert_eq!(names(&g.start_applying), ["C2a", "H0"]);
    assert_eq!(g.impact.became_admitted, 1);
    // And back: C2a stops, C2 starts.
    let mut back = Simulation::between(to, from);
    back.add(&d, &b, &a);
    let g = &back.finish().by_group[0];
    assert_eq!(names(&g.stop_applying), ["C2a", "H0"]);
    assert_eq!(names(&g.start_applying), ["C2"]);
}
