//! The ledger on a bus: entries recorded by one handle are read by another,
//! the brief's `cost:<tier>` keys follow, reports total per tier, model,
//! worker and session, and unpriced calls stay unpriced all the way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use swarmbus_core::Tier;
use swarmbus_core::bus::{Bus, Counters, Journal};
use swarmbus_core::keys::{JournalName, SessionId, TierName, WorkerId};
use swarmbus_cost::{
    Billing, BudgetLimits, Call, Ledger, Money, PriceTable, Report, ReportFilter, Tiers, Usage,
};
use swarmbus_memory::MemoryBus;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

fn table() -> Arc<PriceTable> {
    Arc::new(PriceTable::built_in().unwrap())
}

fn tier(name: &str) -> TierName {
    TierName::new(name).unwrap()
}

fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap()
}

fn session(name: &str) -> SessionId {
    SessionId::new(name).unwrap()
}

/// The Haiku call: $0.00555.
fn haiku_usage() -> Usage {
    Usage::new(1_000, 500)
        .with_cache_read(8_000)
        .with_cache_write(1_000, 0)
}

fn haiku_call(w: &str, s: &str) -> Call {
    Call::new(tier("haiku"), "claude-haiku-4-5-20251001")
        .role(Tier::Worker)
        .worker(worker(w))
        .session(session(s))
        .at(at())
}

fn sonnet_call(s: &str) -> Call {
    Call::new(tier("sonnet"), "claude-sonnet-4-5")
        .role(Tier::Coordinator)
        .session(session(s))
        .at(at())
}

#[tokio::test]
async fn one_entry_per_call_readable_from_another_handle_on_the_bus() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let writer = Ledger::new(Arc::clone(&bus), table()).unwrap();
    let entry = writer
        .record(&haiku_call("haiku-1", "instance-11"), haiku_usage())
        .await
        .unwrap();
    assert_eq!(entry.cost.usd().unwrap().to_string(), "0.00555");

    let reader = Ledger::new(Arc::clone(&bus), table()).unwrap();
    let read = reader.entries().await.unwrap();
    assert_eq!(read.entries, vec![entry.clone()]);
    assert!(read.skipped.is_empty());

    // The record is plain JSON in the `cost-ledger` journal, money as exact strings.
    let journal = JournalName::new("cost-ledger").unwrap();
    let raw = bus.read(&journal, 0, 10).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!(json["tier"], "haiku");
    assert_eq!(json["worker"], "haiku-1");
    assert_eq!(json["session"], "instance-11");
    assert_eq!(json["usage"]["cache_read_tokens"], 8_000);
    assert_eq!(json["cost"]["priced"]["usd"], "0.00555");
}

#[tokio::test]
async fn the_brief_cost_keys_follow_the_ledger() {
    let bus = Arc::new(MemoryBus::new());
    let ledger = Ledger::new(Arc::clone(&bus), table()).unwrap();
    for _ in 0..3 {
        ledger
            .record(&haiku_call("haiku-1", "s"), haiku_usage())
            .await
            .unwrap();
    }
    // Sonnet: 1,000 × 3 + 100 × 15 = 4,500 → $0.0045
    ledger
        .record(&sonnet_call("s"), Usage::new(1_000, 100))
        .await
        .unwrap();
    let costs = bus
        .costs(&[tier("haiku"), tier("sonnet"), tier("gemini")])
        .await
        .unwrap();
    assert!((costs[0] - 0.01665).abs() < 1e-12, "{costs:?}");
    assert!((costs[1] - 0.0045).abs() < 1e-12, "{costs:?}");
    assert_eq!(costs[2], 0.0);
}

#[tokio::test]
async fn an_unknown_model_is_unpriced_in_the_ledger_keys_and_report() {
    let bus = Arc::new(MemoryBus::new());
    let ledger = Ledger::new(Arc::clone(&bus), table()).unwrap();
    let call = Call::new(tier("haiku"), "claude-haiku-9-imaginary")
        .role(Tier::Worker)
        .worker(worker("haiku-2"))
        .at(at());
    let entry = ledger
        .record(&call, Usage::new(1_000, 1_000))
        .await
        .unwrap();
    assert_eq!(entry.cost.usd(), None);
    // Not added to cost:haiku as $0 or anything else.
    assert_eq!(bus.costs(&[tier("haiku")]).await.unwrap(), vec![0.0]);

    let report = ledger
        .report(&Tiers::default(), &ReportFilter::all())
        .await
        .unwrap();
    assert_eq!(report.total.calls, 1);
    assert_eq!(report.total.unpriced_calls, 1);
    assert_eq!(report.roles.worker.unpriced_calls, 1);
    assert_eq!(
        report.by_model["claude-haiku-9-imaginary"].unpriced_calls,
        1
    );
    assert_eq!(
        report.unpriced.keys().collect::<Vec<_>>(),
        vec!["model \"claude-haiku-9-imaginary\" is not in the price table"]
    );
    assert!(
        report.cost_line().contains("Haiku $0.0000 (+1 unpriced)"),
        "{}",
        report.cost_line()
    );
    let text = report.render();
    assert!(
        text.contains("UNPRICED ×1: model \"claude-haiku-9-imaginary\""),
        "{text}"
    );
    assert_eq!(report.savings.uncomparable_calls, 1);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["total"]["unpriced_calls"], 1);
}

