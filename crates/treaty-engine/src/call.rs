//! The one model-call path.
//!
//! Every model call Treaty makes, a client's chat completion or embedding,
//! a stateless Responses call, or a model step of a stored response or a
//! run, passes [`Engine::call`], which owns the whole sequence once:
//!
//! 1. model access (the key and its product may use the model: 404 if not);
//! 2. the decision ([`treaty_policy`]) and the router's plan among the
//!    allowed hosts only;
//! 3. the decision record, appended through the one builder; with strict
//!    durability it is committed before any host is contacted (503
//!    `ledger_unavailable` and no host otherwise); a contract refusal waits
//!    for its record in either mode, then answers 403 naming the clauses;
//! 4. budgets and rate limits ([`crate::admission`]): the call's upper
//!    bound is reserved (429 `insufficient_quota` or
//!    `rate_limit_exceeded` otherwise, recorded as the outcome);
//! 5. dispatch along the plan ([`crate::dispatch`]), skipping hosts at
//!    their own quota;
//! 6. cost and spend against the host's commitment, and the reservation
//!    settled with the real usage and cost;
//! 7. the durability gate (batched mode): a full answer is returned only
//!    once its decision is durable; a stream ends with `[DONE]` only then
//!    ([`crate::stream::CallStream`]);
//! 8. the outcome record (with the request's metrics and log line).
//!
//! **When the gate fails after the host answered** (batched mode: the
//! decision's commit fails while the host was working): the answer is
//! withheld, because Treaty never delivers an answer whose decision is
//! not durable. A full answer becomes a 503 `ledger_unavailable`; a
//! stream ends with that error event instead of `[DONE]`. The host did
//! serve and its cost is real, so the spend is counted against the host's
//! commitment, and the outcome record names the host, the usage, the cost
//! and `error: "ledger_unavailable"` (status 503 for a full answer, 200 for
//! a stream whose headers had gone). The outcome is appended like every
//! outcome; if the ledger is still failing it is lost with the decision,
//! and the writer logs it. In strict mode the gate cannot fail after the
//! answer: the decision was committed before the host was called.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use treaty_classify::Features;
use treaty_domain::{Host, RequestContext, Route, WorkloadClass};
use treaty_keys::VerifiedKey;
use treaty_ledger::{Durability, Entry};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest, Usage};
use treaty_policy::{Ask, Picks, What};
use treaty_providers::{ChatReply, ChunkStream, StreamEvent, UpstreamError};
use treaty_router::{HostMask, Plan};

use crate::caller::Caller;
use crate::dispatch::dispatch;
use crate::engine::Engine;
use crate::error::Error;
use crate::outcome::Outcome;
use crate::stream::CallStream;

/// The request a model call sends.
#[derive(Debug, Clone, Copy)]
pub enum ModelRequest<'a> {
    Chat(&'a ChatCompletionRequest),
    Embeddings(&'a EmbeddingsRequest),
}

impl ModelRequest<'_> {
    pub fn model(&self) -> &str {
        match self {
            ModelRequest::Chat(r) => &r.model,
            ModelRequest::Embeddings(r) => &r.model,
        }
    }
}

/// One model call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub caller: &'a Caller,
    /// The ledger's id for the call's decision: the caller's request id,
    /// or for a model step `{run or response id}.{step}`.
    pub request_id: &'a str,
    /// The route the call is classified on.
    pub route: Route,
    pub features: Features,
    /// For a model step of the runtime: the run or stored response it is
    /// made for.
    pub run_id: Option<&'a str>,
    pub request: ModelRequest<'a>,
}

/// Where a call ran and why it could: what the placement headers say.
#[derive(Debug, Clone)]
pub struct Placed {
    pub host: Arc<Host>,
    pub host_index: usize,
    pub class: WorkloadClass,
    /// The clauses behind the serving host's verdict, comma-separated.
    pub clauses: String,
    /// The caller's `x-ratelimit-*` numbers after this call was admitted.
    pub rate: treaty_limits::RateHeaders,
}

/// A full answer: the host's body as it sent it, its decision durable.
#[derive(Debug)]
pub struct Full {
    pub body: Bytes,
    pub usage: Option<Usage>,
    pub placed: Placed,
    /// The signed placement receipt (`x-treaty-receipt`); `None` only if
    /// signing failed (logged).
    pub receipt: Option<String>,
}

