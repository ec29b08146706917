//! The decision core on the shipped Frontier example.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use treaty_config::{Config, MapEnv};
use treaty_contracts::ToolRef;
use treaty_domain::{ChannelId, ProductId, Route, StateOp, TenantId, WorkloadClass};

use crate::{Ask, AskError, Hints, Picks, Policy, RefusalKind, Subject, What};

/// 2026-06-01, after every clause of the example took effect.
const AT: i64 = 1_780_272_000_000;

fn example(edit: impl FnOnce(&mut Config)) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &MapEnv::new()).unwrap();
    edit(&mut config);
    Policy::load(Arc::new(config)).unwrap()
}

struct Who {
    tenant: TenantId,
    channel: ChannelId,
    product: ProductId,
}

fn who(tenant: &str, channel: &str, product: &str) -> Who {
    Who {
        tenant: tenant.parse().unwrap(),
        channel: channel.parse().unwrap(),
        product: product.parse().unwrap(),
    }
}

fn ask<'a>(w: &'a Who, what: What<'a>, hints: &'a Hints) -> Ask<'a> {
    Ask {
        request_id: "req_1",
        subject: Subject {
            key_id: "key_1",
            tenant: &w.tenant,
            channel: &w.channel,
            product: &w.product,
            may_declare: &[],
        },
        what,
        features: crate::stateless(),
        hints,
        run_id: None,
        model_step: false,
        at_ms: AT,
    }
}

fn chat() -> What<'static> {
    What::Call {
        route: Route::ChatCompletions,
        model: "gpt-4o",
    }
}

fn host_ids(p: &Policy, set: treaty_contracts::HostSet) -> Vec<String> {
    set.iter()
        .map(|i| p.config().hosts[i].id().to_string())
        .collect()
}

#[test]
fn a_stateless_call_is_placed_on_azure_only_and_recorded_with_every_verdict() {
    let p = example(|_| {});
    let w = who("acme", "aws-marketplace", "api");
    let hints = Hints::default();
    let a = ask(&w, chat(), &hints);
    let d = p.decide(&a).unwrap();
    assert_eq!(d.class, WorkloadClass::StatelessApi);
    assert!(d.refusal.is_none());
    let allowed = host_ids(&p, d.allowed);
    assert!(!allowed.is_empty());
    assert!(
        allowed.iter().all(|h| h.starts_with("azure-")),
        "{allowed:?}"
    );
    let first = d.allowed.iter().next().unwrap();
    let r = d.record(
        &p,
        &a,
        Picks {
            chosen: Some(first),
            shadows: &[],
        },
    );
    assert_eq!(r.reading.as_deref(), Some("reading-openai"));
    assert_eq!(r.hosts.len(), p.config().hosts.len());
    let bedrock = r
        .hosts
        .iter()
        .find(|h| h.host == "bedrock-useast1")
        .unwrap();
    assert!(!bedrock.allowed);
    assert!(bedrock.clauses.iter().any(|c| c == "C1"), "{bedrock:?}");
    assert_eq!(r.chosen.as_deref(), Some(allowed[0].as_str()));
    assert_eq!(r.instance.as_deref(), Some("treaty-azure-eastus"));
    assert!(r.operation.is_none() && r.shadow.is_empty() && r.refused.is_none());
}

#[test]
fn a_channel_that_may_not_sell_frontier_is_refused_naming_c4() {
    let p = example(|_| {});
    let w = who("acme", "azure-marketplace", "frontier");
    let hints = Hints::default();
    let d = p.decide(&ask(&w, chat(), &hints)).unwrap();
    let refusal = d.refusal.expect("refused");
    assert_eq!(refusal.kind, RefusalKind::NotAdmitted);
    assert_eq!(refusal.clause_list(), "C4");
    assert!(d.allowed.is_empty());
}

#[test]
fn holding_frontier_state_on_an_aws_instance_is_refused_by_c2_and_recorded() {
    let p = example(|c| {
        c.instance.id = "treaty-aws".into();
        c.instance.cloud = "aws".into();
    });
    let w = who("acme", "aws-marketplace", "frontier");
    let hints = Hints::default();
    let mut a = ask(
        &w,
        What::State {
            op: StateOp::AgentUpdate,
            model: "gpt-4o",
        },
        &hints,
    );
    a.features = crate::stored();
    a.run_id = Some("agent_1");
    let d = p.decide(&a).unwrap();
    assert_eq!(d.class, WorkloadClass::StatefulAgent);
    let refusal = d.refusal.clone().expect("refused");
    assert_eq!(refusal.kind, RefusalKind::HoldRefused);
    assert_eq!(refusal.clause_list(), "C2");
    assert!(
        refusal.message.contains("agents.update"),
        "{}",
        refusal.message
    );
    let r = d.record(&p, &a, Picks::default());
    assert_eq!(r.operation.as_deref(), Some("agents.update"));
    let hold = r.runtime.expect("hold verdict");
    assert!(!hold.allowed);
    assert_eq!(
        (hold.instance.as_str(), hold.cloud.as_str()),
        ("treaty-aws", "aws")
    );
    assert_eq!(r.refused.as_deref(), Some("contract_refused"));
}

