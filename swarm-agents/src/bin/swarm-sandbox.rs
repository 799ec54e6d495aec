//! `swarm-sandbox`: the sandbox launcher for programs that do not call
//! `swarmbus_agents::sandbox::launcher_hook()` themselves. The worker starts
//! it; run by hand it only says what it is for.

fn main() -> std::process::ExitCode {
    swarmbus_agents::sandbox::launcher_hook();
    eprintln!(
        "swarm-sandbox: the launcher of swarm's confined commands; a worker starts it \
         (see swarmbus_agents::sandbox)"
    );
    std::process::ExitCode::from(2)
}
