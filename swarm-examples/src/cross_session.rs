//! The brief's cross-session librarian pattern: session `instance-10`
//! writes findings, session `instance-11` asks the librarian what
//! instance 10 discovered about costs and gets an answer citing them.

use std::sync::Arc;
use std::time::Duration;

use swarmbus_agents::librarian::ask::ask;
use swarmbus_agents::{AnswerSource, Librarian, LibrarianDaemon};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_core::{ArchiveQuery, Finding, FindingFilter, ResponseStatus};
use swarmbus_core::{Bus, FindingId, SessionId, WorkerId};
use swarmbus_gemini::pool::shards_from_env;
use swarmbus_gemini::{ClientConfig, DEFAULT_MODEL, PoolConfig, ShardPool};

use crate::AnyError;

/// The question instance 11 asks.
pub const QUESTION: &str = "What did Instance #10 discover about costs?";

/// How long instance 11 waits for the daemon's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// What the cross-session query produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CrossSessionReport {
    /// The findings instance 10 wrote tagged `cost`.
    pub cost_findings: Vec<FindingId>,
    /// The direct answer's citations (each checked to exist).
    pub citations: Vec<FindingId>,
    /// Who answered the direct question.
    pub answered_by: String,
    /// The citations of the answer the daemon posted through the bus.
    pub daemon_citations: Vec<FindingId>,
}

/// Who answers: the Gemini shard pool when `GEMINI_API_KEY_SHARD<N>` keys
/// are set, else the offline extractive provider. Says which when
/// `announce`.
pub fn librarian_source(bus: &Arc<dyn Bus>, announce: bool) -> Result<AnswerSource, AnyError> {
    let shards = shards_from_env(QuotaLimits::free_tier())?;
    if shards.is_empty() {
        if announce {
            println!(
                "Librarian: offline extractive provider (set GEMINI_API_KEY_SHARD<N> for Gemini)"
            );
        }
        return Ok(AnswerSource::Extractive);
    }
    if announce {
        println!("Librarian: Gemini through {} shard(s)", shards.len());
    }
    let config = PoolConfig::default()
        .model(DEFAULT_MODEL)
        .client(ClientConfig::from_env());
    Ok(AnswerSource::model(ShardPool::new(
        shards,
        Arc::clone(bus),
        config,
    )?))
}

/// Runs the pattern on `bus` with `source` answering: writes instance 10's
/// findings, asks the librarian directly, then asks once more through the
/// bus's archive desk with a [`LibrarianDaemon`] answering. Fails when a
/// citation does not exist.
pub async fn cross_session_query(
    bus: Arc<dyn Bus>,
    direct: AnswerSource,
    daemon_source: AnswerSource,
) -> Result<CrossSessionReport, AnyError> {
    let ten = SessionId::new("instance-10")?;
    let notes: [(&str, &str, &[&str]); 4] = [
        (
            "Worker tier is 12x cheaper",
            "Haiku-tier workers cost about a twelfth of the coordinator per token; delegating 90 % of calls cuts the session's costs by most of that.",
            &["cost", "delegation"],
        ),
        (
            "Prompt cache reads save input costs",
            "Parallel workers sharing the cached prefix read it at a tenth of the input price; the cost report shows the saving.",
            &["cost", "caching"],
        ),
        (
            "Shard 3 quota ran out at noon",
            "Librarian shard 3 reached its daily request limit; the pool rotated to shard 4.",
            &["quota"],
        ),
        (
            "README lists nine examples",
            "The README's example list names one example per protocol of the brief.",
            &["docs"],
        ),
    ];
    let mut cost_findings = Vec::new();
    println!("Session instance-10 writes {} findings:", notes.len());
    for (i, (title, body, tags)) in notes.iter().enumerate() {
        let worker = WorkerId::new(format!("haiku-{}", i + 1))?;
        let f = Finding::new(worker, ten.clone(), *title, *body)
            .with_tags(tags.iter().map(|t| (*t).to_owned()));
        bus.put_finding(&f).await?;
        println!("  [{}] {title} (tags: {})", f.id, tags.join(", "));
        if tags.contains(&"cost") {
            cost_findings.push(f.id);
        }
    }

    println!("\nSession instance-11 asks the librarian: {QUESTION}");
    let filter = FindingFilter::all().session(ten.clone()).tag("cost");
    let librarian = Librarian::new(Arc::clone(&bus), direct);
    let answer = librarian.ask(QUESTION, &filter).await?;
    println!("{}", answer.answer);
    println!("(answered by {})", answer.answered_by);
    check_citations(&bus, &answer.citations).await?;

    println!("\nThe same question through the bus (query:archive → LibrarianDaemon):");
    let daemon = LibrarianDaemon::new(Arc::clone(&bus), daemon_source);
    let query = ArchiveQuery::new(QUESTION, filter).asked_by("instance-11");
    // The daemon serves (a shared Redis may hold older questions) while
    // instance 11 waits for the answer to its own.
    let serve = async {
        loop {
            if let Err(e) = daemon.serve_one(Duration::from_millis(200)).await {
                return e;
            }
        }
    };
    let response = tokio::select! {
        r = ask(&*bus, &query, ANSWER_WAIT) => {
            r.map_err(|e| format!("the daemon did not answer the query: {e}"))?
        }
        e = serve => return Err(e.into()),
    };
    if response.status != ResponseStatus::Ok {
        return Err(format!("the daemon answered with an error: {:?}", response.error).into());
    }
    println!(
        "  query {} answered by {}",
        response.id,
        response.answered_by.as_deref().unwrap_or("?")
    );
    check_citations(&bus, &response.citations).await?;

    Ok(CrossSessionReport {
        cost_findings,
        citations: answer.citations,
        answered_by: answer.answered_by,
        daemon_citations: response.citations,
    })
}

/// Prints the citations and fails unless each one exists on the bus.
async fn check_citations(bus: &Arc<dyn Bus>, ids: &[FindingId]) -> Result<(), AnyError> {
    if ids.is_empty() {
        return Err("the answer cites no finding".into());
    }
    for (id, found) in ids.iter().zip(bus.get_findings(ids).await?) {
        match found {
            Some(f) => println!("  cites finding:{id} ({})", f.title),
            None => return Err(format!("cited finding {id} does not exist").into()),
        }
    }
    Ok(())
}