#[test]
fn shadow_readings_are_decided_beside_the_one_in_force() {
    let p = example(|c| {
        c.contracts.as_mut().unwrap().shadow =
            vec!["reading-aws".into(), "reading-microsoft".into()];
    });
    let w = who("acme", "aws-marketplace", "frontier");
    let hints = Hints::default();
    let a = ask(&w, chat(), &hints);
    let d = p.decide(&a).unwrap();
    // In force (reading-openai): a Frontier model call is stateless_api,
    // Azure only.
    assert_eq!(d.class, WorkloadClass::StatelessApi);
    assert!(
        host_ids(&p, d.allowed)
            .iter()
            .all(|h| h.starts_with("azure-"))
    );
    assert_eq!(d.shadows.len(), 2);
    // reading-aws: Frontier is a non-API product, hosted anywhere (C5).
    let aws = &d.shadows[0];
    assert_eq!(aws.reading, "reading-aws");
    assert_eq!(aws.class, WorkloadClass::NonApiProduct);
    assert!(host_ids(&p, aws.allowed).contains(&"bedrock-useast1".to_owned()));
    // reading-microsoft: AWS may not sell Frontier at all (C4m).
    let ms = &d.shadows[1];
    assert!(!ms.decision.admitted && !ms.allows());
    let bedrock = p
        .config()
        .hosts
        .iter()
        .position(|h| h.id().as_str() == "bedrock-useast1");
    let r = d.record(
        &p,
        &a,
        Picks {
            chosen: d.allowed.iter().next(),
            shadows: &[bedrock, None],
        },
    );
    assert_eq!(r.shadow.len(), 2);
    assert_eq!(r.shadow[0].chosen.as_deref(), Some("bedrock-useast1"));
    assert!(r.shadow[0].allows());
    assert!(
        r.shadow[0].clauses.iter().any(|c| c == "C5"),
        "{:?}",
        r.shadow[0]
    );
    assert!(!r.shadow[1].admitted && !r.shadow[1].allows());
    assert_eq!(r.shadow[1].clauses, vec!["C4m".to_owned()]);
}

#[test]
fn hints_the_core_cannot_honour_decide_nothing() {
    let p = example(|_| {});
    let w = who("acme", "direct", "api");
    let bad = |hints: Hints| p.decide(&ask(&w, chat(), &hints)).unwrap_err();
    assert!(matches!(
        bad(Hints {
            data_classification: Some("secret".into()),
            ..Hints::default()
        }),
        AskError::UnknownDataClassification { .. }
    ));
    assert_eq!(
        bad(Hints {
            declared_class: Some("training".into()),
            ..Hints::default()
        }),
        AskError::ClassDeclarationRefused(WorkloadClass::Training)
    );
    assert_eq!(
        bad(Hints {
            prefer_host: Some("nowhere".into()),
            ..Hints::default()
        }),
        AskError::UnknownPreferredHost("nowhere".into())
    );
}

#[test]
fn a_preferred_host_the_contracts_refuse_is_a_refusal_naming_its_clauses() {
    let p = example(|_| {});
    let w = who("acme", "direct", "api");
    let hints = Hints {
        prefer_host: Some("bedrock-useast1".into()),
        ..Hints::default()
    };
    let d = p.decide(&ask(&w, chat(), &hints)).unwrap();
    let refusal = d.refusal.expect("refused");
    assert_eq!(refusal.kind, RefusalKind::PreferredHostRefused);
    assert!(refusal.clauses.iter().any(|c| c.as_str() == "C1"));
    let hints = Hints {
        prefer_host: Some("azure-westus".into()),
        ..Hints::default()
    };
    let d = p.decide(&ask(&w, chat(), &hints)).unwrap();
    assert_eq!(host_ids(&p, d.allowed), vec!["azure-westus".to_owned()]);
}

#[test]
fn tool_use_is_decided_and_recorded_by_the_same_builder() {
    let p = example(|_| {});
    let w = who("acme", "aws-marketplace", "frontier");
    let hints = Hints::default();
    let mut a = ask(
        &w,
        What::Tool {
            tool: ToolRef {
                kind: "webhook",
                connector: "create_ticket",
                name: "create_ticket",
            },
            call_id: "call_1",
            model: "gpt-4o",
        },
        &hints,
    );
    a.request_id = "run_1.tool.call_1";
    a.run_id = Some("run_1");
    let d = p.decide(&a).unwrap();
    assert_eq!(d.class, WorkloadClass::StatefulAgent);
    let r = d.record(&p, &a, Picks::default());
    let tool = r.tool.expect("tool verdict");
    assert_eq!(tool.call_id, "call_1");
    assert_eq!(tool.allowed, d.refusal.is_none());
    assert!(r.hosts.is_empty());
    assert_eq!(r.classified_by, "tool_call");
}

