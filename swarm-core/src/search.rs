//! Ranked search over findings: the tokeniser, the index's stored layout,
//! BM25 ranking and the [`FindingIndex`] trait both buses implement (the
//! in-memory bus keeps its index in `swarmbus_memory::MemoryIndex`, the Redis
//! bus in Redis strings, both in the layout below).
//!
//! # Tokeniser
//!
//! [`tokens`] splits text at Unicode word boundaries (UAX #29, the
//! `unicode-segmentation` crate's `unicode_words`: punctuation and spaces
//! are no words; `don't`, `3.5` and `snake_case` are one word each) and
//! folds each word with Unicode full case folding (`caseless`, from
//! CaseFolding.txt: `Straße` → `strasse`, `ΣΊΣΥΦΟΣ` → `σίσυφοσ`). Words
//! longer than [`MAX_TERM_BYTES`] after folding are skipped. No stemming, no
//! stop words. Title, body and tags go through the same tokeniser; a term's
//! weight in a finding is its count in the body plus [`TITLE_WEIGHT`] times
//! its count in the title and [`TAG_WEIGHT`] times its count in the tags.
//! The Redis bus tokenises in Rust and hands the terms to its script, so the
//! tokeniser exists once.
//!
//! # Layout
//!
//! Every indexed finding gets a document number (0, 1, 2, … in the order
//! it was indexed: the "newest first" order of a listing is the reverse).
//! Per term, a postings string of [`POSTING_BYTES`]-byte entries, document
//! number ascending: the number (u32, big-endian), the term's weight (u8,
//! capped at 255) and the finding's length norm (u8, see [`encode_norm`]).
//! Per filter value (tag, session, worker; [`filter_name`]) a string of
//! document numbers (u32, big-endian). Both are appended batch by batch:
//! ascending within a batch, batches of writers that ran at once possibly
//! out of order (readers sort). Bitmaps (bit `d` is the
//! most significant bit first, as Redis SETBIT numbers them): `live` (the
//! document is the current version of a finding in the store) and
//! `archived`. `times`: 8 bytes per document, the creation time in ms (i64,
//! big-endian). A deleted or replaced document only loses its `live` bit;
//! its postings stay until a repair compacts them, so document frequencies
//! may count them meanwhile.
//!
//! # Ranking
//!
//! Okapi BM25 (k1 = 1.2, b = 0.75) over the weighted term counts, ties
//! broken by newer document first. With [`MatchMode::All`] (the default) a
//! finding must contain every query term; with [`MatchMode::Any`] one is
//! enough. Cost: the postings of the query terms and filters, and the
//! bitmaps (one bit per document), never the findings themselves.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::keys::{FindingId, SessionId, WorkerId};

/// The longest term kept, in bytes after folding.
pub const MAX_TERM_BYTES: usize = 64;

/// How much a term in the title counts, against 1 in the body.
pub const TITLE_WEIGHT: u32 = 3;

/// How much a term in a tag counts, against 1 in the body.
pub const TAG_WEIGHT: u32 = 3;

/// Bytes of one posting: document number, weight, norm.
pub const POSTING_BYTES: usize = 6;

/// Bytes of one document's creation time in the `times` string.
pub const TIME_BYTES: usize = 8;

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's length normalisation.
const B: f64 = 0.75;

/// The most hits one page returns.
pub const MAX_PAGE: usize = 1000;

/// The terms of a text, in order, with repeats (see the module docs).
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.unicode_words()
        .map(caseless::default_case_fold_str)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TERM_BYTES)
}

/// A finding as the index sees it: weighted term counts and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocTerms {
    /// Term → weight (capped at 255 when stored).
    pub terms: BTreeMap<String, u32>,
    /// The sum of the weights: the document's length for BM25.
    pub length: u32,
}

impl DocTerms {
    /// Tokenises a finding's title, body and tags.
    pub fn of(finding: &Finding) -> Self {
        let mut terms: BTreeMap<String, u32> = BTreeMap::new();
        let mut add = |text: &str, w: u32| {
            for t in tokens(text) {
                let e = terms.entry(t).or_insert(0);
                *e = e.saturating_add(w);
            }
        };
        add(&finding.title, TITLE_WEIGHT);
        add(&finding.body, 1);
        for tag in &finding.tags {
            add(tag, TAG_WEIGHT);
        }
        let length = terms.values().fold(0u32, |a, w| a.saturating_add(*w));
        Self { terms, length }
    }

