//! Turning findings into an answer, for the coordinator's synthesis and
//! the librarian alike: the one citation check ([`check_citations`]:
//! every id an answer cites must be a finding it was given), and the one
//! offline extractive answer ([`extractive_answer`]: findings quoted with
//! their ids, nothing invented), with the BM25 relevance it ranks by.

use std::collections::{BTreeSet, HashMap, HashSet};

use swarmbus_core::Finding;
use swarmbus_core::keys::FindingId;

/// Which cited text that names none of the given findings is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strangers {
    /// Every such entry (a list of ids, each meant as a citation).
    All,
    /// Only uuid-shaped text (prose, where `[1]` is a footnote, not a
    /// citation).
    Uuids,
}

/// The one citation check: the `candidates` that name one of `given`, in
/// order of first appearance and without repeats. A candidate naming no
/// given finding is returned in the error when `strangers` refuses it (an
/// answer citing a finding it was not shown is refused, never trusted), and
/// skipped otherwise.
pub fn check_citations<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    given: &[FindingId],
    strangers: Strangers,
) -> Result<Vec<FindingId>, Vec<String>> {
    let mut cited: Vec<FindingId> = Vec::new();
    let mut unknown = Vec::new();
    for c in candidates {
        match given.iter().find(|g| g.as_str() == c) {
            Some(id) => {
                if !cited.contains(id) {
                    cited.push(id.clone());
                }
            }
            None => {
                let refused = match strangers {
                    Strangers::All => true,
                    Strangers::Uuids => c.len() == 36 && uuid::Uuid::try_parse(c).is_ok(),
                };
                if refused {
                    unknown.push(c.to_owned());
                }
            }
        }
    }
    if unknown.is_empty() {
        Ok(cited)
    } else {
        Err(unknown)
    }
}

/// The finding ids an answer's prose cites: every `[id]` in brackets,
/// through [`check_citations`] with [`Strangers::Uuids`] (a bracketed uuid
/// not among `given` is refused; other bracketed text such as `[1]` is not
/// a citation).
pub fn cited_ids(text: &str, given: &[FindingId]) -> Result<Vec<FindingId>, Vec<String>> {
    let bracketed = text
        .split('[')
        .skip(1)
        .filter_map(|part| part.split_once(']').map(|(inside, _)| inside.trim()));
    check_citations(bracketed, given, Strangers::Uuids)
}

/// Which findings the extractive answer quotes, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pick {
    /// Every finding, in order: its title and the first line of its body
    /// (the coordinator's offline synthesis of a goal).
    Every,
    /// The most relevant findings by BM25 (at most this many, at least
    /// one; only those sharing a term with the question): each with the
    /// sentence sharing the most terms with the question (the librarian's
    /// offline answer).
    MostRelevant(usize),
}

/// An extractive answer: its text and the findings it quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extract {
    /// The answer; its first line says no model wrote it.
    pub text: String,
    /// The ids of the findings quoted, in the order quoted (empty when
    /// [`Pick::MostRelevant`] found no relevant finding).
    pub citations: Vec<FindingId>,
}