/// Recorded Frontier traffic replayed under reading-openai and
/// reading-aws, as `treaty contracts simulate` does: what separates the
/// readings is named per group.
#[test]
fn simulate_names_c1_and_c3_against_c5_and_c2_against_c2a() {
    use treaty_ledger::{ClauseCount, Simulation};
    let on_aws = |reading: &'static str| {
        move |c: &mut Config| {
            c.instance.id = "treaty-aws".into();
            c.instance.cloud = "aws".into();
            c.contracts.as_mut().unwrap().reading = reading.into();
        }
    };
    let openai = example(on_aws("reading-openai"));
    let aws = example(on_aws("reading-aws"));
    let hints = Hints::default();
    let mut records = Vec::new();
    let mut record = |w: &Who, edit: &dyn Fn(&mut Ask<'_>), what: What<'_>| {
        let mut a = ask(w, what, &hints);
        edit(&mut a);
        let d = openai.decide(&a).unwrap();
        let chosen = d.allowed.iter().next();
        records.push(d.record(
            &openai,
            &a,
            Picks {
                chosen,
                shadows: &[],
            },
        ));
    };
    // A model step of a Frontier run sold through AWS Marketplace.
    let marketplace = who("acme", "aws-marketplace", "frontier");
    record(
        &marketplace,
        &|a| {
            a.model_step = true;
            a.run_id = Some("run_1");
        },
        chat(),
    );
    // A Frontier call straight from acme: first party, so C3 does not
    // reach it; C1 does.
    record(&who("acme", "direct", "frontier"), &|_| {}, chat());
    // A Frontier agent created on this AWS instance: C2 refuses it.
    record(
        &marketplace,
        &|a| {
            a.features = crate::stored();
            a.run_id = Some("agent_1");
        },
        What::State {
            op: StateOp::AgentCreate,
            model: "gpt-4o",
        },
    );
    // An API call: the readings agree.
    record(&who("acme", "aws-marketplace", "api"), &|_| {}, chat());

    let mut sim = Simulation::between(
        crate::reading_clauses(&openai),
        crate::reading_clauses(&aws),
    );
    for r in &records {
        sim.add(r, &crate::redecide(&openai, r), &crate::redecide(&aws, r));
    }
    let report = sim.finish();
    let group = |channel: &str, product: &str, class: &str| {
        report
            .by_group
            .iter()
            .find(|g| g.channel == channel && g.product == product && g.class == class)
            .unwrap_or_else(|| panic!("{channel} {product} {class}: {:#?}", report.by_group))
    };
    let ids = |c: &[ClauseCount]| -> Vec<String> { c.iter().map(|c| c.clause.clone()).collect() };

    // The model step: C1 and C3 stop applying, C5 starts; the rule that
    // classes it changes; it moves to Bedrock (P1 prefers AWS once C5
    // allows it).
    let step = group("aws-marketplace", "frontier", "stateless_api");
    assert_eq!(ids(&step.stop_applying), ["C1", "C3"], "{step:#?}");
    assert_eq!(ids(&step.start_applying), ["C5"], "{step:#?}");
    let rule = &step.rules[0];
    assert_eq!(
        (
            rule.from_class.as_str(),
            rule.to_rule.as_str(),
            rule.to_class.as_str()
        ),
        (
            "stateless_api",
            "aws-frontier-stateless-routes",
            "non_api_product"
        )
    );
    assert_eq!(step.impact.moved, 1);
    assert_eq!(step.moves[0].to, "bedrock-useast1");
    // The direct call: C1 only.
    let direct = group("direct", "frontier", "stateless_api");
    assert_eq!(ids(&direct.stop_applying), ["C1"], "{direct:#?}");
    assert_eq!(ids(&direct.start_applying), ["C5"], "{direct:#?}");
    // The agent on AWS: C2 stops applying, C2a takes its place, and the
    // agent could be held.
    let agent = group("aws-marketplace", "frontier", "stateful_agent");
    assert_eq!(ids(&agent.stop_applying), ["C2"], "{agent:#?}");
    assert!(
        ids(&agent.start_applying).contains(&"C2a".to_owned()),
        "{agent:#?}"
    );
    assert_eq!(agent.impact.became_admitted, 1);
    assert!(agent.rules.is_empty());
    // The API call: nothing separates the readings.
    assert!(!group("aws-marketplace", "api", "stateless_api").separated());
    // Per clause, in total.
    let clause = |id: &str| report.by_clause.iter().find(|c| c.clause == id).unwrap();
    assert_eq!((clause("C1").stopped, clause("C3").stopped), (2, 1));
    assert_eq!(
        (
            clause("C5").started,
            clause("C2").stopped,
            clause("C2a").started
        ),
        (2, 1, 1)
    );
}
