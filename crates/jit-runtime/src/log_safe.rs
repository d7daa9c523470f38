//! Text from outside on its way into a log: escaped, capped, and rate-limited per source.
//!
//! Anything a request carries (a notify's `out_trade_no`, a gateway's `return_msg`, a path)
//! may hold a newline that forges a whole log line or an ANSI escape that repaints the
//! operator's terminal. Every such value goes through [`log_safe`] before it reaches a text
//! or JSON log, so the rule lives here once: control characters (C0, DEL, C1), Unicode
//! format characters (bidi overrides, zero-width characters), line and paragraph
//! separators and the backslash itself are written as escapes, and the value is cut after
//! [`LOG_TEXT_LIMIT`] characters.
//!
//! [`RefusalLogLimiter`] bounds how often one source's refusals are logged, so a flood of
//! forged requests cannot fill the disk: the first few per window are logged, the rest
//! counted and reported with the next logged one.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How many characters of one outside value a log line shows.
pub const LOG_TEXT_LIMIT: usize = 256;

/// An outside value, displayed escaped and capped. Made by [`log_safe`].
#[derive(Clone, Copy)]
pub struct LogSafe<'a> {
    text: &'a str,
    limit: usize,
}

/// Wraps `text` so that displaying it (in `tracing` fields, `format!`) is safe for a log.
pub fn log_safe(text: &str) -> LogSafe<'_> {
    LogSafe {
        text,
        limit: LOG_TEXT_LIMIT,
    }
}

impl LogSafe<'_> {
    /// The same value cut after `limit` characters instead of [`LOG_TEXT_LIMIT`].
    pub fn with_limit(self, limit: usize) -> Self {
        Self { limit, ..self }
    }
}

/// Whether `c` must not reach a log as itself: it could end a line, move the cursor,
/// start a terminal escape or reorder what a reader sees.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\\' || is_format_char(c)
}

/// Unicode general category Cf (format) plus the line and paragraph separators: invisible
/// characters that change how the text around them is shown.
pub fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}'
    )
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for (shown, (index, c)) in self.text.char_indices().enumerate() {
            if shown == self.limit {
                return write!(f, "…(+{} bytes)", self.text.len() - index);
            }
            if !needs_escape(c) {
                f.write_char(c)?;
                continue;
            }
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                other => write!(f, "\\u{{{:x}}}", other as u32)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// What [`RefusalLogLimiter::admit`] decides for one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAdmission {
    /// Log it; `suppressed` refusals from the same source were not logged since the last
    /// logged one (say so in the line).
    Log {
        /// Refusals from this source dropped since the last one logged.
        suppressed: u64,
    },
    /// Do not log it; it is counted.
    Suppress,
}

/// Per-source budget for refusal logs: at most `burst` lines per `window` for each source
/// key (a peer address, say), and at most `max_sources` sources tracked at once.
///
/// Memory is bounded whatever the traffic: when the table is full, sources whose window
/// has ended are dropped first; if none has, the new source shares one overflow budget.
#[derive(Debug)]
pub struct RefusalLogLimiter {
    window: Duration,
    burst: u32,
    max_sources: usize,
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    sources: HashMap<String, SourceBudget>,
    overflow: Option<SourceBudget>,
}

#[derive(Debug, Clone, Copy)]
struct SourceBudget {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl SourceBudget {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    fn admit(&mut self, now: Instant, window: Duration, burst: u32) -> LogAdmission {
        if now.duration_since(self.window_start) >= window {
            self.window_start = now;
            self.logged = 0;
        }
        if self.logged < burst {
            self.logged += 1;
            let suppressed = std::mem::take(&mut self.suppressed);
            LogAdmission::Log { suppressed }
        } else {
            self.suppressed += 1;
            LogAdmission::Suppress
        }
    }
}

impl Default for RefusalLogLimiter {
    /// Ten lines a minute per source, 4,096 sources.
    fn default() -> Self {
        Self::new(Duration::from_secs(60), 10, 4096)
    }
}

impl RefusalLogLimiter {
    /// `burst` lines per `window` for each of at most `max_sources` sources.
    pub fn new(window: Duration, burst: u32, max_sources: usize) -> Self {
        Self {
            window,
            burst,
            max_sources: max_sources.max(1),
            state: Mutex::new(LimiterState::default()),
        }
    }

