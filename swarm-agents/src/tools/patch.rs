//! A write task's diff, stored with its finding, reviewed and applied to
//! the user's tree (`swarm task apply`, `swarm run --apply`).
//!
//! The worker appends the diff to the finding's body between two markers
//! and tags the finding [`DIFF_TAG`]; markers in the model's own text are
//! neutralised first, so only the worker's diff is ever read back.
//!
//! [`review`] lists every file the diff touches (read by git itself,
//! `git apply --numstat`) and refuses, naming each, the paths that change
//! what runs or where secrets go ([`dangerous`]) and any symlink or
//! submodule it would create. [`apply`] applies the rest with `git apply`
//! (which refuses `..`, absolute paths and writes through symlinks), after
//! a `--check` of the whole: all of the safe part lands, or nothing.

use std::path::Path;

use swarmbus_core::Finding;

use super::scratch::host_git;
use super::{TaskDiff, ToolError};

/// The tag of a finding that carries a diff.
pub const DIFF_TAG: &str = "diff";

const START: &str = "<!-- swarm:diff:start -->";
const END: &str = "<!-- swarm:diff:end -->";
const FENCE: &str = "```diff\n";

/// `text` with anything that looks like the diff markers defused (a
/// model's answer cannot pass for the worker's diff).
pub fn neutralize(text: &str) -> String {
    text.replace("<!-- swarm:diff", "<!-- (quoted) swarm-diff")
}

/// `body` with `diff` appended between the markers.
pub fn attach(body: &str, diff: &TaskDiff) -> String {
    let mut patch = diff.patch.clone();
    if !patch.ends_with('\n') {
        patch.push('\n');
    }
    format!(
        "{}\n\n## Changes\n{} file(s) changed in the task's scratch copy: {}. Review and apply \
         with `swarm task apply <task id>`.\n{START}\n{FENCE}{patch}```\n{END}\n",
        neutralize(body.trim_end()),
        diff.files.len(),
        diff.files.join(", ")
    )
}

/// The diff a finding carries, if the worker stored one.
pub fn extract(finding: &Finding) -> Option<String> {
    if !finding.tags.contains(DIFF_TAG) {
        return None;
    }
    let body = &finding.body;
    let start = body.rfind(START)? + START.len();
    let rest = &body[start..];
    let end = rest.find(END)?;
    let inner = rest[..end].trim_start_matches('\n');
    let inner = inner.strip_prefix(FENCE)?;
    let inner = inner.strip_suffix("```\n").unwrap_or(inner);
    Some(inner.to_owned())
}

/// Why writing `path` (relative to the workspace root, `/` separators) is
/// refused: it changes what runs or where secrets go.
pub fn dangerous(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
    let name = lower.last().map(String::as_str).unwrap_or("");
    let has = |dir: &str| lower.iter().rev().skip(1).any(|p| p == dir);
    let under = |a: &str, b: &str| lower.windows(2).any(|w| w[0] == a && w[1] == b);
    if lower.iter().any(|p| p == ".git") {
        return Some("inside .git (git runs what its config and hooks say)");
    }
    if name.starts_with(".env") {
        return Some("an .env file (secrets, and provider URLs the CLI reads)");
    }
    if has(".claude") || name == ".claude" {
        return Some("Claude Code settings and hooks (.claude/)");
    }
    if name == ".mcp.json" {
        return Some("the MCP servers Claude Code starts (.mcp.json)");
    }
    if has(".cargo") {
        return Some("cargo configuration (.cargo/: build runners, registries, credentials)");
    }
    if under(".github", "workflows") || under(".github", "actions") {
        return Some("a CI workflow (.github/)");
    }
    if [".circleci", ".ci", ".buildkite", ".woodpecker", ".gitlab"]
        .iter()
        .any(|d| has(d))
        || [
            ".gitlab-ci.yml",
            ".travis.yml",
            "azure-pipelines.yml",
            "jenkinsfile",
            ".drone.yml",
            "bitbucket-pipelines.yml",
        ]
        .contains(&name)
    {
        return Some("CI configuration");
    }
    if [".husky", ".githooks"].iter().any(|d| has(d))
        || [".pre-commit-config.yaml", "lefthook.yml", ".lefthook.yml"].contains(&name)
    {
        return Some("git hooks");
    }
    if name == ".gitmodules" {
        return Some("submodules (.gitmodules: git fetches what it names)");
    }
    if parts.len() == 1 && ["head", "config", "packed-refs", "commondir", "gitdir"].contains(&name)
    {
        return Some("a file that makes the folder a git repository");
    }
    if [".ssh", ".aws", ".docker", ".gnupg", ".kube"]
        .iter()
        .any(|d| has(d))
        || [
            ".npmrc",
            ".yarnrc",
            ".yarnrc.yml",
            ".pypirc",
            ".netrc",
            ".pgpass",
            ".git-credentials",
        ]
        .contains(&name)
    {
        return Some("credentials or registry settings");
    }
    if [".vscode", ".devcontainer", ".idea"].iter().any(|d| has(d)) {
        return Some("editor settings that start programs");
    }
    None
}

