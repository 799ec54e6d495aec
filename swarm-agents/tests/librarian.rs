//! The librarian (archive Q&A with checked citations) and its daemon, over
//! the in-memory bus. (Moved here from `swarm-gemini/tests/librarian.rs`
//! with the librarian; the Gemini client and the shard pool are real, over
//! wiremock.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use swarmbus_agents::librarian::answer_schema;
use swarmbus_agents::{
    AnswerSource, Librarian, LibrarianConfig, LibrarianDaemon, LibrarianError as Error,
    LibrarianErrorKind as ErrorKind,
};
use swarmbus_core::bus::{ArchiveDesk, Channels, FindingStore};
use swarmbus_core::keys::{Channel, SessionId, WorkerId};
use swarmbus_core::llm::{Completion, CompletionRequest, LanguageModel, Usage};
use swarmbus_core::{ArchiveQuery, Finding, FindingFilter, ResponseStatus};
use swarmbus_gemini::{ClientConfig, GeminiClient};
use swarmbus_memory::MemoryBus;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A recognisable fake key (deliberately not shaped like a real Google key).
const KEY: &str = "test-secret-key-DO-NOT-LEAK-1234";

/// The model the mocks answer for.
const MODEL: &str = "gemini-test";

/// The unary endpoint path for `model`.
fn unary_path(model: &str) -> String {
    format!("/v1beta/models/{model}:generateContent")
}

/// A Gemini client of `server` with `key`.
fn client_for(server: &MockServer, key: &str) -> GeminiClient {
    let config = ClientConfig::default()
        .base_url(server.uri())
        .model(MODEL)
        .timeouts(Duration::from_secs(5), Duration::from_secs(30));
    GeminiClient::new(secrecy::SecretString::from(key.to_owned()), config).expect("client")
}

/// A recorded Gemini fixture, from the Gemini crate's fixtures.
fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../swarm-gemini/tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A mock that answers the unary endpoint with `status` and `body`, only
/// when the key is in the header.
async fn serve_unary(server: &MockServer, key: &str, status: u16, body: Vec<u8>) {
    Mock::given(method("POST"))
        .and(path(unary_path(MODEL)))
        .and(header("x-goog-api-key", key))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(server)
        .await;
}

fn finding(session: &str, title: &str, body: &str) -> Finding {
    Finding::new(
        WorkerId::new("haiku-1").unwrap(),
        SessionId::new(session).unwrap(),
        title,
        body,
    )
}

/// A model double that answers with a text built from the prompt it gets.
struct Scripted {
    answer: Box<dyn Fn(&str) -> String + Send + Sync>,
    prompts: Mutex<Vec<CompletionRequest>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

#[async_trait]
impl LanguageModel for Scripted {
    fn model_id(&self) -> &str {
        "scripted"
    }

