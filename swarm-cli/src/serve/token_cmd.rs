//! `swarm token create|list|revoke`: the bearer tokens of `swarm serve`,
//! in the namespace of `--namespace`.

use std::process::ExitCode;

use super::auth::{self, Role, TokenRecord};
use crate::ctx::{BusUse, Ctx, fail};

/// `swarm token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCmd {
    /// Make a token and print it once (it is stored only as a digest).
    Create {
        /// What it may do: read, write or admin.
        #[arg(long, default_value = "write")]
        role: Role,
        /// A label to tell it apart in `swarm token list`.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the namespace's tokens (ids, roles, labels; never the tokens).
    List,
    /// Revoke a token by id; it is refused from the next request on.
    Revoke {
        /// The id `swarm token create` or `list` printed.
        id: String,
    },
}

/// Runs a `swarm token` subcommand.
pub(crate) async fn run(cmd: TokenCmd, ctx: &Ctx) -> ExitCode {
    if ctx.is_memory() {
        eprintln!("swarm: token: tokens live in Redis; not with --memory");
        return ExitCode::from(2);
    }
    if let Err(e) = ctx.bus(BusUse::ONE_SHOT).await {
        return fail("cannot open the bus", e);
    }
    let Some(redis) = ctx.redis() else {
        return fail("token", "the bus is not Redis");
    };
    match cmd {
        TokenCmd::Create { role, label } => {
            let label = crate::ctx::one_line(&label);
            let t = auth::mint(role, &ctx.namespace_name(), &label, ctx.clock().now());
            let record = match serde_json::to_string(&t.record) {
                Ok(r) => r,
                Err(e) => return fail("token", e),
            };
            match redis.put_auth_token(&t.digest, &record).await {
                Ok(true) => {
                    eprintln!(
                        "swarm: token {} ({role}) made; it is shown once, below",
                        t.record.id
                    );
                    println!("{}", t.secret);
                    ExitCode::SUCCESS
                }
                Ok(false) => fail("token", "a token with that digest exists; run again"),
                Err(e) => fail("cannot store the token", e),
            }
        }
        TokenCmd::List => match redis.auth_tokens().await {
            Ok(stored) => {
                let mut records: Vec<TokenRecord> = stored
                    .iter()
                    .filter_map(|(_, r)| serde_json::from_str(r).ok())
                    .collect();
                records.sort_by_key(|r| r.created_at);
                println!("{:<12}  {:<5}  {:<20}  label", "id", "role", "created");
                for r in records {
                    println!(
                        "{:<12}  {:<5}  {:<20}  {}",
                        r.id,
                        r.role.as_str(),
                        r.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                        r.label
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("cannot read the tokens", e),
        },
        TokenCmd::Revoke { id } => {
            let stored = match redis.auth_tokens().await {
                Ok(s) => s,
                Err(e) => return fail("cannot read the tokens", e),
            };
            let digest = stored.iter().find_map(|(d, r)| {
                serde_json::from_str::<TokenRecord>(r)
                    .ok()
                    .filter(|rec| rec.id == id)
                    .map(|_| d.clone())
            });
            let Some(digest) = digest else {
                eprintln!("swarm: token: no token {id:?} in this namespace (swarm token list)");
                return ExitCode::from(1);
            };
            match redis.remove_auth_token(&digest).await {
                Ok(_) => {
                    eprintln!("swarm: token {id} revoked");
                    ExitCode::SUCCESS
                }
                Err(e) => fail("cannot revoke the token", e),
            }
        }
    }
}
