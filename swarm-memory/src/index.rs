//! [`MemoryIndex`]: the in-memory bus's findings index, in the layout the
//! Redis bus stores (`swarmbus_core::search`), ranked by core's BM25.

use std::collections::HashMap;

use swarmbus_core::search::{
    DocTerms, IndexView, POSTING_BYTES, SearchHit, SearchPage, SearchQuery, bit, filter_names,
    list, posting, rank, set_bit,
};
use swarmbus_core::{Finding, FindingId, Result};

/// The index in memory ([`crate::MemoryBus`]'s), in the same layout the
/// Redis bus stores.
#[derive(Debug, Default, Clone)]
pub struct MemoryIndex {
    ids: Vec<FindingId>,
    lengths: Vec<u32>,
    nums: HashMap<FindingId, u32>,
    postings: HashMap<String, Vec<u8>>,
    filters: HashMap<String, Vec<u8>>,
    live: Vec<u8>,
    archived: Vec<u8>,
    times: Vec<u8>,
    live_docs: u64,
    total_len: u64,
    dead: u64,
}

impl MemoryIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes a finding as a new document; a live document of the same id
    /// is retired first.
    pub fn add(&mut self, finding: &Finding, archived: bool) {
        self.remove(&finding.id);
        let doc = self.ids.len() as u32;
        let terms = DocTerms::of(finding);
        let norm = terms.norm();
        for (t, w) in &terms.terms {
            self.postings
                .entry(t.clone())
                .or_default()
                .extend_from_slice(&posting(doc, *w, norm));
        }
        for f in filter_names(finding) {
            self.filters
                .entry(f)
                .or_default()
                .extend_from_slice(&doc.to_be_bytes());
        }
        self.times
            .extend_from_slice(&finding.created_at.timestamp_millis().to_be_bytes());
        set_bit(&mut self.live, doc, true);
        set_bit(&mut self.archived, doc, archived);
        self.ids.push(finding.id.clone());
        self.lengths.push(terms.length);
        self.nums.insert(finding.id.clone(), doc);
        self.live_docs += 1;
        self.total_len += u64::from(terms.length);
    }

    /// Retires the live document of `id`; returns whether there was one.
    pub fn remove(&mut self, id: &FindingId) -> bool {
        let Some(doc) = self.nums.remove(id) else {
            return false;
        };
        set_bit(&mut self.live, doc, false);
        self.live_docs -= 1;
        self.dead += 1;
        let len = self.lengths.get(doc as usize).copied().unwrap_or(0);
        self.total_len = self.total_len.saturating_sub(u64::from(len));
        true
    }

    /// Marks `id`'s document archived or not.
    pub fn set_archived(&mut self, id: &FindingId, archived: bool) {
        if let Some(doc) = self.nums.get(id) {
            set_bit(&mut self.archived, *doc, archived);
        }
    }

    /// The live document of `id`, and whether it is archived.
    pub fn state_of(&self, id: &FindingId) -> Option<bool> {
        self.nums.get(id).map(|d| bit(&self.archived, *d))
    }

    /// Ids with live documents.
    pub fn live_ids(&self) -> impl Iterator<Item = &FindingId> {
        self.nums.keys()
    }

    /// Retired documents whose postings are not compacted yet.
    pub fn dead_postings(&self) -> u64 {
        self.dead
    }

    /// Drops the postings of dead documents.
    pub fn compact(&mut self) {
        self.dead = 0;
        let live = &self.live;
        let keep = |doc: u32| bit(live, doc);
        self.postings.retain(|_, p| {
            let kept: Vec<u8> = p
                .chunks_exact(POSTING_BYTES)
                .filter(|e| keep(u32::from_be_bytes([e[0], e[1], e[2], e[3]])))
                .flatten()
                .copied()
                .collect();
            *p = kept;
            !p.is_empty()
        });
        self.filters.retain(|_, l| {
            let kept: Vec<u8> = l
                .chunks_exact(4)
                .filter(|e| keep(u32::from_be_bytes([e[0], e[1], e[2], e[3]])))
                .flatten()
                .copied()
                .collect();
            *l = kept;
            !l.is_empty()
        });
    }

    /// Runs a query, returning finding ids.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        let view = IndexView {
            live_docs: self.live_docs,
            total_len: self.total_len,
            live: &self.live,
            archived: &self.archived,
            times: &self.times,
        };
        let filter_names = query.filter_names();
        let filters: Vec<&[u8]> = filter_names
            .iter()
            .map(|f| self.filters.get(f).map_or(&[][..], Vec::as_slice))
            .collect();
        if filters.iter().any(|f| f.is_empty()) {
            return Ok(SearchPage {
                hits: Vec::new(),
                total: 0,
                next_cursor: None,
            });
        }
        let ranked = if query.text.is_some() {
            let terms = query.terms();
            let postings: Vec<&[u8]> = terms
                .iter()
                .map(|t| self.postings.get(t).map_or(&[][..], Vec::as_slice))
                .collect();
            rank(&view, query, &postings, &filters)?
        } else {
            list(&view, query, &filters, self.ids.len() as u32)?
        };
        Ok(SearchPage {
            hits: ranked
                .hits
                .into_iter()
                .filter_map(|(d, score)| {
                    self.ids.get(d as usize).map(|id| SearchHit {
                        id: id.clone(),
                        score,
                    })
                })
                .collect(),
            total: ranked.total,
            next_cursor: ranked.next_cursor,
        })
    }
}