    /// The length norm byte stored in every posting of this document.
    pub fn norm(&self) -> u8 {
        encode_norm(self.length)
    }
}

/// A document length as one byte, logarithmically (about 4 % precision):
/// `round(ln(1 + len) × 24)`, capped at 255.
pub fn encode_norm(length: u32) -> u8 {
    let code = (f64::from(length).ln_1p() * 24.0).round();
    if code >= 255.0 { 255 } else { code as u8 }
}

/// The document length a norm byte stands for.
pub fn decode_norm(norm: u8) -> f64 {
    (f64::from(norm) / 24.0).exp_m1()
}

/// One posting's bytes.
pub fn posting(doc: u32, weight: u32, norm: u8) -> [u8; POSTING_BYTES] {
    let d = doc.to_be_bytes();
    let w = u8::try_from(weight).unwrap_or(u8::MAX);
    [d[0], d[1], d[2], d[3], w, norm]
}

/// The name of the filter list of one tag, session or worker (the Redis
/// bus's key suffix): `g:`, `s:` or `w:` and the value in lower-case hex, so
/// that no value can shape a key.
pub fn filter_name(kind: FilterKind, value: &str) -> String {
    let mut out = String::with_capacity(2 + value.len() * 2);
    out.push_str(match kind {
        FilterKind::Tag => "g:",
        FilterKind::Session => "s:",
        FilterKind::Worker => "w:",
    });
    for b in value.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What a filter list selects by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// A tag, exactly as written.
    Tag,
    /// A session id.
    Session,
    /// A worker id.
    Worker,
}

/// The filter lists a finding belongs to.
pub fn filter_names(finding: &Finding) -> Vec<String> {
    let mut out = Vec::with_capacity(finding.tags.len() + 2);
    out.push(filter_name(FilterKind::Session, finding.session.as_str()));
    out.push(filter_name(FilterKind::Worker, finding.worker.as_str()));
    for tag in &finding.tags {
        out.push(filter_name(FilterKind::Tag, tag));
    }
    out
}

/// Whether a query needs every term or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// Every query term must occur (the default).
    #[default]
    All,
    /// One query term is enough; more rank higher.
    Any,
}

/// A search or a listing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchQuery {
    /// Words to look for; `None` lists (newest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Every term or any.
    #[serde(default)]
    pub mode: MatchMode,
    /// Only findings with this tag (exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Only this session's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Only this worker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    /// Made at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Made before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Archived findings too.
    #[serde(default)]
    pub include_archived: bool,
    /// Hits per page (1 to [`MAX_PAGE`]; default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Where the previous page ended ([`SearchPage::next_cursor`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl SearchQuery {
    /// Findings matching `text`.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Every finding, newest first.
    pub fn listing() -> Self {
        Self::default()
    }

    /// Sets the match mode.
    pub fn mode(mut self, mode: MatchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Only findings with this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only this session's findings.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// Only this worker's findings.
    pub fn worker(mut self, worker: WorkerId) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Made in `[since, until)`.
    pub fn between(mut self, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// Archived findings too.
    pub fn include_archived(mut self, yes: bool) -> Self {
        self.include_archived = yes;
        self
    }

    /// Hits per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues after a page.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// The query's distinct terms (empty for a listing).
    pub fn terms(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.text
            .as_deref()
            .map(|t| tokens(t).filter(|t| seen.insert(t.clone())).collect())
            .unwrap_or_default()
    }

    /// The filter lists a hit must be in.
    pub fn filter_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = self.tag.as_deref() {
            out.push(filter_name(FilterKind::Tag, t));
        }
        if let Some(s) = &self.session {
            out.push(filter_name(FilterKind::Session, s.as_str()));
        }
        if let Some(w) = &self.worker {
            out.push(filter_name(FilterKind::Worker, w.as_str()));
        }
        out
    }

    /// Whether a time filter is set (the ranking then needs `times`).
    pub fn needs_times(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// The page size, checked.
    pub fn page_size(&self) -> Result<usize> {
        match self.limit {
            None => Ok(20),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(Error::InvalidInput {
                field: "limit",
                reason: format!("{n} is not 1 to {MAX_PAGE}"),
            }),
        }
    }
}

/// One hit: the finding and, for a search, its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The finding.
    pub id: FindingId,
    /// BM25 score (`None` in a listing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// One page of hits, best (or newest) first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    /// This page's hits.
    pub hits: Vec<SearchHit>,
    /// How many findings match in all.
    pub total: u64,
    /// Pass as [`SearchQuery::cursor`] for the next page; `None` on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What [`FindingIndex::check_index`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexReport {
    /// Findings in the store (active and archived).
    pub findings: u64,
    /// Findings the index holds as live documents.
    pub indexed: u64,
    /// In the store, not in the index.
    pub missing: Vec<FindingId>,
    /// In the index with other content or another archived state.
    pub stale: Vec<FindingId>,
    /// Live index documents whose finding is gone.
    pub orphaned: Vec<FindingId>,
    /// Retired documents (deleted, replaced) whose postings a repair has
    /// not compacted yet.
    pub dead_postings: u64,
    /// Whether this call repaired what it found.
    pub repaired: bool,
}

