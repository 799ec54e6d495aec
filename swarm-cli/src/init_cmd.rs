//! `swarm init claude-code [DIR]`: makes a folder a swarm project for
//! Claude Code. Merges into what is there, never clobbering a user's
//! settings; a second run changes nothing; `--dry-run` shows the changes;
//! `--remove` takes out exactly what it added (the manifest
//! `.claude/swarm-init.json` says what that was).
//!
//! - `.mcp.json`: the `swarm` server (`swarm mcp`), no `env`: the server
//!   reads `REDIS_URL` from its environment or the folder's `.env`, so no
//!   password lands in a file meant to be committed.
//! - `.claude/agents/swarm-worker.md`: the worker subagent (`model: haiku`,
//!   a `tools:` list with the swarm tools, so they are loaded up front).
//! - `.claude/settings.json`: the hooks (`swarm hook <event>`) and the
//!   status line.
//! - with `--otel [ENDPOINT]`, `.claude/swarm-otel.json`: the `env` that makes
//!   Claude Code export its OpenTelemetry log events to `swarm otlp serve`,
//!   for `claude --settings .claude/swarm-otel.json` (Claude Code ignores
//!   those variables in a project's `.claude/settings.json`). A value the
//!   user set there for one of them is kept, and said.
//! - `CLAUDE.md`: the coordinator's section between markers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::ctx::fail;
use crate::prompt_cmd::WORKER_AGENT;

/// `swarm init`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum InitCmd {
    /// Set a folder up for Claude Code (default: this one).
    ClaudeCode(InitArgs),
}

/// Options of `swarm init claude-code`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The project folder.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Show what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Take out what an earlier run added.
    #[arg(long, conflicts_with = "dry_run")]
    remove: bool,
    /// Also make Claude Code export OpenTelemetry (log events, OTLP/HTTP
    /// JSON) to `swarm otlp serve` at ENDPOINT (default
    /// http://127.0.0.1:4318): writes .claude/swarm-otel.json, for `claude
    /// --settings .claude/swarm-otel.json`.
    #[arg(
        long,
        value_name = "ENDPOINT",
        num_args = 0..=1,
        default_missing_value = DEFAULT_OTEL_ENDPOINT,
        conflicts_with = "remove"
    )]
    otel: Option<String>,
}

/// Where `swarm otlp serve` listens by default.
const DEFAULT_OTEL_ENDPOINT: &str = "http://127.0.0.1:4318";