/// Updated for today's default models (this test's assertions were about
/// the defaults): Sonnet 5.5 coordinates, Haiku 5.5 works, Gemini 3.5
/// Flash-Lite on its free tier is the librarian, all priced on 2026-11-15.
#[tokio::test]
async fn the_report_has_the_brief_lines_shares_and_savings() {
    let bus = Arc::new(MemoryBus::new());
    let ledger = Ledger::new(Arc::clone(&bus), table()).unwrap();
    let today = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
    let defaults = Tiers::default();
    // 9 Haiku 5.5 calls (prompt 10,000 tokens: the low band): 1,000 × 0.10 + 8,000 × 0.01
    // + 1,000 × 0.125 + 500 × 0.50 = 100 + 80 + 125 + 250 = 555 → $0.000555 each, $0.004995.
    for i in 0..9 {
        let call = defaults
            .call(Tier::Worker)
            .unwrap()
            .worker(worker(&format!("haiku-{}", i % 3)))
            .session(session("instance-11"))
            .at(today);
        ledger.record(&call, haiku_usage()).await.unwrap();
    }
    // 1 Sonnet 5.5 call: 1,000 × 2 + 100 × 10 → $0.003
    let coordinator = defaults
        .call(Tier::Coordinator)
        .unwrap()
        .session(session("instance-11"))
        .at(today);
    ledger
        .record(&coordinator, Usage::new(1_000, 100))
        .await
        .unwrap();
    // 1 free-tier Gemini 3.5 Flash-Lite call: $0, shadow 1,000 × 0.30 + 100 × 2.50 → $0.00055
    let librarian = defaults
        .call(Tier::Librarian)
        .unwrap()
        .session(session("instance-11"))
        .at(today);
    assert_eq!(librarian.billing, Billing::FreeTier);
    ledger
        .record(&librarian, Usage::new(1_000, 100))
        .await
        .unwrap();

    let report = ledger
        .report(&Tiers::default(), &ReportFilter::all())
        .await
        .unwrap();
    assert_eq!(
        report.cost_line(),
        "Cost This Session: Sonnet $0.0030 | Haiku $0.0050 | Gemini $0"
    );
    // Spend share: 0.004995 / (0.004995 + 0.003) = 62.5 %.
    assert_eq!(
        report.efficiency_line(),
        "Token Efficiency: Haiku 62.5% / Sonnet 37.5%"
    );
    assert_eq!(report.total.usd.to_string(), "0.007995");
    assert_eq!(report.total.shadow_usd.to_string(), "0.00055");
    assert_eq!(report.roles.librarian.usd, Money::ZERO);
    assert_eq!(report.roles.librarian.shadow_usd.to_string(), "0.00055");
    // 9 of 10 worker + coordinator calls: exactly the 90 % target.
    assert_eq!(report.worker_share.calls.to_string(), "90.0");
    assert!(report.worker_share.on_target);
    assert_eq!(report.worker_share.spend.to_string(), "62.5");
    assert_eq!(report.by_worker["haiku-0"].calls, 3);
    assert_eq!(report.by_worker["-"].calls, 2);
    assert_eq!(report.by_session["instance-11"].calls, 11);
    assert_eq!(report.by_tier["haiku"].usd.to_string(), "0.004995");
    assert_eq!(report.by_model["claude-haiku-5-5"].calls, 9);
    // Savings: each Haiku call on Sonnet 5.5 (cache reads $0.10 since 2026-10-07):
    // 1,000 × 2 + 8,000 × 0.10 + 1,000 × 2.50 + 500 × 10 = 2,000 + 800 + 2,500 + 5,000
    // = 10,300 → $0.0103, × 9 = $0.0927; the Gemini call on Sonnet: 1,000 × 2 + 100 × 10
    // = $0.003; the Sonnet call itself $0.003.
    assert_eq!(report.savings.on_coordinator_usd.to_string(), "0.0987");
    assert_eq!(report.savings.actual_usd.to_string(), "0.007995");
    assert_eq!(report.savings.saved_usd.to_string(), "0.090705");
    assert_eq!(report.savings.compared_calls, 11);
}

