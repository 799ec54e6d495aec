//! Estimated spend (issue 19, build 2): a reservation never settled stays on
//! the books at its reserved amount, marked estimated, apart from the exact
//! spend; a settle arriving later replaces it; a settle retried books once;
//! a cancel leaves neither. Each scenario runs on MemoryBus and on a real
//! redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use swarmbus_core::Tier;
use swarmbus_core::bus::{Bus, Counters, Journal};
use swarmbus_core::keys::{CounterName, JournalName, SessionId, TierName, WorkerId};
use swarmbus_core::{Error, Retry};
use swarmbus_cost::{
    Accountant, BudgetLimits, BudgetScope, Call, Money, PriceTable, Report, ReportFilter, Tiers,
    Usage,
};
use swarmbus_memory::MemoryBus;
use swarmbus_redis::testing::{RedisServer, namespaced_bus};

/// The Haiku call: $0.00555.
fn usage() -> Usage {
    Usage::new(1_000, 500)
        .with_cache_read(8_000)
        .with_cache_write(1_000, 0)
}

/// The estimate held before the call: more than it will cost.
fn estimate() -> Usage {
    Usage::new(20_000, 4_000)
}

fn haiku() -> TierName {
    TierName::new("haiku").unwrap()
}

fn call(session: &str) -> Call {
    Call::new(haiku(), "claude-haiku-4-5-20251001")
        .role(Tier::Worker)
        .worker(WorkerId::new("w1").unwrap())
        .session(SessionId::new(session).unwrap())
}

fn accountant<B: Counters + Journal + ?Sized + 'static>(bus: Arc<B>) -> Accountant<B> {
    Accountant::new(
        bus,
        Arc::new(PriceTable::built_in().unwrap()),
        Tiers::default(),
        BudgetLimits::unlimited().per_session(Money::parse("10").unwrap()),
    )
    .unwrap()
}

async fn report<B: Counters + Journal + ?Sized + 'static>(a: &Accountant<B>) -> Report {
    a.report(&ReportFilter::all()).await.unwrap()
}

async fn cost_haiku<B: Counters + ?Sized>(bus: &B) -> f64 {
    bus.costs(&[haiku()]).await.unwrap()[0]
}

async fn session_budget<B: Counters + Journal + ?Sized + 'static>(
    a: &Accountant<B>,
    session: &str,
) -> Money {
    a.budgets()
        .spent(&BudgetScope::Session(SessionId::new(session).unwrap()))
        .await
        .unwrap()
}

