//! A stable fuzzing harness (no nightly toolchain): feeds every target of
//! `token_authority::fuzzing` random bytes and mutations of its seeds and of earlier inputs,
//! and reports how many inputs ran and which ones panicked.
//!
//! ```sh
//! cargo bench --bench fuzz                        # 1,000,000 inputs per target
//! cargo bench --bench fuzz -- 5000000 page_token  # more, one target
//! FUZZ_SEED=42 cargo bench --bench fuzz           # repeat a run
//! ```
//!
//! A panicking input is written to `target/fuzz-crashes/<target>-<n>.bin`, printed as hex,
//! and the run exits non-zero; turn it into a regression test beside the parser.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use token_authority::fuzzing::{TARGETS, Target};

/// Characters that have broken parsers before or might: multi-byte, control, separators.
const INTERESTING: &[&str] = &[
    "é",
    "😀",
    "\u{0}",
    "\n",
    "\u{202e}",
    "\u{fffd}",
    ":",
    "|",
    ",",
    ".",
    "_",
    "-",
    " ",
    "tka_",
    "tok_",
    "9999999999999999999",
    "-1",
    "\u{7f}",
];

/// xorshift64*: fast, and repeatable from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(80);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// One to four mutations of `input`.
fn mutate(rng: &mut Rng, mut input: Vec<u8>, pool: &[Vec<u8>]) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())].as_bytes();
                input.splice(at..at, piece.iter().copied());
            }
            3 if !input.is_empty() => {
                let end = at + rng.below(input.len() - at.min(input.len()) + 1);
                input.drain(at..end.min(input.len()));
            }
            4 => input.truncate(at),
            5 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = start + rng.below(input.len() - start + 1);
                let copy: Vec<u8> = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            6 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[cut..]);
            }
            _ => input.insert(at, rng.next() as u8),
        }
        input.truncate(4096);
    }
    input
}

struct Report {
    executions: u64,
    crashes: Vec<Vec<u8>>,
}

fn fuzz(target: &Target, iterations: u64, rng: &mut Rng) -> Report {
    let mut pool: Vec<Vec<u8>> = target.seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    let mut report = Report {
        executions: 0,
        crashes: Vec::new(),
    };
    for i in 0..iterations {
        let input = match rng.below(4) {
            0 => random_bytes(rng),
            _ => {
                let base = pool[rng.below(pool.len())].clone();
                mutate(rng, base, &pool)
            }
        };
        report.executions += 1;
        if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
            report.crashes.push(input.clone());
            if report.crashes.len() >= 10 {
                break;
            }
        }
        // Keep a bounded, rotating pool of recent inputs to mutate further.
        if pool.len() < 256 {
            pool.push(input);
        } else if i % 7 == 0 {
            let slot = rng.below(pool.len());
            pool[slot] = input;
        }
    }
    report
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is ours: a count and target names.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let iterations: u64 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let only: Vec<&String> = args.iter().filter(|a| a.parse::<u64>().is_err()).collect();
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    println!(
        "fuzz: seed {seed} (FUZZ_SEED={seed} repeats this run), {iterations} inputs per target"
    );
    // Panics are counted, not printed: a message could be megabytes of mutated input.
    std::panic::set_hook(Box::new(|_| {}));
    let crash_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    let mut total = 0;
    let mut crashed = 0;
    let started = Instant::now();
    for target in TARGETS {
        if !only.is_empty() && !only.iter().any(|name| *name == target.name) {
            continue;
        }
        let mut rng = Rng(seed ^ target.name.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
        let at = Instant::now();
        let report = fuzz(target, iterations, &mut rng);
        let seconds = at.elapsed().as_secs_f64();
        println!(
            "{:<22} {:>10} inputs  {:>8.0}/s  {} crashes",
            target.name,
            report.executions,
            report.executions as f64 / seconds.max(1e-9),
            report.crashes.len()
        );
        for (n, input) in report.crashes.iter().enumerate() {
            let _ = std::fs::create_dir_all(&crash_dir);
            let path = crash_dir.join(format!("{}-{n}.bin", target.name));
            let _ = std::fs::write(&path, input);
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            println!("  crash: {hex} -> {}", path.display());
        }
        total += report.executions;
        crashed += report.crashes.len();
    }
    println!(
        "fuzz: {total} inputs in {:.1} s, {crashed} crashes",
        started.elapsed().as_secs_f64()
    );
    if crashed > 0 {
        std::process::exit(1);
    }
}
