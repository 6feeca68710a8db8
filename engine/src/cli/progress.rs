//! A progress bar on stderr (bytes, lines/s, ETA) for work that takes more than a moment; drawn
//! only when stderr is a terminal, so pipes and CI logs stay clean.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use logcrunch::scan::Progress;

/// Runs `work` while a thread polls its [`Progress`] into a bar.
pub fn with_progress<T>(work: impl FnOnce(&Progress) -> T) -> T {
    let progress = Progress::default();
    if !std::io::stderr().is_terminal() {
        return work(&progress);
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
                )
                .expect("valid progress template"),
            );
            let start = Instant::now();
            // Stay silent for short runs.
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if start.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let total = progress.total_bytes.load(Ordering::Relaxed);
                if total > 0 {
                    bar.set_length(total);
                }
                bar.set_position(progress.bytes.load(Ordering::Relaxed));
                // Commands that read no lines (archive, restore) show bytes only.
                let lines = progress.lines.load(Ordering::Relaxed);
                if lines > 0 {
                    bar.set_message(format!(
                        "{:.0} lines/s",
                        lines as f64 / start.elapsed().as_secs_f64()
                    ));
                }
            }
            bar.finish_and_clear();
        });
        let out = work(&progress);
        done.store(true, Ordering::Relaxed);
        out
    })
}