/// (a) Reserved, then dropped without settle (the process died after the
/// provider answered): the report shows the reserved amount as estimated,
/// exact spend 0, and `cost:haiku` (exact only) stays 0.
async fn a_dropped_reservation_is_estimated_spend(bus: Arc<dyn Bus>) {
    let a = accountant(Arc::clone(&bus));
    let pending = a.reserve(call("s-a"), &estimate()).await.unwrap();
    let held = pending.estimate();
    assert!(held > Money::ZERO);
    drop(pending);

    // Another handle on the bus (another process) sees it.
    let r = report(&accountant(Arc::clone(&bus))).await;
    assert_eq!(r.estimated_calls, 1);
    assert_eq!(r.estimated_unpriced_calls, 0);
    assert_eq!(r.estimated_usd, held);
    assert_eq!(r.estimated_by_tier["haiku"].usd, held);
    assert_eq!(r.estimated_by_tier["haiku"].calls, 1);
    assert_eq!(r.total.calls, 0);
    assert_eq!(r.total.usd, Money::ZERO);
    assert_eq!(cost_haiku(&*bus).await, 0.0);
    let text = r.render();
    assert!(
        text.contains(&format!(
            "Estimated (unsettled): ${held} in 1 calls (reserved, not booked; not in Spend)"
        )),
        "{text}"
    );
    assert!(text.contains("Spend: $0.00 "), "{text}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["estimated_usd"], held.to_string());
    assert_eq!(json["estimated_calls"], 1);
    assert_eq!(json["estimated_by_tier"]["haiku"]["usd"], held.to_string());
    assert_eq!(json["total"]["usd"], Money::ZERO.to_string());

    // A filter on another session leaves it out.
    let other = a
        .report(&ReportFilter::all().session(SessionId::new("s-other").unwrap()))
        .await
        .unwrap();
    assert_eq!(other.estimated_calls, 0);
}

/// (b) A settle arriving later replaces the estimate with the exact price.
async fn a_later_settle_replaces_the_estimate(bus: Arc<dyn Bus>) {
    let a = accountant(Arc::clone(&bus));
    let pending = a.reserve(call("s-b"), &estimate()).await.unwrap();
    let hold = pending.hold();
    let held = pending.estimate();
    assert_eq!(session_budget(&a, "s-b").await, held);
    let before = report(&a).await;
    assert_eq!((before.estimated_calls, before.estimated_usd), (1, held));

    let entry = a.settle(pending, usage()).await.unwrap();
    assert_eq!(entry.hold, Some(hold));
    assert_eq!(entry.id, hold);
    let exact = Money::parse("0.00555").unwrap();
    assert_eq!(entry.cost.usd(), Some(exact));

    let r = report(&a).await;
    assert_eq!(r.estimated_calls, 0);
    assert_eq!(r.estimated_usd, Money::ZERO);
    assert!(r.estimated_by_tier.is_empty());
    assert_eq!(r.total.calls, 1);
    assert_eq!(r.total.usd, exact);
    assert!(!r.render().contains("Estimated"), "{}", r.render());
    assert!((cost_haiku(&*bus).await - 0.00555).abs() < 1e-12);
    assert_eq!(session_budget(&a, "s-b").await, exact);
}

/// A bus that loses the reply of its next `append_with_cost`: the write is
/// made, the caller is told it failed (a connection cut after the command).
struct LostReply {
    inner: Arc<dyn Bus>,
    lose_next: AtomicBool,
    /// Every `append_with_cost` fails, writing nothing.
    down: AtomicBool,
}

#[async_trait]
impl Counters for LostReply {
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
    async fn counter_add(&self, name: &CounterName, delta: i64) -> swarmbus_core::Result<i64> {
        self.inner.counter_add(name, delta).await
    }
    async fn counters(&self, names: &[CounterName]) -> swarmbus_core::Result<Vec<i64>> {
        self.inner.counters(names).await
    }
    async fn counter_try_add(
        &self,
        name: &CounterName,
        delta: i64,
        limit: i64,
    ) -> swarmbus_core::Result<Option<i64>> {
        self.inner.counter_try_add(name, delta, limit).await
    }
}

#[async_trait]
impl Journal for LostReply {
    async fn append(&self, journal: &JournalName, records: &[String]) -> swarmbus_core::Result<()> {
        self.inner.append(journal, records).await
    }
    async fn append_with_cost(
        &self,
        journal: &JournalName,
        records: &[String],
        tier: &TierName,
        usd: f64,
    ) -> swarmbus_core::Result<f64> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::backend(
                "test",
                "connection refused",
                Retry::After(std::time::Duration::from_secs(1)),
            ));
        }
        let total = self
            .inner
            .append_with_cost(journal, records, tier, usd)
            .await?;
        if self.lose_next.swap(false, Ordering::SeqCst) {
            return Err(Error::backend("test", "reply lost", Retry::Unknown));
        }
        Ok(total)
    }
    async fn read(
        &self,
        journal: &JournalName,
        from: u64,
        max: usize,
    ) -> swarmbus_core::Result<Vec<String>> {
        self.inner.read(journal, from, max).await
    }
    async fn journal_len(&self, journal: &JournalName) -> swarmbus_core::Result<u64> {
        self.inner.journal_len(journal).await
    }
}

/// (c) A settle retried (its first reply lost after the write, then retried
/// again) books once: one ledger entry, `cost:haiku` added once.
async fn a_settle_retried_is_booked_once(bus: Arc<dyn Bus>) {
    let flaky = Arc::new(LostReply {
        inner: Arc::clone(&bus),
        lose_next: AtomicBool::new(true),
        down: AtomicBool::new(false),
    });
    let a = accountant(Arc::clone(&flaky));
    let mut pending = a.reserve(call("s-c"), &estimate()).await.unwrap();
    let first = a.book(&mut pending, usage()).await;
    assert!(first.is_err(), "the reply was lost");
    let second = a.book(&mut pending, usage()).await.unwrap();
    let third = a.settle(pending, usage()).await.unwrap();
    assert_eq!(second, third);

    let r = report(&a).await;
    assert_eq!(r.total.calls, 1);
    assert_eq!(r.total.usd, Money::parse("0.00555").unwrap());
    assert_eq!(r.estimated_calls, 0);
    assert_eq!(a.ledger().entries().await.unwrap().entries.len(), 1);
    assert_eq!(bus.journal_len(a.ledger().journal()).await.unwrap(), 1);
    assert!((cost_haiku(&*bus).await - 0.00555).abs() < 1e-12);
    assert_eq!(
        session_budget(&a, "s-c").await,
        Money::parse("0.00555").unwrap()
    );

    // Booked twice without an error in between: once as well.
    let mut again = a.reserve(call("s-c"), &estimate()).await.unwrap();
    a.book(&mut again, usage()).await.unwrap();
    a.settle(again, usage()).await.unwrap();
    assert_eq!(report(&a).await.total.calls, 2);
    assert!((cost_haiku(&*bus).await - 0.0111).abs() < 1e-12);
}