#[tokio::test]
async fn a_report_filters_by_session_and_drops_repeated_records() {
    let bus = Arc::new(MemoryBus::new());
    let ledger = Ledger::new(Arc::clone(&bus), table()).unwrap();
    let a = ledger
        .record(&haiku_call("w", "a"), haiku_usage())
        .await
        .unwrap();
    ledger
        .record(&haiku_call("w", "b"), haiku_usage())
        .await
        .unwrap();
    // A retried append stores the same record twice; it counts once.
    ledger.append(&a).await.unwrap();
    // A record that is not a ledger entry is skipped and counted.
    bus.append(ledger.journal(), &["not json".to_owned()])
        .await
        .unwrap();

    let all = ledger
        .report(&Tiers::default(), &ReportFilter::all())
        .await
        .unwrap();
    assert_eq!(all.total.calls, 2);
    assert_eq!(all.skipped_records, 1);
    let only_a = ledger
        .report(
            &Tiers::default(),
            &ReportFilter::all().session(session("a")),
        )
        .await
        .unwrap();
    assert_eq!(only_a.total.calls, 1);
    assert_eq!(only_a.total.usd.to_string(), "0.00555");
}

#[tokio::test]
async fn tier_names_come_from_the_configuration() {
    use swarmbus_cost::TierModel;
    let tiers = Tiers::new(
        TierModel::new(tier("opus"), "claude-opus-4-5"),
        TierModel::new(tier("flash"), "gemini-2.5-flash"),
        TierModel::new(tier("lite"), "gemini-2.5-flash-lite").billing(Billing::FreeTier),
    );
    let bus = Arc::new(MemoryBus::new());
    let ledger = Ledger::new(Arc::clone(&bus), table()).unwrap();
    // Calls without a role are placed by their tier name.
    ledger
        .record(
            &Call::new(tier("flash"), "gemini-2.5-flash").at(at()),
            Usage::new(1_000, 0),
        )
        .await
        .unwrap();
    let report = ledger.report(&tiers, &ReportFilter::all()).await.unwrap();
    assert_eq!(
        report.cost_line(),
        "Cost This Session: Opus $0.0000 | Flash $0.0003 | Lite $0"
    );
    assert_eq!(
        report.efficiency_line(),
        "Token Efficiency: Flash 100.0% / Opus 0.0%"
    );
    assert_eq!(report.roles.worker.calls, 1);
}

#[tokio::test]
async fn an_empty_ledger_reports_zero_as_the_brief_does() {
    let report = Report::build(&[], &Tiers::default(), &PriceTable::built_in().unwrap());
    assert_eq!(
        report.cost_line(),
        "Cost This Session: Sonnet $0.0000 | Haiku $0.0000 | Gemini $0"
    );
    assert_eq!(
        report.efficiency_line(),
        "Token Efficiency: Haiku 0.0% / Sonnet 100.0%"
    );
    assert!(!report.worker_share.on_target);
}

#[tokio::test]
async fn the_accountant_records_and_budgets_in_one_cycle() {
    use swarmbus_cost::Accountant;
    let bus = Arc::new(MemoryBus::new());
    let accountant = Accountant::new(
        Arc::clone(&bus),
        table(),
        Tiers::default(),
        BudgetLimits::unlimited().per_session(Money::parse("0.01").unwrap()),
    )
    .unwrap();
    let call = haiku_call("haiku-1", "instance-12");
    let pending = accountant
        .reserve(call.clone(), &haiku_usage())
        .await
        .unwrap();
    assert_eq!(pending.estimate().to_string(), "0.00555");
    // The call used fewer tokens than estimated: 1,000 × 1 + 100 × 5 → $0.0015.
    let entry = accountant
        .settle(pending, Usage::new(1_000, 100))
        .await
        .unwrap();
    assert_eq!(entry.cost.usd().unwrap().to_string(), "0.0015");
    let spent = accountant
        .budgets()
        .spent(&swarmbus_cost::BudgetScope::Session(session("instance-12")))
        .await
        .unwrap();
    assert_eq!(spent.to_string(), "0.0015");
    let report = accountant.report(&ReportFilter::all()).await.unwrap();
    assert_eq!(report.total.usd.to_string(), "0.0015");
}

/// A bus whose separate `add_cost` fails (the process died between the two
/// writes); everything else is a MemoryBus.
struct DiesBeforeAddCost(MemoryBus);