/// What a served call holds until it is settled: its reservation against
/// the caller's budgets and limits, and its share of the host's quota.
#[derive(Debug)]
pub(crate) struct Reserved {
    pub(crate) call: treaty_limits::Permit,
    pub(crate) host: treaty_limits::HostPermit,
}

/// What a receipt is made of: the decision record as appended, and its
/// sequence number once durable.
#[derive(Debug)]
pub(crate) struct Evidence {
    pub(crate) record: treaty_ledger::DecisionRecord,
    pub(crate) seq: Option<u64>,
}

/// What a model call gives back.
#[derive(Debug)]
pub enum Answer {
    Full(Full),
    /// A stream whose first event has arrived (failover was possible
    /// until then). Boxed: it carries the stream's whole state, and is
    /// boxed again by any HTTP body anyway.
    Stream(Box<CallStream>),
}

/// A host's reply as dispatch sees it.
enum Ready {
    Full {
        body: Bytes,
        usage: Option<Usage>,
    },
    Stream {
        first: StreamEvent,
        rest: ChunkStream,
    },
}

impl Engine {
    /// Checks that the key and its product may use `model` and that a host
    /// serves it. Unknown and forbidden models get the same 404, as OpenAI
    /// answers, so model names do not leak.
    pub fn check_model(&self, key: &VerifiedKey, model: &str) -> Result<(), Error> {
        let allowed = self.router.serves(model)
            && key.allows_model(model)
            && self
                .config
                .product(key.product.as_str())
                .is_some_and(|p| p.allows_model(model));
        if allowed {
            Ok(())
        } else {
            Err(Error::model_not_found(model))
        }
    }

