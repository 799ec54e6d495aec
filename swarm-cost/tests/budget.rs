//! Budgets: reservations race on the bus's atomic counters and never
//! overshoot; a reached budget refuses (`>=`); commits settle the actual cost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use swarmbus_core::bus::Bus;
use swarmbus_core::keys::{SessionId, TierName, WorkerId};
use swarmbus_cost::{
    Accountant, BudgetLimits, BudgetScope, Budgets, Call, CostError, Money, PriceTable, Tiers,
    Usage,
};
use swarmbus_memory::MemoryBus;

fn usd(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn session(name: &str) -> SessionId {
    SessionId::new(name).unwrap()
}

fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_racing_tasks_on_a_budget_for_37_run_exactly_37() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    // The Haiku call costs $0.00555; the budget fits exactly 37 of them.
    let estimate = usd("0.00555");
    let limit = Money::from_picos(estimate.picos() * 37);
    assert_eq!(limit.to_string(), "0.20535");
    let budgets = Arc::new(Budgets::new(
        Arc::clone(&bus),
        BudgetLimits::unlimited().per_session(limit),
    ));
    let ran = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (budgets, ran, refused, start) = (
            Arc::clone(&budgets),
            Arc::clone(&ran),
            Arc::clone(&refused),
            Arc::clone(&start),
        );
        tasks.push(tokio::spawn(async move {
            let w = worker(&format!("haiku-{i}"));
            let s = session("instance-11");
            start.wait().await;
            match budgets.reserve(Some(&w), Some(&s), estimate).await {
                Ok(reservation) => {
                    ran.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    budgets.commit(reservation, estimate).await.unwrap();
                }
                Err(e) => {
                    assert!(e.is_budget_refusal(), "{e}");
                    refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 37);
    assert_eq!(refused.load(Ordering::SeqCst), 63);
    let spent = budgets
        .spent(&BudgetScope::Session(session("instance-11")))
        .await
        .unwrap();
    assert_eq!(spent, limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_accountants_on_one_bus_share_the_global_budget() {
    // Two accountants (as two processes would be) on the same bus.
    let bus = Arc::new(MemoryBus::new());
    let table = Arc::new(PriceTable::built_in().unwrap());
    let limits = BudgetLimits::unlimited().global(usd("0.20535"));
    let make = || {
        Accountant::new(
            Arc::clone(&bus),
            Arc::clone(&table),
            Tiers::default(),
            limits,
        )
    };
    let accountants = [Arc::new(make().unwrap()), Arc::new(make().unwrap())];
    let usage = Usage::new(1_000, 500)
        .with_cache_read(8_000)
        .with_cache_write(1_000, 0);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let accountant = Arc::clone(&accountants[i % 2]);
        tasks.push(tokio::spawn(async move {
            let call = Call::new(TierName::new("haiku").unwrap(), "claude-haiku-4-5");
            match accountant.reserve(call, &usage).await {
                Ok(pending) => {
                    accountant.settle(pending, usage).await.unwrap();
                    true
                }
                Err(e) => {
                    assert!(matches!(e, CostError::BudgetExhausted { .. }), "{e}");
                    false
                }
            }
        }));
    }
    let mut ran = 0;
    for t in tasks {
        ran += usize::from(t.await.unwrap());
    }
    assert_eq!(ran, 37);
    let report = accountants[0]
        .report(&swarmbus_cost::ReportFilter::all())
        .await
        .unwrap();
    assert_eq!(report.total.calls, 37);
    assert_eq!(report.total.usd.to_string(), "0.20535");
}

#[tokio::test]
async fn a_reached_budget_refuses_even_a_free_call() {
    let bus = Arc::new(MemoryBus::new());
    let budgets = Budgets::new(bus, BudgetLimits::unlimited().global(usd("0.01")));
    let r = budgets.reserve(None, None, usd("0.004")).await.unwrap();
    // The call cost more than estimated and took the budget over its limit.
    budgets.commit(r, usd("0.012")).await.unwrap();
    assert_eq!(
        budgets.spent(&BudgetScope::Global).await.unwrap(),
        usd("0.012")
    );
    let err = budgets.reserve(None, None, Money::ZERO).await.unwrap_err();
    match err {
        CostError::BudgetExhausted {
            scope,
            limit,
            spent,
            requested,
        } => {
            assert_eq!(scope, "global");
            assert_eq!(limit, usd("0.01"));
            assert_eq!(spent, usd("0.012"));
            assert_eq!(requested, Money::ZERO);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn exactly_at_the_limit_is_reached() {
    let bus = Arc::new(MemoryBus::new());
    let budgets = Budgets::new(bus, BudgetLimits::unlimited().global(usd("0.01")));
    let r = budgets.reserve(None, None, usd("0.01")).await.unwrap();
    budgets.commit(r, usd("0.01")).await.unwrap();
    // spent == limit: refused (>=), even for nothing.
    assert!(budgets.reserve(None, None, Money::ZERO).await.is_err());
}

#[tokio::test]
async fn an_estimate_larger_than_what_is_left_is_refused_and_holds_nothing() {
    let bus = Arc::new(MemoryBus::new());
    let limits = BudgetLimits::unlimited()
        .global(usd("1"))
        .per_session(usd("1"))
        .per_worker(usd("0.01"));
    let budgets = Budgets::new(bus, limits);
    let (w, s) = (worker("haiku-1"), session("s"));
    let err = budgets
        .reserve(Some(&w), Some(&s), usd("0.02"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("worker haiku-1"), "{err}");
    // The global and session holds taken before the worker budget refused were given back.
    assert_eq!(
        budgets.spent(&BudgetScope::Global).await.unwrap(),
        Money::ZERO
    );
    assert_eq!(
        budgets
            .spent(&BudgetScope::Session(s.clone()))
            .await
            .unwrap(),
        Money::ZERO
    );
    // Another worker is not affected by haiku-1's budget.
    let r = budgets
        .reserve(Some(&worker("haiku-2")), Some(&s), usd("0.005"))
        .await
        .unwrap();
    assert_eq!(r.scopes().count(), 3);
    budgets.release(r).await.unwrap();
    assert_eq!(
        budgets.spent(&BudgetScope::Global).await.unwrap(),
        Money::ZERO
    );
}

#[tokio::test]
async fn budgets_round_up_to_micro_dollars() {
    let bus = Arc::new(MemoryBus::new());
    let budgets = Budgets::new(bus, BudgetLimits::unlimited().global(usd("0.000003")));
    // $0.0000015 rounds up to 2 micro-dollars: one fits, the second would make 4 > 3.
    let first = budgets.reserve(None, None, usd("0.0000015")).await.unwrap();
    assert!(budgets.reserve(None, None, usd("0.0000015")).await.is_err());
    budgets.commit(first, usd("0.0000015")).await.unwrap();
    assert_eq!(
        budgets.spent(&BudgetScope::Global).await.unwrap(),
        usd("0.000002")
    );
}

#[tokio::test]
async fn an_unpriced_model_cannot_be_held_to_a_budget() {
    let bus = Arc::new(MemoryBus::new());
    let table = Arc::new(PriceTable::built_in().unwrap());
    let accountant = Accountant::new(
        Arc::clone(&bus),
        Arc::clone(&table),
        Tiers::default(),
        BudgetLimits::unlimited().global(usd("10")),
    )
    .unwrap();
    let call = Call::new(TierName::new("haiku").unwrap(), "mystery-model");
    let err = accountant
        .reserve(call.clone(), &Usage::new(10, 10))
        .await
        .unwrap_err();
    assert!(err.is_budget_refusal());
    assert!(matches!(err, CostError::Unpriced { .. }), "{err}");
    // Without a budget that applies, the call may go ahead and is recorded unpriced.
    let free = Accountant::new(bus, table, Tiers::default(), BudgetLimits::unlimited()).unwrap();
    let pending = free.reserve(call, &Usage::new(10, 10)).await.unwrap();
    let entry = free.settle(pending, Usage::new(10, 10)).await.unwrap();
    assert!(entry.cost.usd().is_none());
}

#[tokio::test]
async fn a_cancelled_call_gives_its_reservation_back() {
    let bus = Arc::new(MemoryBus::new());
    let accountant = Accountant::new(
        bus,
        Arc::new(PriceTable::built_in().unwrap()),
        Tiers::default(),
        BudgetLimits::unlimited().global(usd("0.006")),
    )
    .unwrap();
    let usage = Usage::new(1_000, 500)
        .with_cache_read(8_000)
        .with_cache_write(1_000, 0);
    let call = || Call::new(TierName::new("haiku").unwrap(), "claude-haiku-4-5");
    let pending = accountant.reserve(call(), &usage).await.unwrap();
    assert!(accountant.reserve(call(), &usage).await.is_err());
    accountant.cancel(pending).await.unwrap();
    let again = accountant.reserve(call(), &usage).await.unwrap();
    accountant.cancel(again).await.unwrap();
}

/// A MemoryBus whose counters can be made to hang (a reservation's future
/// cancelled in the middle) or to fail (a give-back that fails).
struct Flaky {
    inner: MemoryBus,
    /// `counter_try_add` on a counter whose name contains this never returns.
    hang_on: Option<&'static str>,
    /// `counter_add` fails.
    fail_add: bool,
}

impl Flaky {
    fn new() -> Self {
        Self {
            inner: MemoryBus::new(),
            hang_on: None,
            fail_add: false,
        }
    }
}

#[async_trait::async_trait]
impl swarmbus_core::bus::Counters for Flaky {
    async fn add_cost(&self, tier: &TierName, usd: f64) -> swarmbus_core::Result<f64> {
        self.inner.add_cost(tier, usd).await
    }
    async fn costs(&self, tiers: &[TierName]) -> swarmbus_core::Result<Vec<f64>> {
        self.inner.costs(tiers).await
    }
    async fn set_context_tokens(&self, tokens: u64) -> swarmbus_core::Result<()> {
        self.inner.set_context_tokens(tokens).await
    }
    async fn context_tokens(&self) -> swarmbus_core::Result<Option<u64>> {
        self.inner.context_tokens().await
    }
    async fn counter_add(
        &self,
        name: &swarmbus_core::keys::CounterName,
        delta: i64,
    ) -> swarmbus_core::Result<i64> {
        if self.fail_add {
            return Err(swarmbus_core::Error::Closed("counter_add refused"));
        }
        self.inner.counter_add(name, delta).await
    }
    async fn counters(
        &self,
        names: &[swarmbus_core::keys::CounterName],
    ) -> swarmbus_core::Result<Vec<i64>> {
        self.inner.counters(names).await
    }
    async fn counter_try_add(
        &self,
        name: &swarmbus_core::keys::CounterName,
        delta: i64,
        limit: i64,
    ) -> swarmbus_core::Result<Option<i64>> {
        if self.hang_on.is_some_and(|h| name.as_str().contains(h)) {
            std::future::pending::<()>().await;
        }
        self.inner.counter_try_add(name, delta, limit).await
    }
}

async fn settled() {
    // Give a spawned give-back the chance to run.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_reservation_dropped_without_commit_or_release_is_given_back() {
    let bus = Arc::new(MemoryBus::new());
    let budgets = Budgets::new(Arc::clone(&bus), BudgetLimits::unlimited().global(usd("1")));
    let r = budgets.reserve(None, None, usd("0.25")).await.unwrap();
    assert_eq!(
        budgets.spent(&BudgetScope::Global).await.unwrap(),
        usd("0.25")
    );
    drop(r);
    settled().await;
    assert_eq!(
        budgets.spent(&BudgetScope::Global).await.unwrap(),
        Money::ZERO
    );
}

#[tokio::test]
async fn a_reserve_cancelled_half_way_gives_back_what_it_held() {
    let mut flaky = Flaky::new();
    flaky.hang_on = Some("budget-worker");
    let budgets = Budgets::new(
        Arc::new(flaky),
        BudgetLimits::unlimited()
            .global(usd("1"))
            .per_worker(usd("1")),
    );
    let w = worker("w-cancel");
    let cancelled = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        budgets.reserve(Some(&w), None, usd("0.25")),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the reservation hangs on the worker budget"
    );
    settled().await;
    assert_eq!(
        budgets.spent(&BudgetScope::Global).await.unwrap(),
        Money::ZERO
    );
}

#[tokio::test]
async fn a_failed_give_back_does_not_hide_the_budget_exhausted_that_caused_it() {
    let mut flaky = Flaky::new();
    flaky.fail_add = true;
    let budgets = Budgets::new(
        Arc::new(flaky),
        BudgetLimits::unlimited()
            .global(usd("1"))
            .per_worker(usd("0.10")),
    );
    let w = worker("w-refused");
    let err = budgets
        .reserve(Some(&w), None, usd("0.25"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CostError::BudgetExhausted { ref scope, .. } if scope.contains("worker")),
        "{err:?}"
    );
}