/// The one offline extractive answer to `question` from `findings`: the
/// findings `pick` chooses, each quoted with its id. Nothing is invented.
pub fn extractive_answer(question: &str, findings: &[Finding], pick: Pick) -> Extract {
    match pick {
        Pick::Every => {
            let mut text =
                format!("Extractive summary (offline: no model wrote this) for: {question}\n");
            for f in findings {
                let first = f.body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                text.push_str(&format!(
                    "- {}: {} [{}]\n",
                    f.title,
                    crate::error::cut(first.trim(), 300),
                    f.id
                ));
            }
            if findings.is_empty() {
                text.push_str("- no findings were written\n");
            }
            Extract {
                text,
                citations: findings.iter().map(|f| f.id.clone()).collect(),
            }
        }
        Pick::MostRelevant(top) => {
            let query: BTreeSet<String> = terms(question).into_iter().collect();
            let mut text =
                String::from("Extractive answer (no model): the most relevant findings.\n");
            let mut citations = Vec::new();
            let ranked = rank(question, findings)
                .into_iter()
                .filter(|(_, s)| *s > 0.0)
                .take(top.max(1));
            for (n, (i, _)) in ranked.enumerate() {
                let Some(f) = findings.get(i) else { continue };
                let quote = best_quote(&query, &f.body);
                let quote = if quote.is_empty() {
                    f.title.clone()
                } else {
                    quote
                };
                text.push_str(&format!(
                    "{}. [{}] {} (session {}): \"{}\"\n",
                    n + 1,
                    f.id,
                    f.title,
                    f.session,
                    quote
                ));
                citations.push(f.id.clone());
            }
            Extract {
                text: text.trim_end().to_owned(),
                citations,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Relevance

const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "by", "can", "did", "do", "does",
    "for", "from", "has", "have", "how", "i", "in", "is", "it", "its", "of", "on", "or", "our",
    "so", "that", "the", "their", "there", "this", "to", "was", "we", "were", "what", "when",
    "where", "which", "who", "why", "will", "with", "you",
];

/// Lower-case word terms without stopwords.
fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| {
            (w.chars().count() > 1 || w.chars().all(char::is_numeric))
                && !STOPWORDS.contains(&w.as_str())
        })
        .collect()
}

fn finding_terms(f: &Finding) -> Vec<String> {
    // The title and tags count twice: they say what the finding is about.
    let mut t = terms(&f.title);
    t.extend(terms(&f.title));
    for tag in &f.tags {
        t.extend(terms(tag));
        t.extend(terms(tag));
    }
    t.extend(terms(&f.body));
    t
}

/// BM25 scores of the findings for `question`, best first (ties: newer
/// first); `(index, score)`.
pub(crate) fn rank(question: &str, findings: &[Finding]) -> Vec<(usize, f64)> {
    let query: BTreeSet<String> = terms(question).into_iter().collect();
    let docs: Vec<Vec<String>> = findings.iter().map(finding_terms).collect();
    let n = docs.len() as f64;
    let avg = (docs.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0)).max(1.0);
    let mut df: HashMap<&str, usize> = HashMap::new();
    for d in &docs {
        let uniq: HashSet<&str> = d.iter().map(String::as_str).collect();
        for t in uniq {
            if query.contains(t) {
                *df.entry(t).or_default() += 1;
            }
        }
    }
    let (k1, b) = (1.2, 0.75);
    let mut scored: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut tf: HashMap<&str, usize> = HashMap::new();
            for t in d {
                if query.contains(t.as_str()) {
                    *tf.entry(t.as_str()).or_default() += 1;
                }
            }
            let len = d.len() as f64;
            let score = tf
                .iter()
                .map(|(t, &f)| {
                    let dfi = df.get(t).copied().unwrap_or(0) as f64;
                    let idf = ((n - dfi + 0.5) / (dfi + 0.5) + 1.0).ln();
                    let f = f as f64;
                    idf * f * (k1 + 1.0) / (f + k1 * (1.0 - b + b * len / avg))
                })
                .sum();
            (i, score)
        })
        .collect();
    scored.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| findings[b.0].created_at.cmp(&findings[a.0].created_at))
    });
    scored
}

/// The sentence of `text` sharing the most terms with the question.
fn best_quote(question: &BTreeSet<String>, text: &str) -> String {
    const MAX: usize = 300;
    let sentences = text
        .split_inclusive(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let best = sentences
        .map(|s| {
            let hits = terms(s).iter().filter(|t| question.contains(*t)).count();
            (hits, s)
        })
        .fold(None::<(usize, &str)>, |acc, (h, s)| match acc {
            Some((bh, _)) if bh >= h => acc,
            _ => Some((h, s)),
        })
        .map(|(_, s)| s)
        .unwrap_or("");
    let mut q: String = best.chars().take(MAX).collect();
    if best.chars().count() > MAX {
        q.push('…');
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmbus_core::{SessionId, WorkerId};

    #[test]
    fn citations_must_be_findings_the_answer_was_given() {
        let (a, b) = (FindingId::random(), FindingId::random());
        let text = format!("Redis is fast [{a}] and [{b}], again [{a}].");
        let given = [a.clone(), b.clone()];
        assert_eq!(cited_ids(&text, &given).unwrap(), vec![a.clone(), b]);
        let stranger = FindingId::random();
        let bad = format!("see [{stranger}]");
        assert_eq!(
            cited_ids(&bad, std::slice::from_ref(&a)).unwrap_err(),
            vec![stranger.to_string()]
        );
        assert!(cited_ids("no ids here [1]", &[a]).unwrap().is_empty());
        let named = FindingId::new("session10-cost").unwrap();
        assert_eq!(
            cited_ids("see [session10-cost]", std::slice::from_ref(&named)).unwrap(),
            vec![named]
        );
    }

    #[test]
    fn the_extractive_answer_cites_every_finding_and_says_it_is_offline() {
        let f = Finding::new(
            WorkerId::new("w").unwrap(),
            SessionId::new("s").unwrap(),
            "3 crates",
            "\ncore, redis, cost\nmore",
        );
        let s = extractive_answer("summarise", std::slice::from_ref(&f), Pick::Every).text;
        assert!(s.starts_with("Extractive summary (offline"));
        assert!(s.contains(&format!("- 3 crates: core, redis, cost [{}]", f.id)));
        assert_eq!(
            cited_ids(&s, std::slice::from_ref(&f.id)).unwrap(),
            vec![f.id.clone()]
        );
    }
}