    /// Makes one model call: decided, recorded, routed among the allowed
    /// hosts only, accounted. See the module docs for the sequence.
    pub async fn call(self: &Arc<Self>, call: Call<'_>) -> Result<Answer, Error> {
        let started = Instant::now();
        let model = call.request.model();
        let key = &call.caller.key;
        self.check_model(key, model)?;
        let mut ctx = RequestContext {
            request_id: call.request_id.to_owned(),
            key_id: key.id.clone(),
            tenant: key.tenant.clone(),
            channel: key.channel.clone(),
            product: key.product.clone(),
            route: call.route,
            model: model.to_owned(),
            workload_class: None,
            classified_by: None,
        };
        let ask = Ask {
            request_id: call.request_id,
            subject: call.caller.subject(),
            what: What::Call {
                route: call.route,
                model,
            },
            features: call.features,
            hints: &call.caller.hints,
            run_id: call.run_id,
            model_step: call.run_id.is_some(),
            at_ms: treaty_domain::now_ms(),
        };
        let decided = self.policy.decide(&ask)?;
        self.count_decision(&decided);
        if treaty_telemetry::span::enabled() {
            let clauses: Vec<&str> = match &decided.refusal {
                Some(r) => r.clauses.iter().map(|c| c.as_str()).collect(),
                None => Vec::new(),
            };
            treaty_telemetry::span::record_treaty(
                &tracing::Span::current(),
                &treaty_telemetry::span::TreatyAttrs {
                    class: Some(decided.class.as_str()),
                    reading: self.policy.reading(),
                    clauses: &clauses,
                    ..Default::default()
                },
            );
        }
        ctx.workload_class = Some(decided.class);
        ctx.classified_by = Some(decided.rule.to_owned());
        let plan = match decided.refusal {
            Some(_) => Plan {
                hosts: Vec::new(),
                candidates: HostMask::EMPTY,
                down: HostMask::EMPTY,
            },
            None => {
                let mut plan = self.router.plan(
                    model,
                    HostMask(decided.allowed.bits()),
                    HostMask(decided.preferred.bits()),
                );
                // A host at its own quota is skipped like an open breaker.
                plan.hosts.retain(|&i| self.limits.host_has_capacity(i));
                plan
            }
        };
        let shadow_picks: Vec<Option<usize>> = decided
            .shadows
            .iter()
            .map(|s| {
                self.router.pick(
                    model,
                    HostMask(s.allowed.bits()),
                    HostMask(s.preferred.bits()),
                )
            })
            .collect();
        let record = decided.record(
            &self.policy,
            &ask,
            Picks {
                chosen: plan.hosts.first().copied(),
                shadows: &shadow_picks,
            },
        );
        // Kept for the receipt, which hashes the record as the ledger
        // stores it.
        let mut evidence = Evidence {
            record: record.clone(),
            seq: None,
        };
        let appended = self.ledger.append(Entry::Decision(record));
        if let Some(refusal) = &decided.refusal {
            // The refusal is an answer too: it leaves once its decision is
            // durable, whatever the mode, with a receipt the refused party
            // can show.
            evidence.seq = Some(appended.await.map_err(Error::ledger)?);
            let mut err = Error::from(refusal);
            err.receipt = self.receipt(&evidence, None).map(String::into_boxed_str);
            self.record_outcome(&ctx, &Outcome::error(&err, started.elapsed()));
            return Err(err);
        }
        let estimate = crate::admission::estimate(
            call.request,
            self.config
                .hosts
                .iter()
                .enumerate()
                .filter(|(i, _)| decided.allowed.contains(*i))
                .map(|(_, h)| &*h.host),
        );
        let permit = match self
            .limits
            .admit(&call.caller.limits_subject(), estimate)
            .await
        {
            Ok(permit) => permit,
            Err(refusal) => {
                self.count_limited(&refusal);
                let err = Error::from(refusal);
                self.record_outcome(&ctx, &Outcome::error(&err, started.elapsed()));
                return Err(err);
            }
        };
        let gate = if self.ledger.durability() == Durability::Strict {
            evidence.seq = Some(appended.await.map_err(Error::ledger)?);
            None
        } else {
            Some(appended)
        };

        let served = match self.send(&ctx, &plan, call.request, estimate.tokens).await {
            Ok(served) => served,
            Err(failed) => {
                self.record_outcome(&ctx, &Outcome::failed(&failed, started.elapsed()));
                return Err(failed.error);
            }
        };
        let placed = Placed {
            clauses: decided.clauses_for(served.host_index),
            host: served.host.clone(),
            host_index: served.host_index,
            class: decided.class,
            rate: permit.headers(),
        };
        match served.value {
            Ready::Full { body, usage } => {
                let reserved = Reserved {
                    call: permit,
                    host: served.quota,
                };
                let cost = self.spend(&ctx, &placed, usage, Some(reserved), started, None);
                let mut outcome = Outcome {
                    status: 200,
                    served_by: Some(placed.host.id.clone()),
                    attempts: served.attempts,
                    usage,
                    cost,
                    latency: started.elapsed(),
                    client_cancelled: false,
                    error: None,
                };
                if let Some(gate) = gate {
                    match gate.await {
                        Ok(seq) => evidence.seq = Some(seq),
                        Err(e) => {
                            let err = Error::ledger_withheld(e);
                            outcome.status = err.status();
                            outcome.error = Some(err.code.as_str().to_owned());
                            outcome.latency = started.elapsed();
                            self.record_outcome(&ctx, &outcome);
                            return Err(err);
                        }
                    }
                }
                self.record_outcome(&ctx, &outcome);
                let receipt = self.receipt(&evidence, Some(placed.host.id.as_str()));
                Ok(Answer::Full(Full {
                    body,
                    usage,
                    placed,
                    receipt,
                }))
            }
            Ready::Stream { first, rest } => Ok(Answer::Stream(Box::new(CallStream::new(
                self.clone(),
                ctx,
                placed,
                first,
                rest,
                gate,
                evidence,
                Reserved {
                    call: permit,
                    host: served.quota,
                },
                served.attempts,
                started,
            )))),
        }
    }

