//! One Argon2id password check (what `Login` costs) at ssod's parameters: 19 MiB, t=2, p=1,
//! with mimalloc as ssod uses. Prints ms per check on one thread, then checks per second
//! with every CPU hashing at once (as ssod's hasher threads do under a login storm). Each
//! figure is given in wall time and in CPU time: on a shared machine the CPU time is what a
//! check costs, the wall time also counts the waits for a core.

use std::{hint::black_box, thread, time::Instant};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &[u8] = b"correct horse battery staple";

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("ssod's parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / CLOCK_TICKS_PER_SECOND
}

/// USER_HZ, 100 on every mainstream Linux (`getconf CLK_TCK`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Runs `checks` password checks on this thread; seconds taken.
fn check(hash: &str, checks: u32) -> f64 {
    let argon2 = argon2();
    let parsed = PasswordHash::new(hash).expect("a hash this program made parses");
    let started = Instant::now();
    for _ in 0..checks {
        black_box(argon2.verify_password(PASSWORD, &parsed).is_ok());
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    let checks: u32 = std::env::args()
        .nth(1)
        .map(|text| text.parse().expect("ITERATIONS is a number"))
        .unwrap_or(40);
    let salt = SaltString::encode_b64(b"sixteen byte slt").expect("a valid salt");
    let hash = argon2()
        .hash_password(PASSWORD, &salt)
        .expect("hashing works")
        .to_string();
    check(&hash, 3); // warm-up: the allocator keeps the 19 MiB after the first check

    let cpu_before = cpu_seconds();
    let seconds = check(&hash, checks);
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "argon2id m=19456 KiB t=2 p=1, {checks} checks on 1 thread: wall {seconds:.2} s = {:.1} ms/check; \
         cpu {cpu:.2} s = {:.1} ms/check",
        seconds * 1000.0 / f64::from(checks),
        cpu * 1000.0 / f64::from(checks)
    );

    let cpus = thread::available_parallelism().map_or(1, |cpus| cpus.get());
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..cpus {
            scope.spawn(|| check(&hash, checks));
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let total = f64::from(checks) * cpus as f64;
    println!(
        "{cpus} threads at once ({cpus} CPUs), {total} checks: wall {seconds:.2} s = {:.1} checks/s; \
         cpu {cpu:.2} s = {:.1} ms/check",
        total / seconds,
        cpu * 1000.0 / total
    );
}
