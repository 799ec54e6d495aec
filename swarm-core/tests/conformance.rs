//! MemoryBus passes the conformance suite: one test per behaviour, each on a
//! fresh bus.

use swarmbus_core::conformance as c;
use swarmbus_core::memory::MemoryBus;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            c::$name(&MemoryBus::new()).await;
        }
    )*};
}

conformance!(
    put_then_get_round_trips,
    put_is_idempotent_and_a_conflict_keeps_the_original,
    put_findings_counts_new_ones_and_a_bad_batch_writes_nothing,
    get_findings_keeps_order_and_reports_missing,
    list_filters_by_session_worker_tag_task_time_and_limit,
    count_is_exact_under_concurrent_puts,
    archive_hides_findings_from_count_and_listing_but_keeps_them,
    oversized_and_invalid_findings_are_rejected,
    feed_delivers_every_finding_to_each_group,
    feed_redelivers_unacknowledged_entries_to_their_consumer,
    feed_read_wakes_on_a_new_finding,
    publish_fans_out_and_put_finding_notifies_its_key,
    heartbeat_expires_after_its_ttl,
    progress_counts_as_a_heartbeat_and_is_reported,
    deregister_removes_a_worker,
    tasks_are_claimed_in_order_and_ack_forgets_them,
    claim_waits_for_a_task_then_times_out,
    a_failed_task_is_stopped_and_reported_not_requeued,
    tasks_of_a_dead_worker_are_reclaimed,
    reclaim_dead_letters_a_task_over_its_delivery_limit,
    concurrent_claims_deliver_each_task_once,
    quota_grants_up_to_the_daily_limit_then_exhausts_until_pacific_midnight,
    quota_resets_on_a_new_pacific_day,
    quota_per_minute_window_cools_the_shard_until_the_next_minute,
    quota_is_exact_under_concurrent_acquires,
    cooling_and_exhaustion_deny_until_their_time,
    disable_is_permanent_until_enable,
    release_gives_a_request_back,
    halt_first_reason_wins_and_clear_resumes,
    drafts_are_saved_and_loaded,
    cost_context_and_counters_add_up,
    counter_try_add_never_overshoots_under_concurrency,
    journal_appends_and_reads_in_order,
    archive_questions_are_queued_answered_and_notified,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_runs_on_one_shared_bus() {
    c::run_all(&MemoryBus::new()).await;
}