impl IndexReport {
    /// Whether index and store agree.
    pub fn is_consistent(&self) -> bool {
        self.missing.is_empty() && self.stale.is_empty() && self.orphaned.is_empty()
    }
}

/// Ranked, filtered, paged search over the findings, through an index kept
/// at write time (see the [module docs](self)).
#[async_trait]
pub trait FindingIndex: Send + Sync {
    /// One page of the findings matching `query`: ranked by BM25 with text,
    /// newest first without. Cost: the matching postings and the page.
    async fn search_findings(&self, query: &SearchQuery) -> Result<SearchPage>;

    /// Compares the index with the findings; with `repair`, fixes what
    /// differs (indexes the missing and stale, drops the orphaned, compacts
    /// dead postings).
    async fn check_index(&self, repair: bool) -> Result<IndexReport>;
}

/// Whether bit `doc` is set.
pub fn bit(bits: &[u8], doc: u32) -> bool {
    bits.get((doc / 8) as usize)
        .is_some_and(|b| b & (0x80 >> (doc % 8)) != 0)
}

/// Sets or clears bit `doc`, growing the bitmap.
pub fn set_bit(bits: &mut Vec<u8>, doc: u32, on: bool) {
    let i = (doc / 8) as usize;
    if bits.len() <= i {
        bits.resize(i + 1, 0);
    }
    let mask = 0x80 >> (doc % 8);
    if on {
        bits[i] |= mask;
    } else {
        bits[i] &= !mask;
    }
}

/// What the ranking reads: counts, bitmaps and (with a time filter) the
/// creation times, borrowed from wherever the bus keeps them.
#[derive(Debug, Clone, Copy)]
pub struct IndexView<'a> {
    /// Live documents.
    pub live_docs: u64,
    /// Sum of the live documents' lengths.
    pub total_len: u64,
    /// Live bitmap.
    pub live: &'a [u8],
    /// Archived bitmap.
    pub archived: &'a [u8],
    /// Creation times from document 0 (only needed with a time filter).
    pub times: &'a [u8],
}

impl IndexView<'_> {
    fn time_of(&self, doc: u32) -> Option<i64> {
        let at = doc as usize * TIME_BYTES;
        let b = self.times.get(at..at + TIME_BYTES)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }

    fn admits(&self, q: &SearchQuery, doc: u32, filters: &[Vec<u32>]) -> bool {
        if !bit(self.live, doc) || (!q.include_archived && bit(self.archived, doc)) {
            return false;
        }
        if q.needs_times() {
            let Some(ms) = self.time_of(doc) else {
                return false;
            };
            if q.since.is_some_and(|s| ms < s.timestamp_millis())
                || q.until.is_some_and(|u| ms >= u.timestamp_millis())
            {
                return false;
            }
        }
        filters.iter().all(|f| f.binary_search(&doc).is_ok())
    }
}

/// A filter list's document numbers, sorted (writers that run at once may
/// append their batches out of order).
fn sorted_list(list: &[u8]) -> Vec<u32> {
    let mut docs: Vec<u32> = list
        .chunks_exact(4)
        .map(|e| u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
        .collect();
    docs.sort_unstable();
    docs.dedup();
    docs
}

/// A position in a result order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cursor {
    /// After this score and document (search).
    Scored(f64, u32),
    /// After (below) this document (listing).
    Doc(u32),
}