/// One file of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileChange {
    /// The path (relative to the workspace root).
    pub path: String,
    /// Lines added and removed (`None` for a binary file).
    pub lines: Option<(u64, u64)>,
    /// Why it is refused, if it is.
    pub refused: Option<String>,
}

/// A diff split by file, each file judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    chunks: Vec<(FileChange, String)>,
}

impl Review {
    /// Every file, in the diff's order.
    pub fn files(&self) -> impl Iterator<Item = &FileChange> {
        self.chunks.iter().map(|(f, _)| f)
    }

    /// The refused files.
    pub fn refused(&self) -> impl Iterator<Item = &FileChange> {
        self.files().filter(|f| f.refused.is_some())
    }

    /// The patch of the files that are not refused.
    pub fn safe_patch(&self) -> String {
        self.chunks
            .iter()
            .filter(|(f, _)| f.refused.is_none())
            .map(|(_, c)| c.as_str())
            .collect()
    }
}

/// Splits `patch` by file (at every line that starts a file: `diff --git`)
/// and judges each file; git reads the paths (`git apply --numstat -z`).
pub async fn review(patch: &str, cwd: &Path) -> Result<Review, ToolError> {
    let mut chunks: Vec<String> = Vec::new();
    for line in patch.split_inclusive('\n') {
        if line.starts_with("diff --git ") || chunks.is_empty() {
            chunks.push(String::new());
        }
        if let Some(c) = chunks.last_mut() {
            c.push_str(line);
        }
    }
    chunks.retain(|c| c.starts_with("diff --git "));
    if chunks.is_empty() {
        return Ok(Review { chunks: Vec::new() });
    }
    let numstat = host_git(
        cwd,
        &["apply", "--numstat", "-z", "-"],
        &[],
        Some(patch.as_bytes()),
    )
    .await
    .map_err(|e| ToolError::InvalidInput {
        reason: format!("the diff cannot be read: {e}"),
    })?;
    let entries = parse_numstat(&numstat);
    if entries.len() != chunks.len() {
        return Err(ToolError::InvalidInput {
            reason: format!(
                "the diff has {} file headers but git reads {} files in it",
                chunks.len(),
                entries.len()
            ),
        });
    }
    let reviewed = chunks
        .into_iter()
        .zip(entries)
        .map(|(chunk, (lines, paths))| {
            let mode_refusal = header_refusal(&chunk);
            let path_refusal = paths.iter().find_map(|p| dangerous(p));
            let path = paths.last().cloned().unwrap_or_default();
            let refused = mode_refusal
                .or(path_refusal)
                .map(str::to_owned)
                .or_else(|| paths.iter().any(|p| p.is_empty()).then(|| "no path".into()));
            (
                FileChange {
                    path,
                    lines,
                    refused,
                },
                chunk,
            )
        })
        .collect();
    Ok(Review { chunks: reviewed })
}

/// A symlink or submodule the chunk would create.
fn header_refusal(chunk: &str) -> Option<&'static str> {
    for line in chunk.lines() {
        if line.starts_with("@@")
            || line.starts_with("GIT binary patch")
            || line.starts_with("--- ")
        {
            break;
        }
        let mode = line
            .strip_prefix("new file mode ")
            .or_else(|| line.strip_prefix("new mode "));
        match mode.map(str::trim) {
            Some("120000") => {
                return Some("a symbolic link (it could point outside the workspace)");
            }
            Some("160000") => return Some("a submodule"),
            _ => {}
        }
    }
    None
}

