//! Turning findings into the answer to a goal: the citations an answer
//! makes (checked against the findings it was given), and the extractive
//! answer used offline (each finding's title and first line, cited).

use swarmbus_core::keys::FindingId;
use swarmbus_core::model::Finding;

/// The finding ids an answer cites, in order of first appearance: every
/// `[id]` in brackets that names one of `given`. A bracketed uuid that is
/// not among `given` is returned in the error: an answer citing a finding it
/// was not shown is refused, never trusted. Other bracketed text (`[1]`) is
/// not a citation.
pub fn cited_ids(text: &str, given: &[FindingId]) -> Result<Vec<FindingId>, Vec<String>> {
    let mut cited: Vec<FindingId> = Vec::new();
    let mut unknown = Vec::new();
    for part in text.split('[').skip(1) {
        let Some((inside, _)) = part.split_once(']') else {
            continue;
        };
        let inside = inside.trim();
        match given.iter().find(|g| g.as_str() == inside) {
            Some(id) => {
                if !cited.contains(id) {
                    cited.push(id.clone());
                }
            }
            None => {
                if inside.len() == 36 && uuid::Uuid::try_parse(inside).is_ok() {
                    unknown.push(inside.to_owned());
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
        let s = extractive_answer("summarise", std::slice::from_ref(&f));
        assert!(s.starts_with("Extractive summary (offline"));
        assert!(s.contains(&format!("- 3 crates: core, redis, cost [{}]", f.id)));
        assert_eq!(
            cited_ids(&s, std::slice::from_ref(&f.id)).unwrap(),
            vec![f.id.clone()]
        );
    }
}
