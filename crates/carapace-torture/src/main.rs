//! `carapace-torture [--full] [--json] [--only FAMILY,...]`: attacks carapace at volume and
//! prints one line per family — `family attempts refused-as-expected problems` — and a total;
//! exits 1 on any problem. See docs/reliability.md for what each family proves.
//!
//! `carapace-torture worker …` is the same binary as a child process (the fallback-resolver
//! escape run, the crash victim).

mod badinput;
mod corpus;
mod crashes;
mod escape;
mod fuzz;
mod gateway;
mod http;
mod lab;
mod races;
mod report;
mod soak;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use report::Figures;

/// Every family, in the order they run.
const FAMILIES: &[&str] = &["escape", "races", "crashes", "soak", "badinput", "fuzz"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        return worker(&args[1..]);
    }
    let full = args.iter().any(|a| a == "--full");
    let json_out = args.iter().any(|a| a == "--json");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    if let Some(bad) = only
        .iter()
        .flatten()
        .find(|f| !FAMILIES.contains(&f.as_str()))
    {
        eprintln!("unknown family {bad:?}; families: {}", FAMILIES.join(", "));
        return ExitCode::from(2);
    }
    let work = match tempfile::Builder::new()
        .prefix("carapace-torture-run-")
        .tempdir()
    {
        Ok(w) => w,
        Err(e) => {
            eprintln!("tempdir: {e}");
            return ExitCode::from(2);
        }
    };
    let mut all = Vec::new();
    for fam in FAMILIES {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == fam)) {
            continue;
        }
        let started = std::time::Instant::now();
        eprintln!("==> {fam}");
        let mut f = run_family(fam, full, work.path());
        f.note(format!("took {:.1} s", started.elapsed().as_secs_f64()));
        for d in &f.details {
            eprintln!("    problem: {d}");
        }
        for n in &f.notes {
            eprintln!("    note: {n}");
        }
        if !json_out {
            println!("{} {} {} {}", f.family, f.attempts, f.refused, f.problems);
        }
        all.push(f);
    }
    let mut total = Figures::new("total");
    for f in &all {
        total.attempts += f.attempts;
        total.refused += f.refused;
        total.problems += f.problems;
    }
    if json_out {
        let v = serde_json::json!({
            "mode": if full { "full" } else { "short" },
            "families": all.iter().map(Figures::to_json).collect::<Vec<_>>(),
            "total": { "attempts": total.attempts, "refused": total.refused, "problems": total.problems },
        });
        println!("{v:#}");
    } else {
        println!(
            "total {} {} {}",
            total.attempts, total.refused, total.problems
        );
    }
    if total.problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run_family(fam: &str, full: bool, work: &Path) -> Figures {
    match fam {
        "escape" => escape::run(full, work),
        "races" => races::run(full),
        "crashes" => crashes::run(full),
        "soak" => soak::run(full),
        "badinput" => badinput::run(full),
        "fuzz" => fuzz::run(full),
        other => {
            let mut f = Figures::new(other);
            f.problem("not implemented");
            f
        }
    }
}

/// Worker modes (child processes of the families).
fn worker(args: &[String]) -> ExitCode {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let f = match arg(0) {
        "escape" => {
            let layouts: Vec<lab::Layout> = arg(1)
                .split(',')
                .filter_map(|l| match l {
                    "host" => Some(lab::Layout::Host),
                    "bwrap" => Some(lab::Layout::Bwrap),
                    "docker" => Some(lab::Layout::Docker),
                    _ => None,
                })
                .collect();
            escape::worker(&layouts, arg(2), arg(3) == "quick")
        }
        "crash" => {
            let seed = arg(2).parse().unwrap_or(0);
            crashes::worker(Path::new(arg(1)), seed)
        }
        other => {
            eprintln!("unknown worker {other:?}");
            return ExitCode::from(2);
        }
    };
    println!("{}", f.to_json());
    ExitCode::SUCCESS
}

/// Runs a worker child and reads its figures from the last stdout line; a child that dies or
/// prints no figures is a problem.
pub fn worker_figures(family: &str, mut cmd: Command) -> Figures {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output();
    let mut f = Figures::new(family);
    match out {
        Err(e) => f.problem(format!("spawning the worker: {e}")),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let parsed = text
                .lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
                .and_then(|v| Figures::from_json(&v));
            match parsed {
                Some(w) => f.absorb(w),
                None => f.problem(format!(
                    "worker exited {} without figures (a panic?): {}",
                    o.status,
                    text.chars().take(400).collect::<String>()
                )),
            }
        }
    }
    f
}
