//! `ledger-sim`: runs the seeded simulation.
//!
//! - `--seed N` runs one seed in this process and prints one line (`seed N: … trace H`), or a
//!   readable trace of the failure.
//! - `--seeds A..B` and `--minutes M` run many seeds, each in a child process of its own
//!   (`--seed N`): some libraries keep a thread-local generator seeded from a process-wide
//!   counter (futures' `select!`), so only a fresh process replays a seed exactly. They print a
//!   count per fault kind at the end.
//! - `--check-determinism` runs each seed twice and requires the same trace hash.
//! - `--planted-bug lying-fsync` plants a bug (disks that acknowledge syncs without making
//!   anything durable) to show the checkers catch it.
//!
//! Exit codes: 0 all passed; 1 a safety failure (a history no order explains); 2 a liveness
//! failure (no convergence, a node that could not run); 3 a replay that differed; 4 a history
//! the checker could not decide within its bound (neither a pass nor a failure: many seeds go
//! on past it, and name every undecided seed at the end).

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;

/// The exit code of a history the checker could not decide.
const UNDECIDED: u8 = 4;
use simulation::bank::{self, Finding, Op, Violation};
use simulation::sim::{self, Recorded};

#[derive(Parser, Debug)]
#[command(version, about = "Deterministic simulation of a Local-Plus Ledger cluster")]
struct Args {
    /// Run this one seed, in this process.
    #[arg(long, conflicts_with_all = ["seeds", "minutes"])]
    seed: Option<u64>,
    /// Run the seeds A..B (B excluded), each in a process of its own.
    #[arg(long, value_parser = parse_range, conflicts_with = "minutes")]
    seeds: Option<(u64, u64)>,
    /// Run random seeds for this many minutes.
    #[arg(long)]
    minutes: Option<u64>,
    /// Run each seed twice and require the same trace hash.
    #[arg(long)]
    check_determinism: bool,
    /// Plant a bug the checkers must catch: `lying-fsync`.
    #[arg(long)]
    planted_bug: Option<sim::PlantedBug>,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or("expected A..B")?;
    let a: u64 = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a >= b {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(seed) = args.seed {
        if args.check_determinism {
            return many(std::iter::once(seed), &args);
        }
        return one(seed, args.planted_bug);
    }
    match (args.seeds, args.minutes) {
        (Some((a, b)), _) => many(a..b, &args),
        (None, minutes) => {
            let until = Instant::now() + Duration::from_secs(60 * minutes.unwrap_or(1));
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos());
            let first = u64::try_from(nanos % u128::from(u64::MAX)).unwrap_or(1);
            println!("random seeds from {first}");
            many((first..).take_while(move |_| Instant::now() < until), &args)
        }
    }
}

/// The first panic's message and place: the assertion that failed (later panics are the
/// runtime unwinding around it).
static FIRST_PANIC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Runs `seed` here and prints its line, or its failure.
fn one(seed: u64, planted: Option<sim::PlantedBug>) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let _ = FIRST_PANIC.set(info.to_string());
    }));
    let report = match sim::run(seed, planted) {
        Ok(report) => report,
        Err(failure) if failure.panicked => {
            let first = FIRST_PANIC.get().map_or(failure.reason.as_str(), String::as_str);
            println!("seed {seed}: SAFETY FAILURE: an assertion failed: {first}");
            println!("what happened:");
            failure.events.iter().for_each(|e| println!("  {e}"));
            return ExitCode::from(1);
        }
        Err(failure) => {
            println!("seed {seed}: LIVENESS FAILURE: {}", failure.reason);
            println!("what happened:");
            failure.events.iter().for_each(|e| println!("  {e}"));
            return ExitCode::from(2);
        }
    };
    let answers = bank::answer_counts(&report.history);
    let line = format!(
        "seed {seed}: {} nodes, {} calls ({} unanswered), faults {}, outcomes {}, answers {}, \
         trace {:016x}",
        report.nodes,
        report.calls,
        report.unanswered,
        counts(&report.faults),
        counts(&report.outcomes),
        counts(&answers),
        report.trace_hash
    );
    if let Some(violation) = &report.invariant_violation {
        println!("{line}");
        println!("seed {seed}: SAFETY FAILURE: invariant broken on {violation}");
        println!("what happened:");
        report.events.iter().for_each(|e| println!("  {e}"));
        return ExitCode::from(1);
    }
    match &report.finding {
        Finding::Linearizable => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Finding::Violation(violation) => {
            println!("{line}");
            print_violation(&report, violation);
            ExitCode::from(1)
        }
        Finding::Undecided { accounts, configurations } => {
            println!("{line}");
            println!(
                "seed {seed}: UNDECIDED on {accounts:?} after {configurations} configurations"
            );
            ExitCode::from(UNDECIDED)
        }
    }
}

/// A history no order explains: the longest order, every call on the accounts, the events.
/// `kind=count,…`, in the map's order.
fn counts<K: std::fmt::Display>(map: &BTreeMap<K, u32>) -> String {
    map.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(",")
}

