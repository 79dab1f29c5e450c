//! Go-compatible formatting used by `kubeadm certs check-expiration`.
//!
//! Sources ported (read via the public code index):
//! - golang/go `src/text/tabwriter/tabwriter.go` @132d7ae (the newer version only
//!   restructures `flush`; the cell/column algorithm is unchanged).
//! - kubernetes/kubernetes `staging/src/k8s.io/apimachinery/pkg/util/duration/duration.go`
//!   @008b3652 (`ShortHumanDuration`).
//! - kubernetes/kubernetes `cmd/kubeadm/app/phases/certs/renewal/expiration.go` @5b4de8c6
//!   (`ResidualTime` = `ExpirationDate.Sub(time.Now())`, which saturates).

use time::{OffsetDateTime, UtcOffset};

/// One cell: byte size in `buf` and width in chars (Go also records whether a
/// `\t` ended it, which only matters for `DiscardEmptyColumns`).
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    size: usize,
    width: usize,
}

/// A port of Go's `text/tabwriter.Writer` for `flags == 0`.
///
/// Hand-written on purpose: the `tabwriter` crate was tried in its place and breaks the
/// golden kubeadm tables (tests/report_golden.rs, the kubernetes PR 83932 sample): it does not
/// keep the trailing padding of a line's last cell byte for byte as Go does.
///
/// Cells are *terminated* by `\t` (or `\v`); the text after the last tab of a
/// line is a cell that belongs to no column. Contiguous lines that have a
/// cell in column k form a column block whose width is
/// `max(minwidth, widest cell + padding)`, so a line without tabs (e.g. an
/// empty line) ends every block. Like Go's `Write`, such a line also flushes
/// the buffer (which cannot change the output); `\f` flushes and prints as `\n`.
#[derive(Debug, Clone)]
pub struct TabWriter {
    minwidth: usize,
    tabwidth: usize,
    padding: usize,
    padchar: char,
    /// Text of all buffered cells, tabs and line breaks stripped.
    buf: String,
    /// The incomplete cell at the end of `buf`.
    cell: Cell,
    lines: Vec<Vec<Cell>>,
    /// Widths of the enclosing column blocks while formatting.
    widths: Vec<usize>,
    out: String,
}

impl TabWriter {
    /// Same parameters as Go's `tabwriter.NewWriter(out, minwidth, tabwidth, padding, padchar, 0)`.
    /// `padchar == '\t'` pads with tabs assuming a tab is `tabwidth` columns wide.
    pub fn new(minwidth: usize, tabwidth: usize, padding: usize, padchar: char) -> Self {
        TabWriter {
            minwidth,
            tabwidth,
            padding,
            padchar,
            buf: String::new(),
            cell: Cell::default(),
            lines: vec![Vec::new()],
            widths: Vec::new(),
            out: String::new(),
        }
    }

    /// The writer kubeadm's check-expiration uses: `tabwriter.NewWriter(out, 10, 4, 3, ' ', 0)`.
    pub fn kubeadm() -> Self {
        Self::new(10, 4, 3, ' ')
    }

    /// Appends one line (`s` must not contain the newline), like `fmt.Fprintln(w, s)`.
    pub fn line(&mut self, s: &str) {
        self.write_str(s);
        self.write_str("\n");
    }

    /// Appends raw text, like Go's `Write`: `\t` `\v` end cells, `\n` `\f` end lines.
    pub fn write_str(&mut self, s: &str) {
        for ch in s.chars() {
            match ch {
                '\t' | '\u{0b}' | '\n' | '\u{0c}' => {
                    let ncells = self.terminate_cell();
                    if ch == '\n' || ch == '\u{0c}' {
                        self.lines.push(Vec::new());
                        // A one-cell line cannot affect the layout of later lines
                        // (the last cell of a line is never in a column): flush.
                        if ch == '\u{0c}' || ncells == 1 {
                            self.flush();
                        }
                    }
                }
                _ => {
                    self.buf.push(ch);
                    self.cell.size += ch.len_utf8();
                    self.cell.width += 1;
                }
            }
        }
    }

    /// Flushes (Go's `Flush`) and returns everything written.
    pub fn finish(mut self) -> String {
        self.flush();
        self.out
    }

    fn terminate_cell(&mut self) -> usize {
        let cell = std::mem::take(&mut self.cell);
        match self.lines.last_mut() {
            Some(line) => {
                line.push(cell);
                line.len()
            }
            None => {
                self.lines.push(vec![cell]);
                1
            }
        }
    }

    fn flush(&mut self) {
        if self.cell.size > 0 {
            self.terminate_cell();
        }
        let nlines = self.lines.len();
        self.format(0, 0, nlines);
        // Go's reset().
        self.buf.clear();
        self.cell = Cell::default();
        self.lines.clear();
        self.lines.push(Vec::new());
        self.widths.clear();
    }

