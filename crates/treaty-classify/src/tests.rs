use proptest::prelude::*;
use treaty_domain::{ProductKind, WorkloadClass as W};

use super::*;

fn input(route: &str, product: &str, kind: ProductKind) -> Input<'static> {
    Input {
        route: Box::leak(route.to_owned().into_boxed_str()),
        product: Box::leak(product.to_owned().into_boxed_str()),
        product_kind: kind,
        features: Features::default(),
        declared: None,
        model_step: false,
    }
}

fn store(store: Option<bool>) -> Features {
    Features {
        store,
        ..Features::default()
    }
}

#[test]
fn defaults_follow_the_scenario() {
    let c = Classifier::defaults();
    assert_eq!(c.rule_ids().count(), 8);
    let api = ProductKind::Api;
    let cases: Vec<(Input<'static>, W, &str)> = vec![
        (
            input("/v1/chat/completions", "api", api),
            W::StatelessApi,
            "stateless-api",
        ),
        (
            input("/v1/embeddings", "api", api),
            W::Embeddings,
            "embeddings-route",
        ),
        (
            input("/v1/fine_tuning/jobs", "api", api),
            W::FineTune,
            "fine-tuning-route",
        ),
        (
            input("/v1/fine_tuning/jobs/ftjob-1/cancel", "api", api),
            W::FineTune,
            "fine-tuning-route",
        ),
        (input("/v1/batches", "api", api), W::Batch, "batch-route"),
        (
            input("/v1/chat/completions", "chat", ProductKind::NonApi),
            W::NonApiProduct,
            "non-api-product",
        ),
        (
            input("/v1/embeddings", "chat", ProductKind::NonApi),
            W::NonApiProduct,
            "non-api-product",
        ),
        (
            input("/v1/agents/a1/runs", "frontier", ProductKind::FirstParty),
            W::StatefulAgent,
            "agent-runtime",
        ),
        // Responses: store defaults to true, so absent store is stateful.
        (
            input("/v1/responses", "frontier", ProductKind::FirstParty),
            W::StatefulAgent,
            "responses-stateful",
        ),
        (
            Input {
                features: store(Some(false)),
                ..input("/v1/responses", "api", api)
            },
            W::StatelessApi,
            "stateless-api",
        ),
        (
            Input {
                features: Features {
                    store: Some(false),
                    previous_response_id: true,
                    conversation: false,
                },
                ..input("/v1/responses", "api", api)
            },
            W::StatefulAgent,
            "responses-stateful",
        ),
        (
            Input {
                features: Features {
                    store: Some(false),
                    previous_response_id: false,
                    conversation: true,
                },
                ..input("/v1/responses", "api", api)
            },
            W::StatefulAgent,
            "responses-stateful",
        ),
        // A model step of a run is a stateless call, inheriting the product.
        (
            Input {
                model_step: true,
                ..input("/v1/chat/completions", "frontier", ProductKind::FirstParty)
            },
            W::StatelessApi,
            "stateless-api",
        ),
        // `store` on chat completions is not agent state.
        (
            Input {
                features: store(Some(true)),
                ..input("/v1/chat/completions", "api", api)
            },
            W::StatelessApi,
            "stateless-api",
        ),
        // Training is reached only by declaration.
        (
            Input {
                declared: Some(W::Training),
                ..input("/v1/chat/completions", "api", api)
            },
            W::Training,
            "declared",
        ),
    ];
    for (i, expected, rule) in cases {
        let got = c.classify(&i);
        assert_eq!((got.class, got.rule), (expected, rule), "{i:?}");
    }
}

#[test]
fn reading_aws_makes_frontier_stateless_calls_non_api() {
    let text = include_str!("../../../examples/frontier/contracts/reading-aws/classification.toml");
    let c = Classifier::from_toml(text).unwrap();
    let frontier = ProductKind::FirstParty;
    let step = Input {
        model_step: true,
        ..input("/v1/chat/completions", "frontier", frontier)
    };
    assert_eq!(c.classify(&step).class, W::NonApiProduct);
    assert_eq!(c.classify(&step).rule, "aws-frontier-stateless-routes");
    let stateless = Input {
        features: store(Some(false)),
        ..input("/v1/responses", "frontier", frontier)
    };
    assert_eq!(
        c.classify(&stateless).rule,
        "aws-frontier-stateless-responses"
    );
    // The runtime itself is still stateful, and other products are unchanged.
    let runtime = input("/v1/responses", "frontier", frontier);
    assert_eq!(c.classify(&runtime).class, W::StatefulAgent);
    let api = input("/v1/chat/completions", "api", ProductKind::Api);
    assert_eq!(c.classify(&api).class, W::StatelessApi);
}

#[test]
fn bad_rules_are_refused_with_their_position() {
    let err =
        Classifier::from_toml("[[rules]]\nid = \"x\"\nclass = \"stateles_api\"\n").unwrap_err();
    assert!(err.to_string().contains("unknown class"), "{err}");
    let err = Classifier::from_toml("[[rules]]\nid = \"x\"\nclass = \"declared\"\n").unwrap_err();
    assert!(err.to_string().contains("declared = true"), "{err}");
    let err = Classifier::from_toml(
        "[[rules]]\nid = \"x\"\nclass = \"batch\"\n[[rules]]\nid = \"x\"\nclass = \"batch\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
    let err =
        Classifier::from_toml("[[rules]]\nid = \"x\"\nroute = [\"/v1\"]\nclass = \"batch\"\n")
            .unwrap_err();
    assert!(err.to_string().contains("route"), "{err}");
}

#[test]
fn no_matching_rule_is_the_most_restricted_class() {
    let c = Classifier::from_toml(
        "[[rules]]\nid = \"only-batches\"\nroutes = [\"/v1/batches\"]\nclass = \"batch\"\n",
    )
    .unwrap();
    let got = c.classify(&input("/v1/chat/completions", "api", ProductKind::Api));
    assert_eq!((got.class, got.rule), (W::StatelessApi, FALLBACK_RULE));
}

proptest! {
    /// A client cannot reach `training` (or any declared class) without a
    /// declaration, whatever the route, product or body.
    #[test]
    fn undeclared_requests_never_get_training(
        route in prop::sample::select(vec!["/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/batches", "/v1/fine_tuning/jobs", "/x"]),
        kind in prop::sample::select(vec![ProductKind::Api, ProductKind::FirstParty, ProductKind::NonApi]),
        st in prop::option::of(any::<bool>()), prev in any::<bool>(), conv in any::<bool>(), step in any::<bool>(),
    ) {
        let c = Classifier::defaults();
        let i = Input {
            route, product: "p", product_kind: kind,
            features: Features { store: st, previous_response_id: prev, conversation: conv },
            declared: None, model_step: step,
        };
        prop_assert_ne!(c.classify(&i).class, W::Training);
    }
}