fn parse_cursor(c: &str) -> Result<Cursor> {
    let bad = || Error::InvalidInput {
        field: "cursor",
        reason: "not one this index gave; start without a cursor".into(),
    };
    if let Some(d) = c.strip_prefix('d') {
        return d.parse().map(Cursor::Doc).map_err(|_| bad());
    }
    let rest = c.strip_prefix('s').ok_or_else(bad)?;
    let (score, doc) = rest.split_once('.').ok_or_else(bad)?;
    let score = u64::from_str_radix(score, 16).map_err(|_| bad())?;
    Ok(Cursor::Scored(
        f64::from_bits(score),
        doc.parse().map_err(|_| bad())?,
    ))
}

fn show_cursor(c: Cursor) -> String {
    match c {
        Cursor::Doc(d) => format!("d{d}"),
        Cursor::Scored(s, d) => format!("s{:x}.{d}", s.to_bits()),
    }
}

/// A ranked page of document numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedPage {
    /// (document, score) best first; score `None` in a listing.
    pub hits: Vec<(u32, Option<f64>)>,
    /// Matches in all.
    pub total: u64,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Each posting's document and BM25 term score before the idf factor.
fn term_scores(p: &[u8], avg: f64) -> impl Iterator<Item = (u32, f64)> + '_ {
    p.chunks_exact(POSTING_BYTES).map(move |e| {
        let doc = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let tf = f64::from(e[4]);
        let dl = decode_norm(e[5]);
        (doc, tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * dl / avg)))
    })
}

/// Ranks a search: `postings` holds each query term's postings (empty when
/// the term is unknown), `filters` each filter list the query names.
pub fn rank(
    view: &IndexView<'_>,
    query: &SearchQuery,
    postings: &[&[u8]],
    filters: &[&[u8]],
) -> Result<RankedPage> {
    let size = query.page_size()?;
    let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let filters: Vec<Vec<u32>> = filters.iter().map(|f| sorted_list(f)).collect();
    let filters = filters.as_slice();
    let n = view.live_docs.max(1) as f64;
    let avg = (view.total_len as f64 / n).max(1.0);
    let need = match query.mode {
        MatchMode::All => postings.len(),
        MatchMode::Any => 1,
    };
    if postings.is_empty() || postings.iter().any(|p| p.is_empty()) && need > 1 {
        return Ok(RankedPage {
            hits: Vec::new(),
            total: 0,
            next_cursor: None,
        });
    }
    let idf = |p: &[u8]| {
        let df = (p.len() / POSTING_BYTES) as f64;
        (1.0 + (n - df + 0.5).max(0.0) / (df + 0.5)).ln()
    };
    let entries = |p| term_scores(p, avg);
    let mut hits: Vec<(f64, u32)> = if let [only] = postings {
        // One term: no accumulation.
        let w = idf(only);
        entries(only)
            .filter(|(doc, _)| view.admits(query, *doc, filters))
            .map(|(doc, s)| (w * s, doc))
            .collect()
    } else {
        let mut order: Vec<&[u8]> = postings.to_vec();
        let mut acc: HashMap<u32, (f64, usize)> = HashMap::new();
        if query.mode == MatchMode::All {
            // Every term needed: candidates come from the rarest term, the
            // others only add to them.
            order.sort_by_key(|p| p.len());
        }
        for (i, p) in order.iter().enumerate() {
            let w = idf(p);
            let seed = i == 0 || query.mode == MatchMode::Any;
            if i == 0 {
                acc.reserve(p.len() / POSTING_BYTES);
            }
            for (doc, s) in entries(p) {
                if seed {
                    let slot = acc.entry(doc).or_insert((0.0, 0));
                    slot.0 += w * s;
                    slot.1 += 1;
                } else if let Some(slot) = acc.get_mut(&doc) {
                    slot.0 += w * s;
                    slot.1 += 1;
                }
            }
        }
        acc.into_iter()
            .filter(|(doc, (_, seen))| *seen >= need && view.admits(query, *doc, filters))
            .map(|(doc, (s, _))| (s, doc))
            .collect()
    };
    let total = hits.len() as u64;
    let order = |a: &(f64, u32), b: &(f64, u32)| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1));
    if let Some(Cursor::Scored(s, d)) = after {
        hits.retain(|h| order(&(s, d), h).is_lt());
    } else if after.is_some() {
        return Err(Error::InvalidInput {
            field: "cursor",
            reason: "a listing's cursor given to a search".into(),
        });
    }
    let more = hits.len() > size;
    if more {
        hits.select_nth_unstable_by(size, order);
        hits.truncate(size);
    }
    hits.sort_by(order);
    let next_cursor = more
        .then(|| {
            hits.last()
                .map(|(s, d)| show_cursor(Cursor::Scored(*s, *d)))
        })
        .flatten();
    Ok(RankedPage {
        hits: hits.into_iter().map(|(s, d)| (d, Some(s))).collect(),
        total,
        next_cursor,
    })
}