    fn cells_in(&self, line: usize) -> usize {
        self.lines.get(line).map_or(0, Vec::len)
    }

    /// Go's `format`: lays out lines `line0..line1` whose columns left of
    /// `widths.len()` are already sized; `pos0` is the buffer offset of `line0`.
    fn format(&mut self, pos0: usize, mut line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            // `column < len(line)-1`: the line has a tab-terminated cell here.
            if column + 1 < self.cells_in(this) {
                pos = self.write_lines(pos, line0, this);
                line0 = this;

                // Column block: every following line that has this column.
                let mut width = self.minwidth;
                while this < line1 {
                    let Some(line) = self.lines.get(this) else {
                        break;
                    };
                    if column + 1 >= line.len() {
                        break;
                    }
                    width = width.max(line[column].width + self.padding);
                    this += 1;
                }

                self.widths.push(width);
                pos = self.format(pos, line0, this);
                self.widths.pop();
                line0 = this;
            }
            // Like Go's `for ...; this++`, this also steps past the line
            // that ended the block (it has no cell in this column anyway).
            this += 1;
        }
        self.write_lines(pos, line0, line1)
    }

    fn write_lines(&mut self, pos0: usize, line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        let nlines = self.lines.len();
        let pad = Padding {
            tabwidth: self.tabwidth,
            padchar: self.padchar,
        };
        for i in line0..line1 {
            let Some(line) = self.lines.get(i) else { break };
            for (j, c) in line.iter().enumerate() {
                if c.size > 0 {
                    self.out
                        .push_str(self.buf.get(pos..pos + c.size).unwrap_or(""));
                    pos += c.size;
                }
                if let Some(&cellw) = self.widths.get(j) {
                    pad.write(&mut self.out, c.width, cellw);
                }
            }
            if i + 1 == nlines {
                // Last buffered line has no newline: emit the pending cell text.
                let size = self.cell.size;
                self.out
                    .push_str(self.buf.get(pos..pos + size).unwrap_or(""));
                pos += size;
            } else {
                self.out.push('\n');
            }
        }
        pos
    }
}

/// Go's `writePadding` (with `useTabs` false, as `TabIndent` is not set).
struct Padding {
    tabwidth: usize,
    padchar: char,
}

impl Padding {
    fn write(&self, out: &mut String, textw: usize, cellw: usize) {
        if self.padchar == '\t' {
            if self.tabwidth == 0 {
                return; // tabs have no width: no padding possible
            }
            let cellw = cellw.div_ceil(self.tabwidth) * self.tabwidth;
            let n = cellw.saturating_sub(textw);
            out.extend(std::iter::repeat_n('\t', n.div_ceil(self.tabwidth)));
            return;
        }
        out.extend(std::iter::repeat_n(
            self.padchar,
            cellw.saturating_sub(textw),
        ));
    }
}

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;

/// Go's `duration.ShortHumanDuration(time.Duration(secs) * time.Second)`.
///
/// `<invalid>` below -1 s, `0s` for -1 s, then the largest of s/m/h/d/y that
/// is still below its limit (60 s, 60 m, 24 h, 365 d), always truncated. Go
/// computes m/h/y via float division; for whole seconds that equals integer
/// division. Go's Duration would wrap beyond ±292 y; kubeadm never passes
/// such values (see [`residual_seconds`]) and this function simply stays exact.
pub fn short_human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_string();
    }
    if secs < 0 {
        return "0s".to_string();
    }
    if secs < 60 {
        return format!("{secs}s");
    }
    let minutes = secs / MINUTE;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = secs / HOUR;
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// Largest whole-second magnitude of a Go `time.Duration` (int64 nanoseconds).
const GO_DURATION_MAX_SECS: i64 = i64::MAX / 1_000_000_000;

/// kubeadm's residual time in whole seconds: `int64(NotAfter.Sub(now) / time.Second)`.
///
/// `Sub` saturates at Go's Duration range (±292 y) and the division truncates
/// toward zero, so e.g. -1.5 s gives -1 (printed `0s`) and -2.5 s gives -2.
pub fn residual_seconds(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    // `whole_seconds` truncates toward zero (seconds and nanoseconds share a sign).
    (not_after - now)
        .whole_seconds()
        .clamp(-GO_DURATION_MAX_SECS, GO_DURATION_MAX_SECS)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Go's 4-digit year (`appendInt(b, year, 4)`): zero-padded, sign before the digits.
fn go_year(year: i32) -> String {
    if year < 0 {
        format!("-{:04}", year.unsigned_abs())
    } else {
        format!("{year:04}")
    }
}

/// Go's `t.Format("Jan 02, 2006 15:04 MST")` for a UTC time, e.g. `Aug 19, 2026 09:03 UTC`.
/// x509 times are UTC in Go, so the zone is always printed as `UTC`.
pub fn kubeadm_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let month = MONTHS[usize::from(u8::from(t.month())) - 1];
    format!(
        "{month} {:02}, {} {:02}:{:02} UTC",
        t.day(),
        go_year(t.year()),
        t.hour(),
        t.minute()
    )
}