    /// Decides whether this refusal from `source` is logged.
    pub fn admit(&self, source: &str) -> LogAdmission {
        self.admit_at(source, Instant::now())
    }

    fn admit_at(&self, source: &str, now: Instant) -> LogAdmission {
        let mut state = self.state.lock();
        if let Some(budget) = state.sources.get_mut(source) {
            return budget.admit(now, self.window, self.burst);
        }
        if state.sources.len() >= self.max_sources {
            let window = self.window;
            state
                .sources
                .retain(|_, budget| now.duration_since(budget.window_start) < window);
        }
        if state.sources.len() >= self.max_sources {
            let (window, burst) = (self.window, self.burst);
            return state
                .overflow
                .get_or_insert_with(|| SourceBudget::new(now))
                .admit(now, window, burst);
        }
        state
            .sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceBudget::new(now))
            .admit(now, self.window, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_terminal_escapes_are_escaped() {
        let forged = "D1\n2026-11-30T00:00:00Z  INFO paid order=D2\r\u{1b}[31mred\u{7f}";
        let shown = log_safe(forged).to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(
            shown,
            "D1\\n2026-11-30T00:00:00Z  INFO paid order=D2\\r\\u{1b}[31mred\\u{7f}"
        );
    }

    #[test]
    fn bidi_and_zero_width_characters_are_escaped() {
        let shown = log_safe("ab\u{202E}cd\u{200B}e\u{2028}f").to_string();
        assert_eq!(shown, "ab\\u{202e}cd\\u{200b}e\\u{2028}f");
    }

    #[test]
    fn a_backslash_is_escaped_so_escapes_cannot_be_faked() {
        assert_eq!(log_safe("a\\nb").to_string(), "a\\\\nb");
    }

    #[test]
    fn plain_text_and_chinese_are_kept() {
        assert_eq!(log_safe("商品 Purchase-1").to_string(), "商品 Purchase-1");
    }

    #[test]
    fn long_values_are_cut_with_the_remaining_size() {
        let long = "x".repeat(1000);
        let shown = log_safe(&long).to_string();
        assert_eq!(shown, format!("{}…(+744 bytes)", "x".repeat(256)));
        assert_eq!(
            log_safe("abcdef").with_limit(3).to_string(),
            "abc…(+3 bytes)"
        );
        assert_eq!(log_safe("abc").with_limit(3).to_string(), "abc");
    }

    #[test]
    fn each_source_gets_its_own_budget_per_window() {
        let limiter = RefusalLogLimiter::new(Duration::from_secs(60), 2, 16);
        let start = Instant::now();
        assert_eq!(
            limiter.admit_at("a", start),
            LogAdmission::Log { suppressed: 0 }
        );
        assert_eq!(
            limiter.admit_at("a", start),
            LogAdmission::Log { suppressed: 0 }
        );
        assert_eq!(limiter.admit_at("a", start), LogAdmission::Suppress);
        assert_eq!(limiter.admit_at("a", start), LogAdmission::Suppress);
        // Another source is not starved by the first.
        assert_eq!(
            limiter.admit_at("b", start),
            LogAdmission::Log { suppressed: 0 }
        );
        // A new window logs again and reports what was dropped.
        let later = start + Duration::from_secs(61);
        assert_eq!(
            limiter.admit_at("a", later),
            LogAdmission::Log { suppressed: 2 }
        );
    }

    #[test]
    fn the_source_table_stays_bounded() {
        let limiter = RefusalLogLimiter::new(Duration::from_secs(60), 1, 4);
        let now = Instant::now();
        for source in 0..1000 {
            limiter.admit_at(&source.to_string(), now);
        }
        let state = limiter.state.lock();
        assert_eq!(state.sources.len(), 4);
        assert_eq!(state.overflow.map(|budget| budget.suppressed), Some(995));
    }
}