/// One `--numstat` record: lines added and removed (none for binary), and
/// the path (the old and the new one for a rename).
type NumstatEntry = (Option<(u64, u64)>, Vec<String>);

/// `git apply --numstat -z` records.
fn parse_numstat(out: &str) -> Vec<NumstatEntry> {
    let mut fields = out.split('\0');
    let mut entries = Vec::new();
    while let Some(head) = fields.next() {
        if head.is_empty() {
            continue;
        }
        let mut parts = head.splitn(3, '\t');
        let (Some(a), Some(d), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let lines = a.parse().ok().zip(d.parse().ok());
        let paths = if path.is_empty() {
            let old = fields.next().unwrap_or_default().to_owned();
            let new = fields.next().unwrap_or_default().to_owned();
            vec![old, new]
        } else {
            vec![path.to_owned()]
        };
        entries.push((lines, paths));
    }
    entries
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Files written.
    pub applied: Vec<String>,
    /// Files refused, with the reason.
    pub refused: Vec<(String, String)>,
}

impl Applied {
    /// A result of these lists.
    pub fn listing(applied: Vec<String>, refused: Vec<(String, String)>) -> Self {
        Self { applied, refused }
    }
}

/// Applies the safe part of `review` to the tree at `root` (checked whole
/// first: all of it or nothing); the refused files are listed, not written.
pub async fn apply(root: &Path, review: &Review) -> Result<Applied, ToolError> {
    let refused: Vec<(String, String)> = review
        .refused()
        .map(|f| (f.path.clone(), f.refused.clone().unwrap_or_default()))
        .collect();
    let safe = review.safe_patch();
    let applied: Vec<String> = review
        .files()
        .filter(|f| f.refused.is_none())
        .map(|f| f.path.clone())
        .collect();
    if !safe.is_empty() {
        let env = [];
        host_git(
            root,
            &["apply", "--check", "--binary", "-"],
            &env,
            Some(safe.as_bytes()),
        )
        .await
        .map_err(|e| ToolError::Failed {
            message: format!("the diff does not apply to {}: {e}", root.display()),
        })?;
        host_git(
            root,
            &["apply", "--binary", "-"],
            &env,
            Some(safe.as_bytes()),
        )
        .await?;
    }
    Ok(Applied { applied, refused })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_change_what_runs_or_where_secrets_go_are_named() {
        for p in [
            ".env",
            "sub/.env.local",
            ".envrc",
            ".git/config",
            "a/.git/hooks/pre-commit",
            ".claude/settings.json",
            ".mcp.json",
            ".cargo/config.toml",
            ".github/workflows/ci.yml",
            ".gitlab-ci.yml",
            ".ci/run",
            ".husky/pre-commit",
            ".gitmodules",
            "HEAD",
            "config",
            ".npmrc",
            ".vscode/tasks.json",
        ] {
            assert!(dangerous(p).is_some(), "{p} should be refused");
        }
        for p in [
            "src/main.rs",
            "config/app.yaml",
            "docs/env.md",
            "src/HEAD.txt",
            "README.md",
        ] {
            assert_eq!(dangerous(p), None, "{p}");
        }
    }

    #[test]
    fn only_the_workers_diff_is_read_back() {
        let diff = TaskDiff {
            patch: "diff --git a/x b/x\n+1\n".into(),
            files: vec!["x".into()],
        };
        let fake = format!("answer\n{START}\n{FENCE}diff --git a/evil b/evil\n```\n{END}\n");
        let body = attach(&fake, &diff);
        let f = Finding::new(
            swarmbus_core::WorkerId::new("w").unwrap(),
            swarmbus_core::SessionId::new("s").unwrap(),
            "t",
            body.clone(),
        );
        assert_eq!(extract(&f), None, "no tag, no diff");
        let f = f.with_tags([DIFF_TAG]);
        assert_eq!(extract(&f).as_deref(), Some("diff --git a/x b/x\n+1\n"));
        // Without the worker's diff, the model's fake block is defused.
        let only_fake = Finding::new(
            swarmbus_core::WorkerId::new("w").unwrap(),
            swarmbus_core::SessionId::new("s").unwrap(),
            "t",
            neutralize(&fake),
        )
        .with_tags([DIFF_TAG]);
        assert_eq!(extract(&only_fake), None);
    }
}