/// `metav1.Time` JSON form: `t.UTC().Format(time.RFC3339)`, e.g. `2026-08-19T09:03:00Z`.
pub fn rfc3339_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        go_year(t.year()),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::TabWriter;

    /// Writes `src` raw (as Go's tests do) and flushes.
    fn run(minwidth: usize, tabwidth: usize, padding: usize, padchar: char, src: &str) -> String {
        let mut w = TabWriter::new(minwidth, tabwidth, padding, padchar);
        w.write_str(src);
        w.finish()
    }

    /// Every flags==0 case of golang/go src/text/tabwriter/tabwriter_test.go
    /// (escape/HTML/Debug/AlignRight/DiscardEmptyColumns cases are out of scope).
    #[test]
    fn go_tabwriter_test_vectors() {
        let cases: &[(&str, usize, usize, usize, char, &str, &str)] = &[
            ("1a", 8, 0, 1, '.', "", ""),
            ("2", 8, 0, 1, '.', "\n\n\n", "\n\n\n"),
            ("3", 8, 0, 1, '.', "a\nb\nc", "a\nb\nc"),
            ("4a", 8, 0, 1, '.', "\t", ""),
            ("5", 8, 0, 1, '.', "*\t*", "*.......*"),
            ("5b", 8, 0, 1, '.', "*\t*\n", "*.......*\n"),
            ("5c", 8, 0, 1, '.', "*\t*\t", "*.......*"),
            ("6", 8, 0, 1, '.', "\t\n", "........\n"),
            ("7a", 8, 0, 1, '.', "a) foo", "a) foo"),
            ("7b", 8, 0, 1, ' ', "b) foo\tbar", "b) foo  bar"),
            ("7c", 8, 0, 1, '.', "c) foo\tbar\t", "c) foo..bar"),
            ("7d", 8, 0, 1, '.', "d) foo\tbar\n", "d) foo..bar\n"),
            ("7e", 8, 0, 1, '.', "e) foo\tbar\t\n", "e) foo..bar.....\n"),
            ("8", 8, 0, 1, '*', "Hello, world!\n", "Hello, world!\n"),
            ("9a", 1, 0, 0, '.', "1\t2\t3\t4\n11\t222\t3333\t44444\n",
                "1.2..3...4\n11222333344444\n"),
            ("9c", 1, 0, 0, '.', "1\t2\t3\t4\u{0c}11\t222\t3333\t44444\n",
                "1234\n11222333344444\n"),
            ("10a", 5, 0, 0, '.', "1\t2\t3\t4\n", "1....2....3....4\n"),
            ("10b", 5, 0, 0, '.', "1\t2\t3\t4\t\n", "1....2....3....4....\n"),
            ("11", 8, 0, 1, '.', "本\tb\tc\naa\t本本本\tcccc\tddddd\naaa\tbbbb\n",
                "本.......b.......c\naa......本本本.....cccc....ddddd\naaa.....bbbb\n"),
            ("12b", 2, 0, 0, ' ', "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n",
                "a  b  c\naa bbbcccc\naaabbbb\n"),
            ("12c", 8, 0, 1, '_', "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n",
                "a_______b_______c\naa______bbb_____cccc\naaa_____bbbb\n"),
            ("13a", 4, 0, 1, '-',
                "4444\t日本語\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
                "4444------日本語-22--1---333\n999999999-22\n7---------22\n------------------88888888\n\n666666-666666-666666----4444\n1------1------999999999-0000000000\n"),
            ("13b", 4, 0, 3, '.',
                "4444\t333\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
                "4444........333...22...1...333\n999999999...22\n7...........22\n....................88888888\n\n666666...666666...666666......4444\n1........1........999999999...0000000000\n"),
            ("15a", 4, 0, 0, '.', "a\t\tb", "a.......b"),
            ("16a", 100, 100, 0, '\t',
                "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
                "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n"),
        ];
        for (name, minw, tabw, pad, padchar, src, want) in cases {
            assert_eq!(run(*minw, *tabw, *pad, *padchar, src), *want, "case {name}");
            // Go also checks byte-by-byte writes; chunking must not matter.
            let mut w = TabWriter::new(*minw, *tabw, *pad, *padchar);
            for ch in src.chars() {
                w.write_str(ch.encode_utf8(&mut [0; 4]));
            }
            assert_eq!(w.finish(), *want, "case {name} (char by char)");
        }
    }
}
