//! The progress meter on stderr.

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use zipdeploy::{Progress, Stage};

/// Progress on stderr, redrawn in place with `\r` at most ten times a second.
pub struct Meter {
    stage: Option<Stage>,
    stage_started: Instant,
    last_draw: Option<Instant>,
    /// Width of the line on screen, to blank what a shorter one leaves.
    width: usize,
}

impl Meter {
    const INTERVAL: Duration = Duration::from_millis(100);

    pub fn new() -> Self {
        Meter {
            stage: None,
            stage_started: Instant::now(),
            last_draw: None,
            width: 0,
        }
    }

    pub fn update(&mut self, progress: &Progress) -> ControlFlow<()> {
        let now = Instant::now();
        let new_stage = self.stage != Some(progress.stage);
        if new_stage {
            self.stage = Some(progress.stage);
            self.stage_started = now;
        }
        let due = self.last_draw.is_none_or(|t| now - t >= Self::INTERVAL);
        if new_stage || due {
            self.draw(&progress_line(progress, now - self.stage_started));
            self.last_draw = Some(now);
        }
        ControlFlow::Continue(())
    }

    pub fn draw(&mut self, line: &str) {
        let width = line.chars().count();
        let blank = " ".repeat(self.width.saturating_sub(width));
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}{blank}");
        let _ = err.flush();
        self.width = width;
    }

    /// Blanks the line so the next message starts clean.
    pub fn clear(&mut self) {
        if self.width > 0 {
            let _ = write!(io::stderr(), "\r{}\r", " ".repeat(self.width));
            self.width = 0;
        }
    }
}

pub fn progress_line(p: &Progress, elapsed: Duration) -> String {
    let rate = match elapsed.as_secs_f64() {
        secs if secs > 0.0 => format!("  {}/s", human_bytes((p.bytes as f64 / secs) as u64)),
        _ => String::new(),
    };
    let bytes = match p.total_bytes {
        Some(total) => format!("{} / {}", human_bytes(p.bytes), human_bytes(total)),
        None => human_bytes(p.bytes),
    };
    match p.stage {
        Stage::Fetch => format!("zipdeploy: fetch    {bytes}{rate}"),
        Stage::Extract => {
            let total = p.total_entries.map(|t| format!("/{t}")).unwrap_or_default();
            format!(
                "zipdeploy: extract  {}{total} entries  {bytes}{rate}",
                p.entries
            )
        }
        Stage::Install => format!("zipdeploy: install  {bytes}"),
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}
