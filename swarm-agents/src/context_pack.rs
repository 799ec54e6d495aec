//! The findings a task depends on, packed into a token budget: the task's
//! `continues` finding, ids in its payload's `depends_on`, and findings with
//! a tag in `depends_on_tags`, newest first, whole findings only, until the
//! budget is spent.

use serde_json::Value;
use swarmbus_core::bus::FindingStore;
use swarmbus_core::finding::estimate_tokens;
use swarmbus_core::keys::FindingId;
use swarmbus_core::{Finding, FindingFilter, Task};

use crate::error::Result;

/// Findings packed for a prompt.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PackedFindings {
    /// The findings that fit, in the order they appear in the prompt.
    pub included: Vec<Finding>,
    /// Ids that were asked for but did not fit the budget.
    pub left_out: Vec<FindingId>,
    /// Ids asked for that do not exist.
    pub missing: Vec<FindingId>,
    /// Estimated tokens of the included findings.
    pub tokens: u64,
}

impl PackedFindings {
    /// The findings as prompt text, each headed by its id in brackets.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for f in &self.included {
            s.push_str(&format!("[{}] {}\n{}\n\n", f.id, f.title, f.body));
        }
        if !self.left_out.is_empty() {
            s.push_str(&format!(
                "({} more findings did not fit; use read_finding or search_findings.)\n",
                self.left_out.len()
            ));
        }
        s
    }
}

/// Loads and packs the findings `task` depends on within `budget_tokens`.
pub async fn pack_dependencies<B: FindingStore + ?Sized>(
    bus: &B,
    task: &Task,
    budget_tokens: u64,
) -> Result<PackedFindings> {
    let mut ids: Vec<FindingId> = task.continues.iter().cloned().collect();
    if let Some(Value::Array(list)) = task.payload.get("depends_on") {
        ids.extend(
            list.iter()
                .filter_map(Value::as_str)
                .filter_map(|s| FindingId::parse(s).ok()),
        );
    }
    let mut out = PackedFindings::default();
    let mut candidates = Vec::new();
    if !ids.is_empty() {
        for (id, f) in ids.iter().zip(bus.get_findings(&ids).await?) {
            match f {
                Some(f) => candidates.push(f),
                None => out.missing.push(id.clone()),
            }
        }
    }
    if let Some(Value::Array(tags)) = task.payload.get("depends_on_tags") {
        for tag in tags.iter().filter_map(Value::as_str) {
            let mut listing = bus.list_findings(&FindingFilter::all().tag(tag)).await?;
            listing
                .findings
                .sort_by_key(|f| std::cmp::Reverse(f.created_at));
            candidates.extend(listing.findings);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in candidates {
        if !seen.insert(f.id.clone()) {
            continue;
        }
        let cost = u64::from(estimate_tokens(&f.title)) + u64::from(estimate_tokens(&f.body));
        if out.tokens.saturating_add(cost) <= budget_tokens {
            out.tokens += cost;
            out.included.push(f);
        } else {
            out.left_out.push(f.id.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmbus_core::{SessionId, WorkerId};
    use swarmbus_memory::MemoryBus;

    #[tokio::test]
    async fn dependencies_by_id_and_tag_fit_the_budget_newest_first() {
        let bus = MemoryBus::new();
        let (w, s) = (WorkerId::new("w").unwrap(), SessionId::new("s").unwrap());
        let a = Finding::new(w.clone(), s.clone(), "a", "x".repeat(400));
        let base = chrono::Utc::now();
        let b = Finding::new(w.clone(), s.clone(), "b", "short")
            .with_tags(["redis"])
            .at(base);
        let c = Finding::new(w.clone(), s.clone(), "c", "y".repeat(4_000))
            .with_tags(["redis"])
            .at(base - chrono::Duration::seconds(5));
        for f in [&a, &b, &c] {
            bus.put_finding(f).await.unwrap();
        }
        let missing = FindingId::random();
        let task = Task::new(s, "k", "x").with_payload(serde_json::json!({
            "depends_on": [a.id.to_string(), missing.to_string()],
            "depends_on_tags": ["redis"],
        }));
        let p = pack_dependencies(&bus, &task, 200).await.unwrap();
        let got: Vec<&str> = p.included.iter().map(|f| f.title.as_str()).collect();
        assert_eq!(got, ["a", "b"]);
        assert_eq!(p.left_out, vec![c.id]);
        assert_eq!(p.missing, vec![missing]);
        assert!(p.render().contains(&format!("[{}] a", a.id)));
    }
}