/// The `env` of `--otel`: telemetry on, log events over OTLP/HTTP JSON to
/// the endpoint, metrics off (the receiver books the `api_request` log
/// events; metric sums would only repeat them).
fn otel_env(endpoint: &str) -> [(&'static str, String); 5] {
    [
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1".to_owned()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
        ("OTEL_METRICS_EXPORTER", "none".to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
    ]
}

const HOOK_EVENTS: [&str; 7] = [
    "SubagentStart",
    "SubagentStop",
    "PreToolUse",
    "PostToolUse",
    "Stop",
    "SessionEnd",
    "UserPromptSubmit",
];
const BEGIN: &str =
    "<!-- swarm:begin (written by `swarm init claude-code`; `--remove` takes it out) -->";
const END: &str = "<!-- swarm:end -->";
const MANIFEST: &str = ".claude/swarm-init.json";
/// The settings file of `--otel` (for `claude --settings`).
const OTEL_SETTINGS: &str = ".claude/swarm-otel.json";

/// The swarm tools the worker gets loaded up front.
const WORKER_TOOLS: &str = "Read, Grep, Glob, Bash, mcp__swarm__put_finding, mcp__swarm__get_finding, mcp__swarm__search_findings, mcp__swarm__ask_librarian, mcp__swarm__claim_task, mcp__swarm__complete_task, mcp__swarm__fail_task, mcp__swarm__halt_swarm";

fn worker_definition() -> String {
    format!(
        "---\nname: {WORKER_AGENT}\ndescription: A swarm worker (Haiku). Give it one self-contained task: reading, searching, running commands, summarising. It stores every result as a finding and reports the finding ids.\nmodel: haiku\ntools: {WORKER_TOOLS}\n---\n\
You are a worker of a swarm that shares its findings through Redis.\n\n\
- Before you work, check what is known: mcp__swarm__search_findings, mcp__swarm__get_finding.\n\
- Store every result with mcp__swarm__put_finding (a one-line title, the facts in the body: numbers, paths, commands, sources; tags; your worker name when the coordinator gave you one).\n\
- If a step fails, or a swarm tool returns an error, stop: report what failed and at which step. Never retry silently.\n\
- End your reply with the ids of the findings you stored.\n"
    )
}

fn claude_md_section() -> String {
    format!(
        "{BEGIN}\n## Swarm coordinator\n\n\
You coordinate a swarm: you plan and decide; Haiku subagents do the legwork and share what they find through Redis.\n\n\
- Delegate by default: start each subagent with the `Agent` tool, `subagent_type: \"{WORKER_AGENT}\"`, `model: \"haiku\"` (an alias: never a full model id; the tool is `Agent`, not `Task`). Start independent subagents in one message so they run in parallel.\n\
- Every subagent stores each result with `put_finding` and reports the ids; read them with `search_findings` / `get_finding`, or ask `ask_librarian`.\n\
- Keep for yourself only strategy, architecture and judgements between unclear requirements; do not read large files yourself.\n\
- Failures stop work: if a subagent or a swarm tool fails, stop that line of work and tell the user; `halt_swarm` with what failed for a failure that must stop everyone.\n\
- The swarm's budget is enforced: when a new subagent is refused, finish with the findings you have and tell the user. `swarm_status` shows findings, workers and spend per tier against the 90 % worker target.\n\
{END}\n"
    )
}

/// One file's planned change.
struct Change {
    path: PathBuf,
    before: Option<String>,
    after: Option<String>,
}

fn read(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn json_object(path: &Path, text: Option<&str>) -> Result<Map<String, Value>, String> {
    match text {
        None => Ok(Map::new()),
        Some(t) if t.trim().is_empty() => Ok(Map::new()),
        Some(t) => match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(format!(
                "{} is not a JSON object; fix it by hand first",
                path.display()
            )),
            Err(e) => Err(format!(
                "{} is not valid JSON ({e}); fix it by hand first",
                path.display()
            )),
        },
    }
}

fn pretty(m: Map<String, Value>) -> String {
    let mut s = serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default();
    s.push('\n');
    s
}

fn hook_command(event: &str) -> String {
    format!("swarm hook {event}")
}

fn is_our_hook(entry: &Value) -> bool {
    entry["hooks"].as_array().is_some_and(|hs| {
        hs.iter().any(|h| {
            h["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("swarm hook "))
        })
    })
}

/// On `--remove`: the text a merged JSON file had before the first run, when
/// taking ours out gives back exactly its content (so its formatting returns).
fn original(manifest: &Map<String, Value>, rel: &str, now: &Map<String, Value>) -> Option<String> {
    let text = manifest.get("originals")?.get(rel)?.as_str()?;
    let was: Value = serde_json::from_str(text).ok()?;
    (was == Value::Object(now.clone())).then(|| text.to_owned())
}

/// What a run will do: the files' changes, and what to tell the user.
struct Plan {
    changes: Vec<Change>,
    /// Things kept as the user had them, in words.
    notes: Vec<String>,
}

fn plan(dir: &Path, remove: bool, otel: Option<&str>) -> Result<Plan, String> {
    let mut changes = Vec::new();
    let mut created = Vec::new();
    let mut notes = Vec::new();
    let manifest_path = dir.join(MANIFEST);
    let manifest = json_object(&manifest_path, read(&manifest_path)?.as_deref())?;
    let was_created = |rel: &str| {
        manifest
            .get("created")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(rel)))
    };

    // .mcp.json
    let path = dir.join(".mcp.json");
    let before = read(&path)?;
    let mut m = json_object(&path, before.as_deref())?;
    if remove {
        if let Some(Value::Object(servers)) = m.get_mut("mcpServers") {
            servers.remove("swarm");
        }
        let empty = m
            .get("mcpServers")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty);
        if empty {
            m.remove("mcpServers");
        }
        let after = if m.is_empty() && was_created(".mcp.json") {
            None
        } else {
            Some(original(&manifest, ".mcp.json", &m).unwrap_or_else(|| pretty(m)))
        };
        changes.push(Change {
            path,
            before,
            after,
        });
    } else {
        if before.is_none() {
            created.push(".mcp.json".to_owned());
        }
        let servers = m.entry("mcpServers").or_insert_with(|| json!({}));
        if let Value::Object(servers) = servers {
            servers
                .entry("swarm")
                .or_insert_with(|| json!({"type": "stdio", "command": "swarm", "args": ["mcp"]}));
        }
        changes.push(Change {
            path,
            before,
            after: Some(pretty(m)),
        });
    }

    // .claude/agents/swarm-worker.md
    let rel = format!(".claude/agents/{WORKER_AGENT}.md");
    let path = dir.join(&rel);
    let before = read(&path)?;
    if remove {
        let after = if before.as_deref() == Some(worker_definition().as_str())
            || (was_created(&rel) && before.is_some())
        {
            None
        } else {
            before.clone()
        };
        changes.push(Change {
            path,
            before,
            after,
        });
    } else if before.is_none() {
        created.push(rel);
        changes.push(Change {
            path,
            before,
            after: Some(worker_definition()),
        });
    }

    // .claude/settings.json
    let path = dir.join(".claude/settings.json");
    let before = read(&path)?;
    let mut m = json_object(&path, before.as_deref())?;
    let hooks = m.entry("hooks").or_insert_with(|| json!({}));
    if let Value::Object(hooks) = hooks {
        for event in HOOK_EVENTS {
            let list = hooks.entry(event).or_insert_with(|| json!([]));
            if let Value::Array(list) = list {
                if remove {
                    list.retain(|e| !is_our_hook(e));
                } else if !list.iter().any(is_our_hook) {
                    let hook = json!([{"type": "command", "command": hook_command(event)}]);
                    list.push(if event.ends_with("ToolUse") {
                        json!({"matcher": "*", "hooks": hook})
                    } else {
                        json!({"hooks": hook})
                    });
                }
            }
        }
        hooks.retain(|_, v| !v.as_array().is_some_and(Vec::is_empty));
    }
    if m.get("hooks")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        m.remove("hooks");
    }
    let ours = json!({"type": "command", "command": "swarm statusline"});
    if remove {
        if m.get("statusLine") == Some(&ours) {
            m.remove("statusLine");
        }
    } else {
        // A status line of the user's own is kept.
        m.entry("statusLine").or_insert(ours);
    }
    if !remove && before.is_none() {
        created.push(".claude/settings.json".to_owned());
    }
    let after = if remove && m.is_empty() && was_created(".claude/settings.json") {
        None
    } else if remove {
        Some(original(&manifest, ".claude/settings.json", &m).unwrap_or_else(|| pretty(m)))
    } else {
        Some(pretty(m))
    };
    changes.push(Change {
        path,
        before,
        after,
    });

    // .claude/swarm-otel.json (--otel): the OpenTelemetry env, as a settings
    // file for `claude --settings`. Claude Code (2.1.332) ignores OTEL_* and
    // CLAUDE_CODE_ENABLE_TELEMETRY in a project's .claude/settings.json
    // ("project-scoped settings can't set this key"); it reads them from the
    // environment, ~/.claude/settings.json, managed settings and --settings.
    // Each variable added is recorded with its value, so --remove takes out
    // exactly those still holding it.
    let path = dir.join(OTEL_SETTINGS);
    let before = read(&path)?;
    let mut env_added: Map<String, Value> = manifest
        .get("env")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if (remove && before.is_some()) || (!remove && otel.is_some()) {
        let mut m = json_object(&path, before.as_deref())?;
        if remove {
            if let Some(Value::Object(env)) = m.get_mut("env") {
                for (k, v) in &env_added {
                    if env.get(k) == Some(v) {
                        env.remove(k);
                    }
                }
                if env.is_empty() {
                    m.remove("env");
                }
            }
        } else if let Some(endpoint) = otel {
            let env = m.entry("env").or_insert_with(|| json!({}));
            let Value::Object(env) = env else {
                return Err(format!(
                    "{}: \"env\" is not a JSON object; fix it by hand first",
                    path.display()
                ));
            };
            for (k, want) in otel_env(endpoint) {
                let want = Value::String(want);
                match env.get(k) {
                    None => {
                        env.insert(k.to_owned(), want.clone());
                        env_added.insert(k.to_owned(), want);
                    }
                    Some(v) if *v == want => {}
                    // Ours from an earlier run (another endpoint): updated.
                    Some(v) if env_added.get(k) == Some(v) => {
                        env.insert(k.to_owned(), want.clone());
                        env_added.insert(k.to_owned(), want);
                    }
                    Some(v) => notes.push(format!(
                        "kept your {k}={v} in {OTEL_SETTINGS} (--otel would set {want}); \
                         swarm otlp serve books what reaches it"
                    )),
                }
            }
            if before.is_none() {
                created.push(OTEL_SETTINGS.to_owned());
            }
        }
        let after = if remove && m.is_empty() && was_created(OTEL_SETTINGS) {
            None
        } else if remove {
            Some(original(&manifest, OTEL_SETTINGS, &m).unwrap_or_else(|| pretty(m)))
        } else {
            Some(pretty(m))
        };
        changes.push(Change {
            path,
            before,
            after,
        });
    }

    // CLAUDE.md
    let path = dir.join("CLAUDE.md");
    let before = read(&path)?;
    let base = before.clone().unwrap_or_default();
    let stripped = match (base.find(BEGIN), base.find(END)) {
        (Some(b), Some(e)) if e > b => {
            let head = &base[..b];
            // The blank line the section was set off with goes too.
            let head = head
                .strip_suffix('\n')
                .filter(|h| h.ends_with('\n'))
                .unwrap_or(head);
            let mut s = head.to_owned();
            s.push_str(base[e + END.len()..].trim_start_matches('\n'));
            s
        }
        _ => base.clone(),
    };
    let after = if remove {
        if stripped.trim().is_empty() && was_created("CLAUDE.md") {
            None
        } else {
            Some(stripped)
        }
    } else {
        if before.is_none() {
            created.push("CLAUDE.md".to_owned());
        }
        let mut s = stripped;
        if !s.is_empty() && !s.ends_with("\n\n") {
            s.push_str(if s.ends_with('\n') { "\n" } else { "\n\n" });
        }
        s.push_str(&claude_md_section());
        Some(s)
    };
    changes.push(Change {
        path,
        before,
        after,
    });

    // The manifest.
    let before = read(&manifest_path)?;
    let after = if remove {
        None
    } else {
        let mut all: Vec<String> = manifest
            .get("created")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for c in &created {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        let mut originals = manifest
            .get("originals")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for rel in [".mcp.json", ".claude/settings.json", OTEL_SETTINGS] {
            if !originals.contains_key(rel)
                && !all.iter().any(|c| c == rel)
                && let Some(text) = read(&dir.join(rel))?
            {
                originals.insert(rel.into(), json!(text));
            }
        }
        let mut m = Map::new();
        m.insert("created".into(), json!(all));
        m.insert("originals".into(), Value::Object(originals));
        m.insert("mcp_server".into(), json!("swarm"));
        m.insert(
            "hooks".into(),
            json!(
                HOOK_EVENTS
                    .iter()
                    .map(|e| hook_command(e))
                    .collect::<Vec<_>>()
            ),
        );
        m.insert("claude_md_markers".into(), json!([BEGIN, END]));
        if !env_added.is_empty() {
            m.insert("env".into(), Value::Object(env_added));
        }
        Some(pretty(m))
    };
    changes.push(Change {
        path: manifest_path,
        before,
        after,
    });
    changes.retain(|c| c.before != c.after);
    Ok(Plan { changes, notes })
}

