use std::io::Read;

use super::*;
use crate::plots::sample::{self, USERS};

const SHEETS: [&str; 13] = [
    "levels",
    "errors",
    "finish_reasons",
    "saturation",
    "verdicts",
    "rounds",
    "turns",
    "prompt_buckets",
    "timeline",
    "users",
    "by",
    "runs",
    "notes",
];

/// The members of a written workbook, by name.
struct Book {
    zip: zip::ZipArchive<std::fs::File>,
    _dir: tempfile::TempDir,
}

impl Book {
    fn write(report: &Report) -> Book {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let path = dir.path().join("report.xlsx");
        if let Err(e) = write(report, &path) {
            panic!("{e}");
        }
        let zip = std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| zip::ZipArchive::new(f).map_err(|e| e.to_string()));
        match zip {
            Ok(zip) => Book { zip, _dir: dir },
            Err(e) => panic!("{}: not a zip: {e}", path.display()),
        }
    }

    fn member(&mut self, name: &str) -> String {
        let mut s = String::new();
        match self.zip.by_name(name) {
            Ok(mut f) => {
                if let Err(e) = f.read_to_string(&mut s) {
                    panic!("{name}: {e}");
                }
            }
            Err(e) => panic!("{name}: {e}"),
        }
        s
    }

    /// The cells of sheet `n` (1-based).
    fn cells(&mut self, n: usize) -> Vec<XCell> {
        let xml = self.member(&format!("xl/worksheets/sheet{n}.xml"));
        let doc = match roxmltree::Document::parse(&xml) {
            Ok(d) => d,
            Err(e) => panic!("sheet{n}: {e}"),
        };
        doc.descendants()
            .filter(|c| c.has_tag_name("c"))
            .map(|c| {
                let value = c
                    .children()
                    .find(|v| v.has_tag_name("v"))
                    .and_then(|v| v.text())
                    .map(str::to_string);
                XCell {
                    r: c.attribute("r").unwrap_or_default().to_string(),
                    t: c.attribute("t").map(str::to_string),
                    s: c.attribute("s").map(str::to_string),
                    v: value,
                }
            })
            .collect()
    }
}

/// A cell as stored: reference (`B7`), type (`s` shared string, `b`
/// boolean, none for a number), style index and value.
#[derive(Debug, Clone, PartialEq)]
struct XCell {
    r: String,
    t: Option<String>,
    s: Option<String>,
    v: Option<String>,
}

/// `A`, `Z`, `AA`, ...: the spreadsheet name of column `i` (0-based).
fn column(i: usize) -> String {
    let mut n = i + 1;
    let mut name = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        name.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

fn header_index(table: &TypedTable, header: &str) -> usize {
    match table.headers.iter().position(|h| h == header) {
        Some(i) => i,
        None => panic!("no column {header} in {}", table.name),
    }
}

#[test]
fn one_sheet_per_section_in_order() {
    let mut book = Book::write(&sample::report());
    let xml = book.member("xl/workbook.xml");
    let doc = match roxmltree::Document::parse(&xml) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("sheet"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(names, SHEETS);
}

#[test]
fn headers_are_bold_numbers_are_numbers_and_none_is_empty() {
    let mut report = sample::report();
    report.levels[0].target_rate = None;
    let levels = typed::levels(&report, true);
    let mut book = Book::write(&report);
    let cells = book.cells(1);
    let cell = |r: &str| cells.iter().find(|c| c.r == r).cloned();

    // Every header cell is a styled string (bold: the only style with a
    // bold font), and data cells are not styled.
    let last = column(levels.headers.len() - 1);
    for i in 0..levels.headers.len() {
        let h = cell(&format!("{}1", column(i)));
        assert_eq!(
            h.map(|c| (c.t, c.s.is_some())),
            Some((Some("s".to_string()), true)),
            "{i}"
        );
    }
    assert_eq!(cell(&format!("{last}2")).and_then(|c| c.s), None);
    assert!(book.member("xl/styles.xml").contains("<b/>"));

    // The run id is a (shared) string, counts and figures are numbers.
    assert_eq!(cell("A2").map(|c| c.t), Some(Some("s".to_string())));
    let requests = format!("{}2", column(header_index(&levels, "requests")));
    assert_eq!(
        cell(&requests).map(|c| (c.t, c.v)),
        Some((None, Some("100".to_string())))
    );
    let p99 = format!("{}2", column(header_index(&levels, "TTFT ms p99")));
    assert_eq!(
        cell(&p99).map(|c| (c.t, c.v)),
        Some((None, Some("105".to_string())))
    );
    // A missing figure leaves the cell out; the next row has it.
    let target = column(header_index(&levels, "target rate /s"));
    assert_eq!(cell(&format!("{target}2")), None);
    assert_eq!(
        cell(&format!("{target}3")).map(|c| c.v),
        Some(Some("2".to_string()))
    );
    // Booleans are booleans.
    let behind = format!("{}2", column(header_index(&levels, "client behind")));
    assert_eq!(cell(&behind).map(|c| c.t), Some(Some("b".to_string())));
}

#[test]
fn sheets_hold_every_row() {
    let report = sample::report();
    let mut book = Book::write(&report);
    let rows = |cells: Vec<XCell>| {
        let in_a = |r: &str| {
            r.strip_prefix('A')
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        };
        cells.iter().filter(|c| in_a(&c.r)).count() - 1
    };
    assert_eq!(rows(book.cells(1)), report.levels.len());
    // All users, not only the slowest 20 the HTML shows.
    // One row per level and finish reason.
    let reasons: usize = report.levels.iter().map(|l| l.finish_reasons.len()).sum();
    assert!(reasons > report.levels.len());
    assert_eq!(rows(book.cells(3)), reasons);
    assert_eq!(rows(book.cells(10)), USERS);
    assert_eq!(rows(book.cells(7)), report.turns.len());
    assert_eq!(rows(book.cells(9)), report.timeline.len());
    assert_eq!(rows(book.cells(12)), report.runs.len());
}

#[test]
fn an_unbounded_level_is_written_as_text() {
    let mut report = sample::report();
    report.levels[0].key.load_value = f64::INFINITY;
    let mut book = Book::write(&report);
    let cells = book.cells(1);
    let load = cells.iter().find(|c| c.r == "C2");
    assert_eq!(load.map(|c| c.t.as_deref()), Some(Some("s")));
    assert!(book.member("xl/sharedStrings.xml").contains(">inf<"));
}

#[test]
fn an_unwritable_path_is_an_error_naming_it() {
    let path = std::path::Path::new("/nonexistent-dir/report.xlsx");
    match write(&sample::report(), path) {
        Err(Error::Xlsx { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected an Xlsx error, got {other:?}"),
    }
}

#[test]
fn column_names() {
    assert_eq!(column(0), "A");
    assert_eq!(column(25), "Z");
    assert_eq!(column(26), "AA");
    assert_eq!(column(27), "AB");
}