#[async_trait::async_trait]
impl Counters for DiesBeforeAddCost {
    async fn add_cost(&self, _: &TierName, _: f64) -> swarmbus_core::Result<f64> {
        Err(swarmbus_core::Error::Closed("crashed before add_cost"))
    }
    async fn costs(&self, tiers: &[TierName]) -> swarmbus_core::Result<Vec<f64>> {
        self.0.costs(tiers).await
    }
    async fn set_context_tokens(&self, tokens: u64) -> swarmbus_core::Result<()> {
        self.0.set_context_tokens(tokens).await
    }
    async fn context_tokens(&self) -> swarmbus_core::Result<Option<u64>> {
        self.0.context_tokens().await
    }
    async fn counter_add(
        &self,
        name: &swarmbus_core::keys::CounterName,
        delta: i64,
    ) -> swarmbus_core::Result<i64> {
        self.0.counter_add(name, delta).await
    }
    async fn counters(
        &self,
        names: &[swarmbus_core::keys::CounterName],
    ) -> swarmbus_core::Result<Vec<i64>> {
        self.0.counters(names).await
    }
    async fn counter_try_add(
        &self,
        name: &swarmbus_core::keys::CounterName,
        delta: i64,
        limit: i64,
    ) -> swarmbus_core::Result<Option<i64>> {
        self.0.counter_try_add(name, delta, limit).await
    }
}

#[async_trait::async_trait]
impl Journal for DiesBeforeAddCost {
    async fn append(&self, journal: &JournalName, records: &[String]) -> swarmbus_core::Result<()> {
        self.0.append(journal, records).await
    }
    async fn append_with_cost(
        &self,
        journal: &JournalName,
        records: &[String],
        tier: &TierName,
        usd: f64,
    ) -> swarmbus_core::Result<f64> {
        self.0.append_with_cost(journal, records, tier, usd).await
    }
    async fn read(
        &self,
        journal: &JournalName,
        from: u64,
        max: usize,
    ) -> swarmbus_core::Result<Vec<String>> {
        self.0.read(journal, from, max).await
    }
    async fn journal_len(&self, journal: &JournalName) -> swarmbus_core::Result<u64> {
        self.0.journal_len(journal).await
    }
}

#[tokio::test]
async fn the_journal_entry_and_the_tier_cost_are_written_together() {
    let bus = Arc::new(DiesBeforeAddCost(MemoryBus::new()));
    let ledger = Ledger::new(Arc::clone(&bus), table()).unwrap();
    let recorded = ledger.record(&haiku_call("w1", "s1"), haiku_usage()).await;
    let entries = ledger.entries().await.unwrap().entries;
    let cost = bus.costs(&[tier("haiku")]).await.unwrap()[0];
    // Either both or neither: never an entry without its cost.
    assert_eq!(
        entries.len() == 1,
        cost > 0.0,
        "journal has {} entries, cost:haiku is {cost} ({recorded:?})",
        entries.len()
    );
    assert!(recorded.is_ok(), "{recorded:?}");
}

#[tokio::test]
async fn the_accountant_records_calls_through_the_meter() {
    use swarmbus_core::accounting::{Meter, MeteredCall};
    let bus = Arc::new(MemoryBus::new());
    let accountant = swarmbus_cost::Accountant::new(
        Arc::clone(&bus),
        table(),
        Tiers::default(),
        BudgetLimits::unlimited(),
    )
    .unwrap();
    let today = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
    let meter: &dyn Meter = &accountant;
    // A worker call on Haiku 5.5: $0.000555 (see the report test), booked
    // on the worker role's tier, resolved by the accountant.
    let settled = meter
        .record(
            MeteredCall::new(Tier::Worker, "claude-haiku-5-5")
                .worker(worker("haiku-1"))
                .at(today),
            haiku_usage(),
        )
        .await
        .unwrap();
    assert_eq!(settled.cost.map(|m| m.to_string()), Some("0.000555".into()));
    assert_eq!(settled.tier, tier("haiku"));
    // A librarian call is billed on its tier's free tier: $0.
    let settled = meter
        .record(
            MeteredCall::new(Tier::Librarian, "gemini-3.5-flash-lite").at(today),
            Usage::new(1_000, 100),
        )
        .await
        .unwrap();
    assert_eq!(settled.cost, Some(Money::ZERO));
    assert_eq!(settled.tier, tier("gemini"));
    // An unknown model is recorded and reported unpriced, not $0.
    let settled = meter
        .record(
            MeteredCall::new(Tier::Worker, "mystery").at(today),
            Usage::new(5, 5),
        )
        .await
        .unwrap();
    assert_eq!(settled.cost, None);
    let report = accountant.report(&ReportFilter::all()).await.unwrap();
    assert_eq!(report.total.calls, 3);
    assert_eq!(report.total.unpriced_calls, 1);
    assert_eq!(report.by_worker["haiku-1"].usd.to_string(), "0.000555");
    assert_eq!(report.roles.librarian.shadow_usd.to_string(), "0.00055");
}