/// A listing, newest document first. With filters it walks the shortest
/// filter list; without, the live bitmap from the top. `docs`: documents
/// numbered so far.
pub fn list(
    view: &IndexView<'_>,
    query: &SearchQuery,
    filters: &[&[u8]],
    docs: u32,
) -> Result<RankedPage> {
    let size = query.page_size()?;
    let filters: Vec<Vec<u32>> = filters.iter().map(|f| sorted_list(f)).collect();
    let filters = filters.as_slice();
    let start = match query.cursor.as_deref().map(parse_cursor).transpose()? {
        None => docs,
        Some(Cursor::Doc(d)) => d,
        Some(Cursor::Scored(..)) => {
            return Err(Error::InvalidInput {
                field: "cursor",
                reason: "a search's cursor given to a listing".into(),
            });
        }
    };
    let mut hits = Vec::with_capacity(size);
    let mut next_cursor = None;
    let mut total = 0u64;
    let counted = !filters.is_empty() || query.needs_times();
    let mut take = |doc: u32, hits: &mut Vec<(u32, Option<f64>)>| {
        if doc >= start || !view.admits(query, doc, filters) {
            return true;
        }
        if hits.len() == size {
            next_cursor = hits.last().map(|(d, _)| show_cursor(Cursor::Doc(*d)));
            return counted;
        }
        hits.push((doc, None));
        true
    };
    if let Some(shortest) = filters.iter().min_by_key(|f| f.len()) {
        for &doc in shortest.iter().rev() {
            if view.admits(query, doc, filters) {
                total += 1;
            }
            if !take(doc, &mut hits) {
                break;
            }
        }
    } else {
        for doc in (0..docs).rev() {
            if counted && view.admits(query, doc, filters) {
                total += 1;
            }
            if !take(doc, &mut hits) {
                break;
            }
        }
    }
    if !counted {
        // Without filters every admitted live document counts.
        total = if query.include_archived {
            view.live.iter().map(|b| u64::from(b.count_ones())).sum()
        } else {
            view.live_docs_active()
        };
    }
    Ok(RankedPage {
        hits,
        total,
        next_cursor,
    })
}

impl IndexView<'_> {
    fn live_docs_active(&self) -> u64 {
        self.live
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let a = self.archived.get(i).copied().unwrap_or(0);
                u64::from((b & !a).count_ones())
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokeniser_splits_at_word_boundaries_and_folds_case() {
        let t: Vec<String> = tokens("Straße, DON'T panic: ΣΊΣΥΦΟΣ v3.5 snake_case!").collect();
        assert_eq!(
            t,
            ["strasse", "don't", "panic", "σίσυφοσ", "v3.5", "snake_case"]
        );
    }

    #[test]
    fn norms_round_trip_within_a_few_percent() {
        for len in [1u32, 10, 100, 1000, 10_000] {
            let back = decode_norm(encode_norm(len));
            assert!(
                (back - f64::from(len)).abs() / f64::from(len) < 0.05,
                "{len}"
            );
        }
    }

    #[test]
    fn a_cursor_round_trips() {
        let c = Cursor::Scored(1.25, 7);
        assert_eq!(parse_cursor(&show_cursor(c)).ok(), Some(c));
        assert!(parse_cursor("x1").is_err());
    }
}