fn print_violation(report: &sim::SimReport, violation: &Violation) {
    let seed = report.seed;
    println!("seed {seed}: SAFETY FAILURE on accounts {:?}", violation.accounts);
    println!("the longest order that explains every answer, then the call none can:");
    for index in violation.longest.iter().chain([&violation.unexplained]) {
        println!("  #{index}: {}", show(&report.recorded[*index]));
    }
    println!("every call on these accounts, as made:");
    let touches = |op: &Op| match op {
        Op::Read(a) => violation.accounts.contains(a),
        write => write.accounts().is_some_and(|a| a.iter().any(|a| violation.accounts.contains(a))),
    };
    let mut calls: Vec<(usize, &Recorded)> =
        report.recorded.iter().enumerate().filter(|(_, r)| touches(&r.call.op)).collect();
    calls.sort_by_key(|(_, r)| r.call.invoked);
    for (index, recorded) in calls {
        println!("  #{index}: {}", show(recorded));
    }
    println!("what happened:");
    report.events.iter().for_each(|e| println!("  {e}"));
}

/// One call as made, with times in milliseconds of simulated time.
fn show(recorded: &Recorded) -> String {
    let call = &recorded.call;
    let millis = |nanos: u64| format!("{:.3}", Duration::from_nanos(nanos).as_secs_f64() * 1e3);
    let answered = match (&call.answered, &recorded.gave_up) {
        (Some((at, ret)), _) => format!("{ret:?} at {} ms", millis(*at)),
        (None, Some(why)) => format!("never answered ({why})"),
        (None, None) => "never answered".to_owned(),
    };
    let stale = if recorded.stale { " (bounded staleness)" } else { "" };
    format!(
        "client {} at {} ms: {:?}{stale} -> {answered}",
        call.client,
        millis(call.invoked),
        call.op
    )
}

/// Runs each seed in a child process (twice with `--check-determinism`), stopping at the first
/// failure.
fn many(seeds: impl Iterator<Item = u64>, args: &Args) -> ExitCode {
    let twice = args.check_determinism;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            println!("cannot find this program to run seeds: {e}");
            return ExitCode::from(2);
        }
    };
    let mut tally = Tally::default();
    let mut runs = 0_u64;
    let mut undecided = Vec::new();
    for seed in seeds {
        let mut lines = Vec::new();
        for _ in 0..if twice { 2 } else { 1 } {
            let mut command = Command::new(&exe);
            command.args(["--seed", &seed.to_string()]);
            if let Some(bug) = args.planted_bug {
                command.args(["--planted-bug", &bug.to_string()]);
            }
            let output = match command.output() {
                Ok(output) => output,
                Err(e) => {
                    println!("seed {seed}: cannot run: {e}");
                    return ExitCode::from(2);
                }
            };
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.code() == Some(i32::from(UNDECIDED)) {
                print!("{text}");
                undecided.push(seed);
                break;
            }
            if !output.status.success() {
                print!("{text}");
                eprint!("{}", String::from_utf8_lossy(&output.stderr));
                if output.status.code().is_none() {
                    // Killed before it could say anything (out of memory, an abort).
                    println!("seed {seed}: the run died: {}", output.status);
                }
                let code = output.status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(2);
                return ExitCode::from(code.max(1));
            }
            lines.push(text.trim().to_owned());
        }
        if lines.is_empty() {
            continue;
        }
        if lines.len() == 2 && lines[0] != lines[1] {
            println!("seed {seed}: REPLAY DIFFERED:\n  {}\n  {}", lines[0], lines[1]);
            return ExitCode::from(3);
        }
        println!("{}", lines[0]);
        tally.add(&lines[0]);
        runs += 1;
    }
    println!("{runs} seeds passed");
    println!("faults by kind: {:?}", tally.faults);
    println!("outcomes by kind: {:?}", tally.outcomes);
    println!("answers by kind: {:?}", tally.answers);
    if !undecided.is_empty() {
        println!("undecided (the checker's bound was reached): seeds {undecided:?}");
        return ExitCode::from(UNDECIDED);
    }
    ExitCode::SUCCESS
}

/// Counts per fault kind, outcome and answer over the seeds that passed.
#[derive(Default)]
struct Tally {
    faults: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    answers: BTreeMap<String, u64>,
}

impl Tally {
    /// Adds the counts of one seed's line (`… faults k=n,…, outcomes …, answers …, trace H`).
    fn add(&mut self, line: &str) {
        let parts =
            [("faults ", ", outcomes"), ("outcomes ", ", answers"), ("answers ", ", trace")];
        for (name, until) in parts {
            let Some(kinds) = line.split(name).nth(1).and_then(|r| r.split(until).next()) else {
                continue;
            };
            let tally = match name {
                "faults " => &mut self.faults,
                "outcomes " => &mut self.outcomes,
                _ => &mut self.answers,
            };
            for kind in kinds.split(',').filter(|k| !k.is_empty()) {
                if let Some((kind, count)) = kind.split_once('=') {
                    *tally.entry(kind.to_owned()).or_insert(0) += count.parse().unwrap_or(0);
                }
            }
        }
    }
}