    fn provider_name(&self) -> &str {
        "scripted"
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        let text = (self.answer)(&request.prompt_text());
        self.prompts.lock().unwrap().push(request);
        Ok(Completion::new(text, "scripted", Usage::new(10, 5)))
    }
}

fn scripted(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Arc<Scripted> {
    Arc::new(Scripted {
        answer: Box::new(answer),
        prompts: Mutex::new(Vec::new()),
    })
}

async fn archive() -> (Arc<MemoryBus>, Vec<Finding>) {
    let bus = Arc::new(MemoryBus::new());
    let fs = vec![
        finding(
            "instance-10",
            "Gemini free tier quotas",
            "Each Gemini Flash key gets 1,500 requests a day and 15 a minute on the free tier.",
        ),
        finding(
            "instance-10",
            "Haiku is ten times cheaper",
            "Delegating to Haiku cut the session's cost by 90 percent compared with Sonnet.",
        )
        .with_tags(["cost"]),
        finding(
            "instance-9",
            "Redis pub/sub loses messages",
            "A subscriber that is offline misses every message published meanwhile.",
        ),
    ];
    bus.put_findings(&fs).await.unwrap();
    (bus, fs)
}

#[tokio::test]
async fn a_model_answer_with_valid_citations_is_accepted_over_http() {
    let (bus, fs) = archive().await;
    let cited = fs[1].id.clone();
    let server = MockServer::start().await;
    let answer = serde_json::json!({"answer": "Delegating to Haiku cut cost by 90 %.", "citations": [cited.to_string()]});
    let body = serde_json::json!({
        "candidates": [{"content": {"parts": [{"text": answer.to_string()}], "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 20, "totalTokenCount": 320}
    });
    Mock::given(method("POST"))
        .and(path(unary_path(MODEL)))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let librarian = Librarian::new(bus, AnswerSource::model(client_for(&server, KEY)));
    let a = librarian
        .ask(
            "What did session 10 find about cost?",
            &FindingFilter::all(),
        )
        .await
        .unwrap();
    assert_eq!(a.citations, vec![cited]);
    assert_eq!(a.answer, "Delegating to Haiku cut cost by 90 %.");
    assert_eq!(a.findings_in_context, 3, "all findings fit the budget");
    assert_eq!(a.usage.unwrap().input_tokens, 300);

    let sent = &server.received_requests().await.unwrap()[0];
    let req: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    let config = &req["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(config["responseJsonSchema"], answer_schema());
    let prompt = req["contents"][0]["parts"][0]["text"].as_str().unwrap();
    for f in &fs {
        assert!(
            prompt.contains(&f.id.to_string()),
            "finding {} missing",
            f.id
        );
    }
    assert!(
        req["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("ONLY")
    );
}

#[tokio::test]
async fn a_session_filter_answers_cross_session_questions_from_that_session_only() {
    let (bus, fs) = archive().await;
    let model = scripted(|prompt| {
        let id = prompt
            .split('[')
            .nth(1)
            .and_then(|s| s.split(']').next())
            .unwrap()
            .to_string();
        serde_json::json!({"answer": "ok", "citations": [id]}).to_string()
    });
    let librarian = Librarian::new(bus, AnswerSource::model(model.clone()));
    let filter = FindingFilter::all().session(SessionId::new("instance-10").unwrap());
    let a = librarian.ask("What about cost?", &filter).await.unwrap();
    assert_eq!(a.findings_selected, 2);
    let prompt = model.prompts.lock().unwrap()[0].prompt_text();
    assert!(prompt.contains(&fs[0].id.to_string()));
    assert!(prompt.contains(&fs[1].id.to_string()));
    assert!(
        !prompt.contains(&fs[2].id.to_string()),
        "session 9 leaked in"
    );
    assert_eq!(a.answered_by, "scripted");
}

#[tokio::test]
async fn over_the_budget_only_the_most_relevant_findings_are_sent() {
    let (bus, fs) = archive().await;
    let model = scripted(|prompt| {
        let id = prompt
            .split('[')
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap()
            .to_string();
        serde_json::json!({"answer": "ok", "citations": [id]}).to_string()
    });
    let per = u64::from(fs.iter().map(|f| f.tokens).max().unwrap()) + 40;
    let librarian = Librarian::new(bus, AnswerSource::model(model.clone()))
        .with_config(LibrarianConfig::default().context_budget(per));
    let a = librarian
        .ask(
            "Which subscriber misses messages on Redis pub/sub?",
            &FindingFilter::all(),
        )
        .await
        .unwrap();
    assert_eq!(a.findings_selected, 3);
    assert_eq!(a.findings_in_context, 1);
    let prompt = model.prompts.lock().unwrap()[0].prompt_text();
    assert!(
        prompt.contains(&fs[2].id.to_string()),
        "the Redis finding is the relevant one"
    );
    assert!(!prompt.contains(&fs[0].id.to_string()));
    assert_eq!(a.citations, vec![fs[2].id.clone()]);
}

#[tokio::test]
async fn an_uncited_answer_is_an_error() {
    let (bus, _) = archive().await;
    let model = scripted(|_| r#"{"answer": "Haiku is cheaper.", "citations": []}"#.into());
    let librarian = Librarian::new(bus, AnswerSource::model(model));
    let e = librarian
        .ask("cost?", &FindingFilter::all())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Citation);
}

#[tokio::test]
async fn a_citation_of_an_unknown_id_is_an_error() {
    let (bus, _) = archive().await;
    let model = scripted(|_| {
        serde_json::json!({"answer": "x", "citations": [uuid::Uuid::new_v4().to_string()]})
            .to_string()
    });
    let librarian = Librarian::new(bus, AnswerSource::model(model));
    let e = librarian
        .ask("cost?", &FindingFilter::all())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Citation { .. }), "{e:?}");
}

/// A model that cites a real finding of the archive it was not shown: one
/// of another session (outside the filter), or one the context budget left
/// out. Both are refused: an answer may only cite what it was given.
#[tokio::test]
async fn a_citation_of_a_real_finding_left_out_of_the_prompt_is_an_error() {
    let (bus, fs) = archive().await;
    let outside = fs[2].id.to_string(); // session instance-9
    let model = scripted(move |_| {
        serde_json::json!({"answer": "Pub/sub loses messages.", "citations": [outside.clone()]})
            .to_string()
    });
    let librarian = Librarian::new(Arc::clone(&bus), AnswerSource::model(model.clone()));
    let filter = FindingFilter::all().session(SessionId::new("instance-10").unwrap());
    let e = librarian
        .ask("What about cost?", &filter)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Citation { .. }), "{e:?}");
    assert!(e.to_string().contains(&fs[2].id.to_string()), "{e}");
    let prompt = model.prompts.lock().unwrap()[0].prompt_text();
    assert!(!prompt.contains(&fs[2].id.to_string()));

    // Dropped by the budget: only the Redis finding fits, the model cites
    // the Gemini one (a real id of the same session set).
    let dropped = fs[0].id.to_string();
    let model = scripted(move |_| {
        serde_json::json!({"answer": "1,500 a day.", "citations": [dropped.clone()]}).to_string()
    });
    let per = u64::from(fs.iter().map(|f| f.tokens).max().unwrap()) + 40;
    let librarian = Librarian::new(bus, AnswerSource::model(model.clone()))
        .with_config(LibrarianConfig::default().context_budget(per));
    let e = librarian
        .ask(
            "Which subscriber misses messages on Redis pub/sub?",
            &FindingFilter::all(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Citation { .. }), "{e:?}");
    let prompt = model.prompts.lock().unwrap()[0].prompt_text();
    assert!(!prompt.contains(&fs[0].id.to_string()), "it was left out");
}

#[tokio::test]
async fn a_malformed_answer_is_an_error_not_a_guess() {
    let (bus, _) = archive().await;
    let model = scripted(|_| "Sure! Haiku is cheaper.".into());
    let librarian = Librarian::new(bus, AnswerSource::model(model));
    let e = librarian
        .ask("cost?", &FindingFilter::all())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
}

#[tokio::test]
async fn the_extractive_provider_quotes_the_most_relevant_findings() {
    let (bus, fs) = archive().await;
    let librarian = Librarian::new(bus, AnswerSource::Extractive)
        .with_config(LibrarianConfig::default().extractive_top(1));
    let a = librarian
        .ask(
            "How many requests a day does the Gemini free tier allow?",
            &FindingFilter::all(),
        )
        .await
        .unwrap();
    assert_eq!(a.citations, vec![fs[0].id.clone()]);
    assert!(a.answer.contains("1,500 requests a day"), "{}", a.answer);
    assert!(a.answer.contains(&fs[0].id.to_string()));
    assert_eq!(a.answered_by, "extractive");
}

#[tokio::test]
async fn no_matching_finding_is_an_error_kind_of_its_own() {
    let (bus, _) = archive().await;
    let librarian = Librarian::new(bus, AnswerSource::Extractive);
    let filter = FindingFilter::all().session(SessionId::new("instance-99").unwrap());
    let e = librarian.ask("anything?", &filter).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoFindings);
    let e = librarian
        .ask("zebra giraffe", &FindingFilter::all())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoFindings);
}

#[tokio::test]
async fn the_daemon_answers_a_queued_query_and_notifies_responses() {
    let (bus, fs) = archive().await;
    let daemon = LibrarianDaemon::new(bus.clone(), AnswerSource::Extractive);
    let mut responses = bus.subscribe(Channel::Responses).await.unwrap();
    let q = ArchiveQuery::new("Gemini free tier requests per day?", FindingFilter::all());
    bus.ask(&q).await.unwrap();
    let r = daemon
        .serve_one(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Ok);
    assert!(r.citations.contains(&fs[0].id));
    let stored = bus.get_response(q.id).await.unwrap().unwrap();
    assert_eq!(stored.citations, r.citations);
    assert_eq!(stored.answered_by.as_deref(), Some("extractive"));
    let note = responses.next().await.unwrap().unwrap();
    assert_eq!(note, format!("response:archive:{}", q.id));
}

#[tokio::test]
async fn a_failed_query_gets_an_error_response_never_silence() {
    let (bus, _) = archive().await;
    let model = scripted(|_| "not json".into());
    let daemon = LibrarianDaemon::new(bus.clone(), AnswerSource::model(model));
    let q = ArchiveQuery::new("cost?", FindingFilter::all());
    bus.ask(&q).await.unwrap();
    let r = daemon
        .serve_one(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Error);
    let stored = bus.get_response(q.id).await.unwrap().unwrap();
    let err = stored.error.unwrap();
    assert_eq!(err.kind, "malformed_response");
    assert!(
        err.message.contains("not the JSON asked for"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn the_daemon_serves_channel_notifications_once_until_shut_down() {
    let (bus, _) = archive().await;
    let daemon = Arc::new(
        LibrarianDaemon::new(bus.clone(), AnswerSource::Extractive)
            .poll_interval(Duration::from_millis(20)),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn({
        let daemon = daemon.clone();
        async move {
            daemon
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let q1 = ArchiveQuery::new("Redis subscriber offline messages?", FindingFilter::all());
    let q2 = ArchiveQuery::new("unicorns and rainbows", FindingFilter::all());
    bus.ask(&q1).await.unwrap();
    bus.ask(&q2).await.unwrap();
    // Wait (bounded) until both are answered.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if bus.get_response(q1.id).await.unwrap().is_some()
                && bus.get_response(q2.id).await.unwrap().is_some()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the daemon answers both queries");
    // Let the queue path see them too: they must not be answered twice.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let stats = run.await.unwrap().unwrap();
    assert_eq!(stats.answered, 1);
    assert_eq!(stats.failed, 1);
    let r2 = bus.get_response(q2.id).await.unwrap().unwrap();
    assert_eq!(r2.error.unwrap().kind, "no_findings");
}

#[tokio::test]
async fn a_notification_for_a_namespaced_key_is_served() {
    let (bus, _) = archive().await;
    let daemon = LibrarianDaemon::new(bus.clone(), AnswerSource::Extractive);
    let q = ArchiveQuery::new("Haiku cost?", FindingFilter::all());
    bus.ask(&q).await.unwrap();
    let r = daemon
        .serve_notification(&format!("{{team-a}}:query:archive:{}", q.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.id, q.id);
    // Already answered: a second notification does nothing.
    assert!(
        daemon
            .serve_notification(&format!("query:archive:{}", q.id))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_daemon_answers_through_a_shard_pool_on_a_dyn_bus() {
    use swarmbus_core::bus::Bus;
    use swarmbus_gemini::{PoolConfig, ShardConfig, ShardPool};

    let (memory, fs) = archive().await;
    let bus: Arc<dyn Bus> = memory;
    let server = MockServer::start().await;
    let answer = serde_json::json!({"answer": "Redis channels drop messages for offline subscribers.",
                                    "citations": [fs[2].id.to_string()]});
    Mock::given(method("POST"))
        .and(path(unary_path(MODEL)))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "candidates": [{"content": {"parts": [{"text": answer.to_string()}]}, "finishReason": "STOP"}]
        })))
        .mount(&server)
        .await;
    let pool: ShardPool<dyn Bus> = ShardPool::new(
        vec![ShardConfig::new(
            swarmbus_core::keys::ShardId::new(1).unwrap(),
            KEY.to_owned().into(),
        )],
        bus.clone(),
        PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(server.uri())),
    )
    .unwrap();
    let daemon = LibrarianDaemon::new(bus.clone(), AnswerSource::model(pool));
    let q = ArchiveQuery::new(
        "What happens to offline Redis subscribers?",
        FindingFilter::all(),
    );
    bus.ask(&q).await.unwrap();
    let r = daemon
        .serve_one(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Ok);
    assert_eq!(r.citations, vec![fs[2].id.clone()]);
    assert_eq!(r.answered_by.as_deref(), Some("shard1"));
    // The pool kept the brief's shard keys current on the same bus.
    let quotas = bus
        .shard_quotas(&[swarmbus_core::keys::ShardId::new(1).unwrap()])
        .await
        .unwrap();
    assert_eq!(quotas, vec![Some(1499)]);
}

// ---------------------------------------------------------------------------
// Truncation (moved here from `swarm-gemini/tests/language_model.rs`)

const NO_PARTS: &str = "written/unary-success-max-tokens-thinking-no-parts.json";
const THOUGHT_ONLY: &str = "written/unary-success-max-tokens-thought-only.json";

async fn one_finding() -> Arc<MemoryBus> {
    let bus = Arc::new(MemoryBus::new());
    bus.put_finding(&Finding::new(
        WorkerId::new("haiku-1").unwrap(),
        SessionId::new("s1").unwrap(),
        "Haiku is cheaper",
        "Delegating to Haiku cut cost by 90 percent.",
    ))
    .await
    .unwrap();
    bus
}

#[tokio::test]
async fn the_librarian_reports_an_empty_answer_as_truncated_never_malformed() {
    for name in [NO_PARTS, THOUGHT_ONLY] {
        let server = MockServer::start().await;
        serve_unary(&server, KEY, 200, fixture(name)).await;
        let librarian = Librarian::new(
            one_finding().await,
            AnswerSource::model(client_for(&server, KEY)),
        );
        let e = librarian
            .ask("What did we learn about cost?", &FindingFilter::all())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated, "{name}: {e}");
        assert_eq!(e.kind().as_str(), "truncated");
        assert!(e.model_error().is_none(), "the call succeeded: {e:?}");
        assert!(e.to_string().contains("max_tokens"), "{e}");
    }
}

#[tokio::test]
async fn a_json_answer_cut_by_the_cap_is_truncated() {
    let server = MockServer::start().await;
    let body = serde_json::json!({
        "candidates": [{"content": {"parts": [{"text": "{\"answer\": \"Delega"}], "role": "model"},
                        "finishReason": "MAX_TOKENS"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
    });
    serve_unary(&server, KEY, 200, serde_json::to_vec(&body).unwrap()).await;
    let librarian = Librarian::new(
        one_finding().await,
        AnswerSource::model(client_for(&server, KEY)),
    );
    let e = librarian
        .ask("cost?", &FindingFilter::all())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
}