    /// The cost of a served call, counted against its host's commitment
    /// and settled against the caller's budgets and token limits. A host
    /// that reported no usage is charged the reserved estimate: the call
    /// was served, and its cost cannot be shown smaller.
    pub(crate) fn spend(
        &self,
        ctx: &RequestContext,
        placed: &Placed,
        usage: Option<Usage>,
        reserved: Option<Reserved>,
        started: Instant,
        first_token: Option<std::time::Duration>,
    ) -> Option<f64> {
        let cost = usage.and_then(|u| {
            let deployment = placed.host.deployment(&ctx.model)?;
            Some(deployment.cost(u.prompt_tokens, u.completion_tokens))
        });
        if let Some(cost) = cost {
            self.router.spend(placed.host_index, cost);
            self.metrics
                .spend(ctx.tenant.as_str(), crate::admission::micros(cost));
        }
        if let Some(Reserved { call, host }) = reserved {
            match (usage, cost) {
                (Some(u), Some(cost)) => {
                    let tokens = u.prompt_tokens + u.completion_tokens;
                    call.settle(
                        treaty_limits::Usage { tokens },
                        crate::admission::micros(cost),
                    );
                    host.settle(tokens);
                }
                _ => {
                    call.settle_as_estimated();
                    host.settle_as_estimated();
                }
            }
        }
        self.metrics.model_call(&treaty_telemetry::ModelCall {
            operation: match ctx.route {
                treaty_domain::Route::Embeddings => "embeddings",
                _ => "chat",
            },
            provider: treaty_telemetry::span::provider_name(placed.host.provider.as_str()),
            request_model: &ctx.model,
            input_tokens: usage.map(|u| u.prompt_tokens),
            output_tokens: usage.map(|u| u.completion_tokens),
            seconds: started.elapsed().as_secs_f64(),
            first_token_seconds: first_token.map(|d| d.as_secs_f64()),
            error_type: None,
        });
        cost
    }

    /// The signed placement receipt of a durable decision, served by
    /// `served_by` (`None`: refused). One Ed25519 signature with the log's
    /// key; a failure to sign is logged and the answer goes without one.
    pub(crate) fn receipt(&self, evidence: &Evidence, served_by: Option<&str>) -> Option<String> {
        let seq = evidence.seq?;
        let signer = self.ledger.signer();
        let signed = treaty_ledger::Receipt::for_decision(
            &evidence.record,
            seq,
            served_by,
            signer.verifier(),
            treaty_domain::now_ms(),
        )
        .and_then(|r| r.sign(signer.as_ref()));
        match signed {
            Ok(wire) => Some(wire),
            Err(e) => {
                tracing::error!(error = %e, request_id = %evidence.record.request_id, "cannot sign a placement receipt");
                None
            }
        }
    }

    /// Counts a decision in the metrics: admitted or refused, by clause.
    pub(crate) fn count_decision(&self, decided: &treaty_policy::Decided<'_>) {
        match &decided.refusal {
            None => self.metrics.decision(decided.class.as_str(), true, &[]),
            Some(r) => {
                let clauses: Vec<&str> = r.clauses.iter().map(|c| c.as_str()).collect();
                self.metrics
                    .decision(decided.class.as_str(), false, &clauses);
            }
        }
    }

    fn count_limited(&self, refusal: &treaty_limits::Refusal) {
        use treaty_limits::Refusal as R;
        match refusal {
            R::Budget(_) => self.metrics.rate_limited("budget", "budget"),
            R::RateLimited(r) => self.metrics.rate_limited(r.scope.as_str(), r.kind.as_str()),
            R::Unavailable => {}
        }
    }

    /// Sends the request along its plan: a full reply, or a stream whose
    /// first event has arrived (so failover stays possible until then).
    async fn send(
        &self,
        ctx: &RequestContext,
        plan: &Plan,
        request: ModelRequest<'_>,
        tokens: u32,
    ) -> Result<crate::dispatch::Served<Ready>, crate::dispatch::Failed> {
        dispatch(self, ctx, plan, tokens, |provider, host, call| async move {
            let Some(deployment) = host.deployment(request.model()) else {
                return Err(UpstreamError::Protocol("host lost its deployment".into()));
            };
            match request {
                ModelRequest::Embeddings(req) => {
                    let reply = provider.embeddings(req, deployment, &call).await?;
                    Ok(Ready::Full {
                        body: reply.body,
                        usage: reply.usage,
                    })
                }
                ModelRequest::Chat(req) => match provider.chat(req, deployment, &call).await? {
                    ChatReply::Full { body, usage } => Ok(Ready::Full { body, usage }),
                    ChatReply::Stream(mut rest) => {
                        let wait = call.first_byte_timeout.min(
                            call.deadline
                                .saturating_duration_since(tokio::time::Instant::now()),
                        );
                        match tokio::time::timeout(wait, rest.next()).await {
                            Ok(Some(Ok(first))) => Ok(Ready::Stream { first, rest }),
                            Ok(Some(Err(e))) => Err(e),
                            Ok(None) => Err(UpstreamError::Truncated),
                            Err(_) => Err(UpstreamError::Timeout {
                                phase: treaty_providers::TimeoutPhase::FirstByte,
                            }),
                        }
                    }
                },
            }
        })
        .await
    }
}
