//! kubeadm-certd: parse the command line, run it, map the outcome to an exit code.
use clap::Parser;

fn main() {
    // Failpoints (FAILPOINTS=...) exist only in the crash-test build.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = kubeadm_certd::cli::Cli::parse(); // exits 2 on usage errors
    kubeadm_certd::logging::init(cli.verbose);
    match kubeadm_certd::cli::run(cli) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            // One line per problem: `error: <context>: <cause>`.
            for line in format!("{e:#}").lines() {
                eprintln!("error: {line}");
            }
            std::process::exit(1);
        }
    }
}
