//! MemoryBus passes the conformance suite: one test per behaviour, each on a
//! fresh bus, and the whole suite in sequence on one shared bus.

use swarmbus_memory::MemoryBus;

swarmbus_memory::conformance_tests!(async { MemoryBus::new() });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_runs_on_one_shared_bus() {
    swarmbus_memory::conformance::run_all(&MemoryBus::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_beat_is_dead_after_its_grace_period() {
    use std::time::Duration;
    use swarmbus_core::BusLimits;
    use swarmbus_core::keys::KeySpace;
    let grace = Duration::from_millis(200);
    let bus = MemoryBus::with_config(
        KeySpace::default(),
        BusLimits::default().worker_grace(grace),
    );
    swarmbus_memory::conformance::a_worker_that_never_beat_is_dead_after_its_grace_period(
        &bus, grace,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bus_reads_findings_written_around_the_library() {
    swarmbus_memory::conformance::run_raw_findings(&MemoryBus::new()).await;
}