fn diff(c: &Change, dir: &Path) -> String {
    let name = c
        .path
        .strip_prefix(dir)
        .unwrap_or(&c.path)
        .display()
        .to_string();
    let old: Vec<&str> = c
        .before
        .as_deref()
        .map(|s| s.lines().collect())
        .unwrap_or_default();
    let new: Vec<&str> = c
        .after
        .as_deref()
        .map(|s| s.lines().collect())
        .unwrap_or_default();
    let mut out = format!(
        "--- {}\n+++ {}\n",
        if c.before.is_some() {
            format!("a/{name}")
        } else {
            "/dev/null".into()
        },
        if c.after.is_some() {
            format!("b/{name}")
        } else {
            "/dev/null".into()
        }
    );
    // Common prefix and suffix kept as context-free; the middle replaced.
    let pre = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suf = old[pre..]
        .iter()
        .rev()
        .zip(new[pre..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    out.push_str(&format!(
        "@@ -{},{} +{},{} @@\n",
        pre + 1,
        old.len() - pre - suf,
        pre + 1,
        new.len() - pre - suf
    ));
    for l in &old[pre..old.len() - suf] {
        out.push_str(&format!("-{l}\n"));
    }
    for l in &new[pre..new.len() - suf] {
        out.push_str(&format!("+{l}\n"));
    }
    out
}

/// Runs `swarm init`.
pub(crate) fn run(cmd: InitCmd) -> ExitCode {
    let InitCmd::ClaudeCode(args) = cmd;
    let dir = args.dir.as_path();
    if !dir.is_dir() {
        return fail(
            "init claude-code",
            format!("{} is not a folder", dir.display()),
        );
    }
    if let Some(endpoint) = &args.otel
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return fail(
            "init claude-code",
            format!(
                "--otel takes the receiver's http:// URL, not {endpoint:?} (to name the folder too, \
                 put it before --otel or write --otel={DEFAULT_OTEL_ENDPOINT})"
            ),
        );
    }
    let Plan { changes, notes } = match plan(dir, args.remove, args.otel.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail("init claude-code", e),
    };
    for n in &notes {
        eprintln!("swarm: init claude-code: {n}");
    }
    if args.dry_run {
        for c in &changes {
            print!("{}", diff(c, dir));
        }
        if changes.is_empty() {
            println!("nothing to change");
        }
        return ExitCode::SUCCESS;
    }
    for c in &changes {
        let r = match &c.after {
            Some(text) => c
                .path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&c.path, text)),
            None => std::fs::remove_file(&c.path).map(|()| {
                // A folder this command made and left empty goes too.
                if let Some(parent) = c.path.parent()
                    && parent.ends_with(".claude/agents")
                {
                    let _ = std::fs::remove_dir(parent);
                }
            }),
        };
        if let Err(e) = r {
            return fail("init claude-code", format!("{}: {e}", c.path.display()));
        }
        let name = c
            .path
            .strip_prefix(dir)
            .unwrap_or(&c.path)
            .display()
            .to_string();
        let verb = match (&c.before, &c.after) {
            (None, _) => "created",
            (_, None) => "removed",
            _ => "updated",
        };
        println!("{verb} {name}");
    }
    if changes.is_empty() {
        println!("nothing to change: {} is already set up", dir.display());
    }
    if !args.remove {
        println!(
            "\nNext: run `claude` in {}. Claude Code asks before it uses the project's .mcp.json \
             (\"New MCP server found in .mcp.json: swarm\"; \"Continue without using this MCP server\" is \
             preselected): choose \"Use this and all future MCP servers in this project\" (or \"Use this \
             MCP server\"). Until then `claude mcp list` shows swarm as \"Pending approval\". \
             `claude -p` loads it without asking. The server reads REDIS_URL from the environment \
             or this folder's .env (no password is written into .mcp.json).",
            dir.display()
        );
        if let Some(endpoint) = &args.otel {
            println!(
                "\nOpenTelemetry: start Claude Code as `claude --settings {OTEL_SETTINGS}` and it \
                 exports its log events to {endpoint}; keep `swarm otlp serve` running there (it \
                 books each call once, with the hooks). Claude Code ignores these variables in a \
                 project's .claude/settings.json (\"project-scoped settings can't set this key\"); \
                 to export from every session instead, copy the env of {OTEL_SETTINGS} into \
                 ~/.claude/settings.json."
            );
        }
    }
    ExitCode::SUCCESS
}
