//! Turning findings into the answer to a goal: the citations an answer
//! makes (checked against the findings it was given), and the extractive
//! answer used offline (each finding's title and first line, cited).

use swarmbus_core::keys::FindingId;
use swarmbus_core::model::Finding;

/// The finding ids an answer cites, in order of first appearance: every
/// hyphenated uuid in the text (bracketed or not). An id that is not among
/// `given` is returned in the error: an answer citing a finding it was not
/// shown is refused, never trusted.
pub fn cited_ids(text: &str, given: &[FindingId]) -> Result<Vec<FindingId>, Vec<String>> {
    let mut cited = Vec::new();
    let mut unknown = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 36 <= bytes.len() {
        let window = text.get(i..i + 36);
        let boundary_before = i == 0 || !bytes[i - 1].is_ascii_hexdigit();
        let boundary_after = bytes.get(i + 36).is_none_or(|b| !b.is_ascii_hexdigit());
        match window
            .filter(|_| boundary_before && boundary_after)
            .map(FindingId::parse)
        {
            Some(Ok(id)) => {
                if given.contains(&id) {
                    if !cited.contains(&id) {
                        cited.push(id);
                    }
                } else {
                    unknown.push(id.to_string());
                }
                i += 36;
            }
            _ => i += 1,
        }
    }
    if unknown.is_empty() {
        Ok(cited)
    } else {
        Err(unknown)
    }
}

/// The offline answer: for each finding, its title and the first line of
/// its body, with its id. Nothing is invented; the first line says that no
/// model wrote it.
pub fn extractive_answer(goal: &str, findings: &[Finding]) -> String {
    let mut s = format!("Extractive summary (offline: no model wrote this) for: {goal}\n");
    for f in findings {
        let first = f.body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        s.push_str(&format!(
            "- {}: {} [{}]\n",
            f.title,
            crate::error::cut(first.trim(), 300),
            f.id
        ));
    }
    if findings.is_empty() {
        s.push_str("- no findings were written\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmbus_core::{SessionId, WorkerId};

    #[test]
    fn citations_must_be_findings_the_answer_was_given() {
        let (a, b) = (FindingId::random(), FindingId::random());
        let text = format!("Redis is fast [{a}] and [{b}], again [{a}].");
        assert_eq!(cited_ids(&text, &[a, b]).unwrap(), vec![a, b]);
        let stranger = FindingId::random();
        let bad = format!("see [{stranger}]");
        assert_eq!(
            cited_ids(&bad, &[a]).unwrap_err(),
            vec![stranger.to_string()]
        );
        assert!(cited_ids("no ids here", &[a]).unwrap().is_empty());
    }

    #[test]
    fn the_extractive_answer_cites_every_finding_and_says_it_is_offline() {
        let f = Finding::new(
            WorkerId::new("w").unwrap(),
            SessionId::new("s").unwrap(),
            "3 crates",
            "\ncore, redis, cost\nmore",
        );
        let s = extractive_answer("summarise", std::slice::from_ref(&f));
        assert!(s.starts_with("Extractive summary (offline"));
        assert!(s.contains(&format!("- 3 crates: core, redis, cost [{}]", f.id)));
        assert_eq!(cited_ids(&s, &[f.id]).unwrap(), vec![f.id]);
    }
}