/// The bus away when the call is booked: the call stays on the books at
/// its estimate; the booking retried once the bus is back replaces it. A
/// settle that fails for good leaves the estimate on the books and held on
/// the budget.
async fn a_failed_settle_stays_estimated(bus: Arc<dyn Bus>) {
    let flaky = Arc::new(LostReply {
        inner: Arc::clone(&bus),
        lose_next: AtomicBool::new(false),
        down: AtomicBool::new(true),
    });
    let a = accountant(Arc::clone(&flaky));
    let mut pending = a.reserve(call("s-f"), &estimate()).await.unwrap();
    let held = pending.estimate();
    assert!(a.book(&mut pending, usage()).await.is_err());
    let r = report(&a).await;
    assert_eq!((r.estimated_calls, r.estimated_usd), (1, held));
    assert_eq!(r.total.calls, 0);

    flaky.down.store(false, Ordering::SeqCst);
    a.settle(pending, usage()).await.unwrap();
    let r = report(&a).await;
    assert_eq!((r.estimated_calls, r.total.calls), (0, 1));
    let exact = Money::parse("0.00555").unwrap();
    assert_eq!(r.total.usd, exact);

    flaky.down.store(true, Ordering::SeqCst);
    let pending = a.reserve(call("s-f"), &estimate()).await.unwrap();
    assert!(a.settle(pending, usage()).await.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = report(&a).await;
    assert_eq!((r.estimated_calls, r.estimated_usd), (1, held));
    assert_eq!((r.total.calls, r.total.usd), (1, exact));
    assert_eq!(
        session_budget(&a, "s-f").await,
        held + exact,
        "the estimate stays held on the budget"
    );
}

/// (d) Cancelled (the call was never made): neither estimated nor exact
/// spend, and the budget given back.
async fn a_cancel_leaves_neither(bus: Arc<dyn Bus>) {
    let a = accountant(Arc::clone(&bus));
    let pending = a.reserve(call("s-d"), &estimate()).await.unwrap();
    a.cancel(pending).await.unwrap();
    let r = report(&a).await;
    assert_eq!(r.estimated_calls, 0);
    assert_eq!(r.estimated_usd, Money::ZERO);
    assert_eq!(r.total.calls, 0);
    assert_eq!(cost_haiku(&*bus).await, 0.0);
    assert_eq!(session_budget(&a, "s-d").await, Money::ZERO);
}

/// An estimate that cannot be priced (no budget applies) is estimated and
/// unpriced, never $0.
async fn an_unpriced_estimate_is_counted_not_zero(bus: Arc<dyn Bus>) {
    let a = Accountant::new(
        bus,
        Arc::new(PriceTable::built_in().unwrap()),
        Tiers::default(),
        BudgetLimits::unlimited(),
    )
    .unwrap();
    let c = Call::new(haiku(), "gpt-nonexistent").worker(WorkerId::new("w1").unwrap());
    let pending = a.reserve(c, &estimate()).await.unwrap();
    drop(pending);
    let r = report(&a).await;
    assert_eq!(r.estimated_calls, 1);
    assert_eq!(r.estimated_unpriced_calls, 1);
    assert_eq!(r.estimated_usd, Money::ZERO);
    assert!(r.render().contains("1 UNPRICED"), "{}", r.render());
}

/// The same cycle through core's seam (`&dyn Meter`, as the runtime sees
/// the accountant): the tier resolved from the role, exact money back, a
/// lost reply hands the hold back and the retried settle books once; a
/// budget refusal is `Error::Refused`; a cancel leaves nothing; a hold of
/// another meter is an error, not a panic.
async fn the_meter_seam(bus: Arc<dyn Bus>) {
    use swarmbus_core::accounting::{Hold, Meter, MeteredCall};
    let flaky = Arc::new(LostReply {
        inner: Arc::clone(&bus),
        lose_next: AtomicBool::new(true),
        down: AtomicBool::new(false),
    });
    let a = accountant(Arc::clone(&flaky));
    let meter: &dyn Meter = &a;
    let call = || {
        MeteredCall::new(Tier::Worker, "claude-haiku-4-5-20251001")
            .worker(WorkerId::new("w1").unwrap())
            .session(SessionId::new("s-m").unwrap())
    };
    let hold = meter.reserve(call(), estimate()).await.unwrap();
    let held = hold.estimate().expect("a priced estimate");
    let id = hold.id();
    let unsettled = meter
        .settle(hold, "claude-haiku-4-5-20251001", usage())
        .await
        .unwrap_err();
    assert_eq!(unsettled.hold.id(), id, "the hold comes back");
    assert_eq!(unsettled.error.retry(), Retry::Unknown);
    let settled = meter
        .settle(unsettled.hold, "claude-haiku-4-5-20251001", usage())
        .await
        .unwrap();
    let exact = Money::parse("0.00555").unwrap();
    assert_eq!(settled.cost, Some(exact));
    assert_eq!(settled.estimate, Some(held));
    assert_eq!(settled.tier, haiku());
    assert_eq!(settled.hold, id);
    let r = report(&a).await;
    assert_eq!(
        (r.total.calls, r.total.usd, r.estimated_calls),
        (1, exact, 0)
    );
    assert_eq!(session_budget(&a, "s-m").await, exact);

    let hold = meter.reserve(call(), estimate()).await.unwrap();
    meter.cancel(hold).await.unwrap();
    let r = report(&a).await;
    assert_eq!((r.total.calls, r.estimated_calls), (1, 0));
    assert_eq!(session_budget(&a, "s-m").await, exact);

    // $10 a session: an estimate of 100 million input tokens is refused.
    let refused = meter
        .reserve(call(), Usage::new(100_000_000, 0))
        .await
        .unwrap_err();
    assert!(refused.is_refusal(), "{refused}");
    assert!(refused.to_string().contains("budget"), "{refused}");

    let foreign = Hold::new(uuid::Uuid::new_v4(), None, 7_u8);
    let e = meter.cancel(foreign).await.unwrap_err();
    assert!(e.to_string().contains("not made by this accountant"), "{e}");
}

async fn redis(server: &RedisServer) -> Arc<dyn Bus> {
    Arc::new(namespaced_bus(&server.url()).await)
}

fn memory() -> Arc<dyn Bus> {
    Arc::new(MemoryBus::new())
}

#[tokio::test]
async fn memory_the_meter_seam() {
    the_meter_seam(memory()).await;
}

#[tokio::test]
async fn memory_a_dropped_reservation_is_estimated_spend() {
    a_dropped_reservation_is_estimated_spend(memory()).await;
}

#[tokio::test]
async fn memory_a_later_settle_replaces_the_estimate() {
    a_later_settle_replaces_the_estimate(memory()).await;
}

#[tokio::test]
async fn memory_a_settle_retried_is_booked_once() {
    a_settle_retried_is_booked_once(memory()).await;
}

#[tokio::test]
async fn memory_a_failed_settle_stays_estimated() {
    a_failed_settle_stays_estimated(memory()).await;
}

#[tokio::test]
async fn memory_a_cancel_leaves_neither() {
    a_cancel_leaves_neither(memory()).await;
}

#[tokio::test]
async fn memory_an_unpriced_estimate_is_counted_not_zero() {
    an_unpriced_estimate_is_counted_not_zero(memory()).await;
}

/// Every scenario on a real redis-server, each in its own namespace.
#[tokio::test]
async fn redis_estimated_spend_scenarios() {
    let server = RedisServer::start();
    a_dropped_reservation_is_estimated_spend(redis(&server).await).await;
    a_later_settle_replaces_the_estimate(redis(&server).await).await;
    a_settle_retried_is_booked_once(redis(&server).await).await;
    a_failed_settle_stays_estimated(redis(&server).await).await;
    a_cancel_leaves_neither(redis(&server).await).await;
    an_unpriced_estimate_is_counted_not_zero(redis(&server).await).await;
    the_meter_seam(redis(&server).await).await;
}
