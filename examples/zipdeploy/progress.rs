//! stderr while deploying: the progress meter and the notes beside it.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use zipdeploy::{Progress, Stage};

use crate::config::Cli;

/// stderr as the progress meter, the `--verbose` notes and the `--init`
/// script share it: whatever is printed starts on a line of its own.
pub struct Console {
    meter: Option<Meter>,
}

/// The console, shared by the deploy's callbacks (the fetch may notify from
/// another thread).
pub type SharedConsole = Arc<Mutex<Console>>;

impl Console {
    /// A console with a meter when `cli` shows progress.
    pub fn shared(cli: &Cli) -> SharedConsole {
        let style = match io::stderr().is_terminal() {
            true => Style::Redraw,
            false => Style::Lines,
        };
        let meter = cli.shows_progress().then(|| Meter::new(style));
        Arc::new(Mutex::new(Console { meter }))
    }

    /// Locks the console; a callback that panicked leaves it usable.
    pub fn lock(console: &SharedConsole) -> MutexGuard<'_, Console> {
        console
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn progress(&mut self, progress: &Progress) {
        if let Some(meter) = self.meter.as_mut() {
            meter.update(progress);
        }
    }

    /// Prints `zipdeploy: LINE` on a line of its own.
    pub fn note(&mut self, line: &str) {
        self.end_line();
        eprintln!("zipdeploy: {line}");
    }

    /// Leaves stderr at the start of a clean line, for whatever comes next.
    pub fn end_line(&mut self) {
        if let Some(meter) = self.meter.as_mut() {
            meter.clear();
        }
    }
}

/// How progress is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// A terminal: one line redrawn in place with `\r`, ten times a second.
    Redraw,
    /// A log (`docker logs`, a file), where every `\r` frame would show:
    /// plain lines, at the start of each stage, then every 5 s or tenth of
    /// the stage.
    Lines,
}

/// The progress meter on stderr.
struct Meter {
    style: Style,
    stage: Option<Stage>,
    stage_started: Instant,
    last_draw: Option<Instant>,
    /// The tenth of the stage done at the last plain line.
    last_tenth: Option<u64>,
    /// Width of the line on screen, to blank what a shorter one leaves.
    width: usize,
}

impl Meter {
    const REDRAW_EVERY: Duration = Duration::from_millis(100);
    const LINE_EVERY: Duration = Duration::from_secs(5);

    fn new(style: Style) -> Self {
        Meter {
            style,
            stage: None,
            stage_started: Instant::now(),
            last_draw: None,
            last_tenth: None,
            width: 0,
        }
    }

    fn update(&mut self, progress: &Progress) {
        let now = Instant::now();
        let new_stage = self.stage != Some(progress.stage);
        if new_stage {
            self.stage = Some(progress.stage);
            self.stage_started = now;
            self.last_tenth = None;
        }
        let since_draw = |every| self.last_draw.is_none_or(|t| now - t >= every);
        let due = match self.style {
            Style::Redraw => since_draw(Self::REDRAW_EVERY),
            Style::Lines => since_draw(Self::LINE_EVERY) || tenth(progress) > self.last_tenth,
        };
        if new_stage || due {
            self.draw(&progress_line(progress, now - self.stage_started));
            self.last_draw = Some(now);
            self.last_tenth = tenth(progress);
        }
    }

    fn draw(&mut self, line: &str) {
        let mut err = io::stderr().lock();
        match self.style {
            Style::Redraw => {
                let width = line.chars().count();
                let blank = " ".repeat(self.width.saturating_sub(width));
                let _ = write!(err, "\r{line}{blank}");
                self.width = width;
            }
            Style::Lines => {
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }

    /// Blanks a redrawn line so the next message starts clean.
    fn clear(&mut self) {
        if self.width > 0 {
            let _ = write!(io::stderr(), "\r{}\r", " ".repeat(self.width));
            self.width = 0;
        }
    }
}

/// Which tenth of its stage `p` has done, when the total is known.
fn tenth(p: &Progress) -> Option<u64> {
    let (done, total) = match (p.total_bytes, p.total_entries) {
        (Some(total), _) if total > 0 => (p.bytes, total),
        (_, Some(total)) if total > 0 => (p.entries, total),
        _ => return None,
    };
    Some((done.min(total) as u128 * 10 / total as u128) as u64)
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
        _ => format!("zipdeploy: {bytes}"),
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
